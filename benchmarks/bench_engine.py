"""Training throughput of ``fxtrain train --method sr --bits 8`` against PyTorch CPU, and the MAC rates.

One measurement method for every samples/s number: the per-epoch time of a command is
(wall time of a 203-epoch run - wall time of a 3-epoch run) / 200, each run a fresh
process, so start-up, compilation-cache loading and the final report cancel. fxtrain runs
through its CLI, its per-epoch evaluation of the training and test sets included;
PyTorch runs ``torch_epochs.py`` (training only, ``torch.set_num_threads(1)``). Both get
the same data, net, batch and learning rate (0.0625), NUMBA_NUM_THREADS=1 and one BLAS
thread. Samples/s counts the full batches trained per epoch; the median over ``--reps``
pairs of runs is shown.

The MAC columns time one batch of the case's widest dense layer: fxtrain's integer
forward product (with the packing of the weights where the run packs them, as each of
its training steps does) and weight-gradient product, in the kernel family the run
trains with ("packed" sweeps, or the "serial" loops of small dense nets), against
NumPy float32 matmuls of the same shapes (best of 30 calls each). The inputs are the
data's first batch (after a conv and pool: ReLU-like int8 with half zeros), the errors
int8 with half zeros, as a ReLU leaves them; MACs are counted dense, zeros included,
so fxtrain's rate includes the pairs of zeros it skips.

    python benchmarks/bench_engine.py            # the full table (about 15 minutes)
    python benchmarks/bench_engine.py --quick    # smoke test: 4 against 2 epochs, tiny data
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # first: pins BLAS/OpenMP threads before numpy loads
import numpy as np
from tabulate import tabulate

from fxtrain.data import load_dataset, load_digits
from refimpl import torch_available

HERE = Path(__file__).resolve().parent
# (name, arch, batch, digits tiling): batch 2048 needs more than digits' 1,438 training samples,
# and "wide x8" is the batch-64 run on that same data, for the per-sample comparison.
CASES = [
    ("default", "dense:32,dense:10", 16, 1),
    ("conv", "conv:8:3,pool:2,dense:10", 16, 1),
    ("wide", "dense:256,dense:10", 64, 1),
    ("wide x8", "dense:256,dense:10", 64, 8),
    ("wide-2048", "dense:256,dense:10", 2048, 8),
]
LR = "0.0625"
ENV = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def data_source(tile, folder):
    """'digits', or an NPZ file of the digits repeated ``tile`` times (split by fxtrain as usual)."""
    if tile == 1:
        return "digits"
    path = Path(folder) / f"digits_x{tile}.npz"
    if not path.exists():
        X, y = load_digits()
        np.savez(path, X=np.tile(X, (tile, 1, 1, 1)), y=np.tile(y, tile))
    return str(path)


def fxtrain_cmd(arch, batch, data, epochs):
    return [sys.executable, "-c", "from fxtrain.cli import main; main()", "train", "--method", "sr", "--bits", "8",
            "--arch", arch, "--batch", str(batch), "--lr", LR, "--data", data, "--epochs", str(epochs)]


def torch_cmd(arch, batch, data, epochs):
    return [sys.executable, str(HERE / "torch_epochs.py"), "--arch", arch, "--batch", str(batch), "--lr", LR,
            "--data", data, "--epochs", str(epochs)]


def wall(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=HERE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def per_epoch(make_cmd, long, short):
    """Seconds per epoch: (long run - short run) / (long - short)."""
    return (wall(make_cmd(long)) - wall(make_cmd(short))) / (long - short)


def samples_per_epoch(data_name, batch):
    return len(load_dataset(data_name, 0).y_train) // batch * batch


def throughput(cases, folder, long, short, reps, with_torch):
    """{case: (fxtrain samples/s, PyTorch samples/s or None)}, medians over ``reps`` interleaved pairs."""
    times = {name: ([], []) for name, *_ in cases}
    for _ in range(reps):
        for name, arch, batch, tile in cases:
            data = data_source(tile, folder)
            times[name][0].append(per_epoch(lambda e: fxtrain_cmd(arch, batch, data, e), long, short))
            if with_torch:
                times[name][1].append(per_epoch(lambda e: torch_cmd(arch, batch, data, e), long, short))
    out = {}
    for name, arch, batch, tile in cases:
        n = samples_per_epoch(data_source(tile, folder), batch)
        fx, pt = times[name]
        out[name] = (n / statistics.median(fx), n / statistics.median(pt) if pt else None)
    return out


def best_time(fn, reps=30):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def mac_rates(arch, batch, data):
    """(layer text, kernel family, fxtrain fwd, NumPy fwd, fxtrain grad, NumPy grad) GMAC/s for the
    widest dense layer, through the kernels the run trains with (engine.checks.fast_kernels)."""
    from fxtrain.engine import kernels as K
    from fxtrain.engine.checks import fast_kernels
    from fxtrain.engine.network import DENSE, W_OFF, build_desc
    run = common.make_run(data, "sr", arch, batch)
    fast = fast_kernels(run._net(), batch)
    l = max((i for i, s in enumerate(run.layers) if s.kind == DENSE), key=lambda i: run.layers[i].n_weights)
    spec, rng = run.layers[l], np.random.default_rng(0)
    n_in, n_out = spec.fan_in, spec.out_shape[2]
    d = build_desc([spec])[0]
    w = np.ascontiguousarray(run.state.wq[run.desc[l, W_OFF]:][:n_in * n_out])
    x = run.X[:batch].ravel() if l == 0 else rng.integers(0, 128, batch * n_in).astype(np.int8)
    if l:
        x[rng.random(x.size) < 0.5] = 0
    err = rng.integers(-128, 128, batch * n_out).astype(np.int8)
    err[rng.random(err.size) < 0.5] = 0
    ws = run.ws
    out, grad = np.zeros(batch * n_out, np.int32), np.zeros(n_in * n_out, np.int32)
    nonneg = np.zeros(1, np.bool_)
    K.inputs_nonneg(d[None], x, nonneg)

    def fx_fwd():
        if fast:
            K.pack_dense_weights(d[None], w, ws.wpack, nonneg)
            K.dense_forward_int(d, x, w, ws.wpack, batch, out, ws.items, ws.bterm, nonneg[0])
        else:
            K.dense_forward(d, x, w, batch, out)

    def fx_grad():
        if fast:
            K.dense_backward_int(d, x, err, w, batch, grad, ws.acc, False, ws.words, ws.items, ws.gtmp, nonneg[0])
        else:
            K.dense_backward(d, x, err, w, batch, grad, ws.acc, False)

    xf, wf, ef = (a.astype(np.float32) for a in (x.reshape(batch, n_in), w.reshape(n_out, n_in),
                                                   err.reshape(batch, n_out)))
    macs = batch * n_in * n_out / 1e9
    rates = [macs / best_time(f) for f in (fx_fwd, lambda: xf @ wf.T, fx_grad, lambda: ef.T @ xf)]
    return (f"{n_in}->{n_out}", "packed" if fast else "serial", *rates)


def fmt(v, digits=0):
    return "-" if v is None else f"{v:,.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 4 against 2 epochs, digits x2 at most")
    ap.add_argument("--reps", type=int, default=7,
                    help="pairs of runs per case (median): process start-up varies by up to a second here")
    args = ap.parse_args(argv)
    long, short, reps = (4, 2, 1) if args.quick else (203, 3, args.reps)
    cases = [(n, a, b, min(t, 2) if args.quick else t) for n, a, b, t in CASES]
    with_torch = torch_available()
    with tempfile.TemporaryDirectory(prefix="fxtrain-bench-") as folder:
        rates = throughput(cases, folder, long, short, reps, with_torch)
        rows, macs = [], []
        for name, arch, batch, tile in cases:
            src = data_source(tile, folder)
            fx, pt = rates[name]
            rows.append([name, arch, batch, f"digits x{tile}", samples_per_epoch(src, batch), fmt(fx),
                         fmt(pt) if with_torch else "not installed", f"{fx / pt:.2f}x" if pt else "-"])
            layer, family, *g = mac_rates(arch, batch, load_dataset(src, 0))
            macs.append([name, batch, layer, family, *(fmt(v, 1) for v in g), f"{g[0] / g[1]:.2f}",
                         f"{g[2] / g[3]:.2f}"])
    print(f"Training throughput, per-epoch time from {long} against {short} epochs through the CLI, 1 thread, "
          f"median of {reps}" + (" (--quick: numbers are not meaningful)" if args.quick else ""))
    print(tabulate(rows, headers=["case", "arch", "batch", "data", "samples/epoch", "fxtrain sr-8 samples/s",
                                  "PyTorch samples/s", "sr / PyTorch"],
                   colalign=("left", "left", "right", "left", "right", "right", "right", "right")))
    print()
    print("Widest dense layer, one batch: GMAC/s (dense count) of fxtrain's int8 products and NumPy float32")
    print(tabulate(macs, headers=["case", "batch", "layer", "kernels", "fx fwd", "numpy fwd", "fx grad", "numpy grad",
                                  "fwd fx/np", "grad fx/np"],
                   colalign=("left", "right", "left", "left", "right", "right", "right", "right", "right", "right")))
    ratio = rates["wide x8"][0] / rates["wide-2048"][0]
    print(f"\nwide net on digits x{cases[-1][3]}: batch 2048 takes {ratio:.2f} times the per-sample time of batch 64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
