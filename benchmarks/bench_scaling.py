"""How the time of an sr 8-bit training epoch grows with the hidden width and the data size.

Two sweeps over ``dense:W,dense:10`` with batch 16: the width W at fixed data (digits),
and the data (digits' training set tiled N times) at W = 32. For each, the growth
exponent is the least-squares slope of log(seconds per epoch) against log(training
MACs per epoch): 1 means time tracks arithmetic, below 1 means fixed per-batch or
per-weight costs are being amortised.

    python benchmarks/bench_scaling.py            # full sweeps
    python benchmarks/bench_scaling.py --quick    # smoke test: short sweeps, 2 reps
"""
import argparse
import sys

import common  # first: pins BLAS/OpenMP threads before numpy loads
from tabulate import tabulate

BATCH = 16
WIDTHS = (32, 64, 128, 256, 512, 1024)
TILES = (1, 2, 4, 8, 16)


def measure(data, width, reps):
    """(MACs per epoch, seconds per epoch) for an sr 8-bit run of dense:width,dense:10."""
    run = common.make_run(data, "sr", f"dense:{width},dense:{data.n_classes}", BATCH)
    n_used = len(data.y_train) // BATCH * BATCH
    secs = common.median_time(common.epoch_fn(run), reps)
    return n_used * common.macs_per_sample(run.layers), secs, n_used


def sweep(points, reps):
    """Rows of the table and the fitted exponent; ``points`` yields (label, data, width)."""
    rows, macs, secs = [], [], []
    for label, data, width in points:
        m, s, n = measure(data, width, reps)
        macs.append(m)
        secs.append(s)
        rows.append([label, n, f"{m / 1e6:,.1f}", f"{s * 1e3:,.2f}", f"{n / s:,.0f}", f"{s / m * 1e9:.3f}"])
    return rows, common.loglog_slope(macs, secs)


HEADERS = ["", "samples", "MMACs/epoch", "ms/epoch", "samples/s", "ns/MAC"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short sweeps, 2 reps (CI smoke test)")
    ap.add_argument("--reps", type=int, default=7, help="timed epochs per point (median)")
    args = ap.parse_args(argv)
    reps = 2 if args.quick else max(args.reps, 5)
    widths = WIDTHS[:3] if args.quick else WIDTHS
    tiles = TILES[:3] if args.quick else TILES
    base = common.digits(1)
    w_rows, w_exp = sweep(((f"W={w}", base, w) for w in widths), reps)
    d_rows, d_exp = sweep(((f"x{t}", common.digits(t), 32) for t in tiles), reps)
    note = " (--quick: numbers are not meaningful)" if args.quick else ""
    print(f"sr 8-bit, batch {BATCH}, training only, median of {reps} epochs{note}")
    print()
    print("Width sweep: dense:W,dense:10 on digits x1")
    print(tabulate(w_rows, headers=["width"] + HEADERS[1:], colalign=("left",) + ("right",) * 5))
    print()
    print("Data sweep: dense:32,dense:10 on digits tiled xN")
    print(tabulate(d_rows, headers=["tiling"] + HEADERS[1:], colalign=("left",) + ("right",) * 5))
    print()
    print(tabulate([["width", f"{w_exp:.2f}"], ["data", f"{d_exp:.2f}"]],
                   headers=["sweep", "exponent of time vs MACs/epoch"], colalign=("left", "right")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
