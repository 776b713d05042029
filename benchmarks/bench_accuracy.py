"""Test accuracy per method and bit width over several seeds (default arch, digits).

Usage: python benchmarks/bench_accuracy.py [--seeds 0,1,2] [--bits 1,2,4,8] [--epochs 30]
Prints mean and min/max test accuracy, the mean changed fraction in the last epoch,
and the seconds per epoch. A results table, not a test: it asserts nothing.
"""
import argparse
import statistics
import time

from tabulate import tabulate

from fxtrain.data import load_dataset
from fxtrain.training.config import TrainConfig
from fxtrain.training.run import Run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--bits", default="1,2,4,8")
    ap.add_argument("--methods", default="float,bc,sr,r")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--arch", default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for method in args.methods.split(","):
        for bits in ([32] if method == "float" else [int(b) for b in args.bits.split(",")]):
            accs, changed, secs = [], [], []
            for seed in seeds:
                data = load_dataset("digits", seed)
                run = Run(TrainConfig(method=method, bits=min(bits, 16), epochs=args.epochs, seed=seed,
                                      arch=args.arch), data)
                run.step_epoch()  # warm-up: compile or load the cache
                t0 = time.perf_counter()
                for _ in range(args.epochs - 1):
                    run.step_epoch()
                secs.append((time.perf_counter() - t0) / max(args.epochs - 1, 1))
                accs.append(run.state.history[-1]["test_accuracy"])
                changed.append(run.state.history[-1]["changed_fraction"])
            rows.append([method, "f32" if method == "float" else bits, statistics.mean(accs), min(accs), max(accs),
                         statistics.mean(changed), 1000 * statistics.median(secs)])
    print(tabulate(rows, headers=["method", "bits", "mean test acc", "min", "max", "changed (last epoch)",
                                  "ms / epoch (incl. eval)"],
                   floatfmt=("", "", ".4f", ".4f", ".4f", ".3f", ".2f")))


if __name__ == "__main__":
    main()
