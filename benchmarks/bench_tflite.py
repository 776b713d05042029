"""The TFLite export, measured: differing output bytes between TFLM, fxtrain and the C runtime.

For ``dense:32,dense:10`` and ``conv:4:3,pool:2,dense:10`` at 8 and 4 bits (digits,
seed 0), each trained run is deployed twice:

- ``tflm``: calibrated with rounding "tflm" and written as ``.tflite`` and as C
  (``--rounding tflm``). Counts output bytes where TFLM (the tflite-micro
  interpreter) or the C runtime (gcc on the host) differs from fxtrain's deployed
  predictions, on the 32 export vectors, the test set and 8,000 random int8 inputs.
- ``plain``: the default (CMSIS-NN rounding) model written as ``.tflite``, with the
  int32 bias ``bias << bias_shift``: the bytes where TFLM differs from fxtrain's
  CMSIS predictions and the inputs whose argmax flips. Each layer is off by at most
  one; a difference carried into the next layer can grow.

    python benchmarks/bench_tflite.py            # 10 epochs per run
    python benchmarks/bench_tflite.py --quick    # 1 epoch, 500 random inputs: a smoke test
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

import fxtrain
from fxtrain.firmware.calibration import from_run_dir
from fxtrain.firmware.codegen import export_model
from fxtrain.firmware.reference import predict
from fxtrain.firmware.verify import HOST_CFLAGS, parse_output
from fxtrain.tflite import tflm
from fxtrain.tflite.flatbuffer import tflite_bytes

CASES = [("dense:32,dense:10", 8), ("dense:32,dense:10", 4), ("conv:4:3,pool:2,dense:10", 8),
         ("conv:4:3,pool:2,dense:10", 4)]


def c_outputs(model, X, folder):
    """The exported C runtime's outputs for every input, compiled with gcc on the host."""
    export_model(model, folder, vectors=X)
    exe = Path(folder) / "prog"
    subprocess.run(["gcc", *HOST_CFLAGS, f"-I{folder}", str(Path(folder) / "main.c"), "-o", str(exe)], check=True)
    lines, _ = parse_output(subprocess.run([str(exe)], capture_output=True, text=True).stdout)
    return np.array([lines[i][1] for i in range(len(X))], dtype=np.int8)


def sets(model, data, n_random):
    X_test = data.X_test.reshape(-1, *model.input_shape)
    rng = np.random.default_rng(1)
    return {"export vectors": X_test[:32], "test set": X_test,
            f"{n_random:,} random": rng.integers(-128, 128, (n_random, *model.input_shape)).astype(np.int8)}


def case_rows(run_dir, arch, bits, n_random, tmp, sizes):
    tm, data = from_run_dir(run_dir, "tflm")
    cm, _ = from_run_dir(run_dir, "cmsis")
    blob, plain = tflite_bytes(tm), tflite_bytes(cm)
    X_test = data.X_test.reshape(-1, *tm.input_shape)
    sizes.append([arch, bits, f"{len(blob):,}", f"{tflm.arena_bytes(blob, X_test[0]):,}",
                  f"{np.mean(predict(cm, X_test)[1] == data.y_test):.4f}",
                  f"{np.mean(predict(tm, X_test)[1] == data.y_test):.4f}"])
    rows = []
    for name, X in sets(tm, data, n_random).items():
        want = predict(tm, X)[0]
        tflm.run(blob, X[:1])  # the first call loads the extension; time the others
        t0 = time.perf_counter()
        got = tflm.run(blob, X)
        us = 1e6 * (time.perf_counter() - t0) / len(X)
        c = c_outputs(tm, X, Path(tmp) / f"{bits}{arch[:4]}{len(X)}")
        ref_c, cls_c = predict(cm, X)
        got_plain = tflm.run(plain, X).astype(int)
        d = got_plain - ref_c
        n_d, flips = np.count_nonzero(d), int(np.count_nonzero(np.argmax(got_plain, axis=1) != cls_c))
        rows.append([arch, bits, name, len(X), want.size, int(np.count_nonzero(got != want)),
                     int(np.count_nonzero(c != want)), f"{n_d:,} ({100 * n_d / d.size:.2f}%)",
                     int(np.abs(d).max(initial=0)), f"{flips} ({100 * flips / len(X):.2f}%)", f"{us:.1f}"])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 epoch and 500 random inputs (a smoke test)")
    args = ap.parse_args()
    epochs, n_random = (1, 500) if args.quick else (10, 8000)
    rows, sizes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, bits in CASES:
            run_dir = Path(tmp) / f"run_{bits}_{arch[:4]}"
            fxtrain.train(arch=arch, bits=bits, epochs=epochs, out=run_dir)
            rows += case_rows(run_dir, arch, bits, n_random, tmp, sizes)
    print(tabulate(rows, headers=["arch", "bits", "inputs", "n", "bytes", "TFLM != fxtrain", "C != fxtrain",
                                  "plain: TFLM != fxtrain", "max |diff|", "plain: argmax flips", "TFLM us/inference"],
                   tablefmt="github", disable_numparse=True))
    print()
    print(tabulate(sizes, headers=["arch", "bits", "model.tflite bytes", "TFLM arena bytes (host)",
                                   "test acc, cmsis", "test acc, tflm"], tablefmt="github", disable_numparse=True))
    bad = sum(r[5] + r[6] for r in rows)
    print(f"\ntflm rounding: {bad} differing bytes in all; plain export: the differences above")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
