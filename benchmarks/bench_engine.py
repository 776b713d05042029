"""Training throughput of fxtrain (sr, bc, float) against NumPy and PyTorch CPU float32.

Every implementation trains the same net on the same (tiled) digits data with the same
batch, single-threaded. A measurement is one training epoch (no evaluation); the table
shows the median over ``--reps`` epochs after one warm-up epoch, as samples per second
(full batches only), and the ratio to PyTorch.

    python benchmarks/bench_engine.py            # the full table
    python benchmarks/bench_engine.py --quick    # smoke test: tiny counts, under a minute
"""
import argparse
import sys

import common  # first: pins BLAS/OpenMP threads before numpy loads
import numpy as np
from tabulate import tabulate

from refimpl import NumpyNet, TorchNet, torch_available

# (name, arch, batch, training-set tiling for the full run)
CASES = [
    ("default", "dense:32,dense:10", 16, 8),
    ("wide", "dense:256,dense:10", 64, 4),
    ("conv", "conv:8:3,pool:2,dense:10", 16, 2),
]
FX_METHODS = ("sr", "bc", "float")
LR = 0.0625


def fx_rate(data, method, arch, batch, reps):
    run = common.make_run(data, method, arch, batch, lr=str(LR))
    n = len(data.y_train) // batch * batch
    return n / common.median_time(common.epoch_fn(run), reps)


def float_inputs(data):
    return data.X_train.astype(np.float32) * np.float32(2.0 ** data.e_x)


def numpy_rate(data, layers, batch, reps):
    net, X, rng = NumpyNet(layers, LR, batch), float_inputs(data), np.random.default_rng(0)
    n = len(data.y_train) // batch * batch
    return n / common.median_time(lambda: net.epoch(X, data.y_train, rng), reps)


def torch_rate(data, layers, batch, reps):
    net = TorchNet(layers, LR, batch)
    Xt, Yt = net.tensors(float_inputs(data), data.y_train)
    gen = net.torch.Generator().manual_seed(0)
    n = len(data.y_train) // batch * batch
    return n / common.median_time(lambda: net.epoch(Xt, Yt, gen), reps)


def measure_case(name, arch, batch, tile, reps, with_torch):
    """{implementation: samples/s or None} for one case."""
    data = common.digits(tile)
    rates = {f"fxtrain {m}" + (" 8-bit" if m != "float" else ""): fx_rate(data, m, arch, batch, reps)
             for m in FX_METHODS}
    layers = common.make_run(data, "float", arch, batch).layers
    rates["numpy float32"] = numpy_rate(data, layers, batch, reps)
    rates["pytorch float32"] = torch_rate(data, layers, batch, reps) if with_torch else None
    return rates


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny repetition counts (CI smoke test)")
    ap.add_argument("--reps", type=int, default=7, help="timed epochs per measurement (median)")
    args = ap.parse_args(argv)
    reps = 2 if args.quick else max(args.reps, 5)
    with_torch = torch_available()
    if with_torch:
        import torch
        torch.set_num_threads(1)
    rows, summary = [], []
    for name, arch, batch, tile in CASES:
        tile = 1 if args.quick else tile
        rates = measure_case(name, arch, batch, tile, reps, with_torch)
        n = len(common.digits(tile).y_train)
        ref = rates["pytorch float32"]
        for impl, r in rates.items():
            rows.append([name, arch, batch, n, impl, "not installed" if r is None else f"{r:,.0f}",
                         fmt_ratio(r, ref)])
        sr, fl = rates["fxtrain sr 8-bit"], rates["fxtrain float"]
        summary.append([name, fmt_ratio(sr, ref), fmt_ratio(sr, fl), fmt_ratio(sr, rates["numpy float32"])])
    print(f"Training throughput, 1 thread, median of {reps} epochs after 1 warm-up"
          + (" (--quick: numbers are not meaningful)" if args.quick else ""))
    print(tabulate(rows, headers=["case", "arch", "batch", "n_train", "implementation", "samples/s",
                                  "vs PyTorch"], colalign=("left", "left", "right", "right", "left",
                                                           "right", "right")))
    print()
    print(tabulate(summary, headers=["case", "sr / PyTorch", "sr / fxtrain float", "sr / NumPy"],
                   colalign=("left", "right", "right", "right")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
