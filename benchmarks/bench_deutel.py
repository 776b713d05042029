"""Cycles per training sample of a small CNN on 28x28 digits, beside Deutel et al. (IEEE TCAD 2024).

Usage: python benchmarks/bench_deutel.py [--dir runs/deutel] [--batch T=B ...]

Deutel et al. train a small 4-layer CNN from scratch in uint8 on EMNIST digits: 817 ms a
sample on an RP2040 (M0+, 133 MHz), 898 ms on an nRF52840 (M4, 64 MHz) and 35.4 ms on an
i.MX RT1062 (M7, 600 MHz). Their exact layers are not in what we could read, so this
measures fxtrain's own `conv:8:3,pool:2,conv:16:3,pool:2,dense:64,dense:10` on the shipped
8x8 digits enlarged to 28x28x1 (nearest neighbour), SR at 8 bits, on rp2040, nrf52840 and
stm32h743 (standing in for the RT1062's M7). Each chip gets the largest batch whose training
buffers fit its SRAM (or --batch T=B). One step is measured with `fxtrain measure` (the
exported training step under Unicorn, the profile's instruction prices) and divided by the
batch. A results table, not a test.
"""
import argparse
import math
from pathlib import Path

import numpy as np
from tabulate import tabulate

import fxtrain
from fxtrain.data import load_digits
from fxtrain.device.fit import fit_for
from fxtrain.device.profiles import load_target
from fxtrain.engine.network import parse_arch

ARCH = "conv:8:3,pool:2,conv:16:3,pool:2,dense:64,dense:10"
THEIRS = {"rp2040": (817, 133e6), "nrf52840": (898, 64e6), "stm32h743": (35.4, 600e6)}
SHAPE = (28, 28, 1)


def digits28(path):
    """The shipped digits, each 8x8 image enlarged to 28x28 by nearest neighbour."""
    X, y = load_digits()
    X = X.reshape(-1, 8, 8)
    idx = np.arange(28) * 8 // 28
    np.savez(path, X=X[:, idx][:, :, idx][..., None].astype(np.float64), y=y)
    return path


def largest_batch(target, cap=64):
    """The largest batch whose training buffers fit the target's usable SRAM."""
    for b in range(cap, 0, -1):
        if fit_for(ARCH, "sr", 8, b, (SHAPE, 10, 1438), load_target(target)).sram_fits:
            return b
    return 0


def macs_per_sample():
    """MACs of one training sample: forward, the error sent below every layer but the first, gradient."""
    layers = parse_arch(ARCH, SHAPE, 10)
    fwd = grad = back = 0
    for l, s in enumerate(layers):
        if not s.n_weights:
            continue
        m = math.prod(s.out_shape[:2]) * s.n_weights if s.kind == 1 else s.n_weights
        fwd, grad, back = fwd + m, grad + m, back + (m if l else 0)
    return fwd + grad + back


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="runs/deutel")
    ap.add_argument("--batch", action="append", default=[], help="T=B: use batch B on target T")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = digits28(folder / "digits28.npz")
    chosen = dict(kv.split("=") for kv in args.batch)
    rows, macs = [], macs_per_sample()
    for target, (their_ms, their_hz) in THEIRS.items():
        batch = int(chosen.get(target, largest_batch(target)))
        run = folder / f"run_b{batch}"
        if not (run / "report.json").is_file():
            fxtrain.train(arch=ARCH, data=str(data), batch=batch, epochs=1, out=run)
        rep = fxtrain.measure(run, target, steps=1).report
        t = load_target(target)
        cycles = rep["per_step"]["cycles"] / batch
        rows.append([target, t.core, batch, f"{macs:,}", f"{cycles:,.0f}", f"{cycles / macs:.2f}",
                     f"{1e3 * cycles / t.clock_hz:.1f} at {t.clock_hz / 1e6:.0f} MHz",
                     f"{their_ms} ms ({their_ms * their_hz / 1e9:.1f} M cycles)"])
    print(tabulate(rows, headers=["target", "core", "batch", "MACs/sample", "cycles/sample", "cycles/MAC",
                                  "ms/sample", "Deutel et al."], tablefmt="github"))


if __name__ == "__main__":
    main()
