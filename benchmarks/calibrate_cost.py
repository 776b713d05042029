"""Fit the cost model's unit prices to measured instructions, and print estimate / measured tables.

Usage: python benchmarks/calibrate_cost.py [--dir runs/calibration] [--steps 8] [--epochs 10] [--fit]

Trains (once, into --dir) the calibration runs: on digits the default arch and
conv:4:3,pool:2,dense:10, and on basicmotions (batch 8) two 1-D nets whose convs take
the portable path even on a DSP core (fan-in over 12), one pooling whole words of
channels and one byte by byte; each as sr, r and bc at 8 bits and sr at 4 and 1 bits
(weights in sub-byte slots) for --epochs epochs. Held out, never fitted:
dense:64,dense:32,dense:10 and conv:3:3,pool:2,dense:10 (three filters, three channels:
every row a tail of the dot product's blocks of four) on digits, and
conv1d:6:3,pool1d:2,conv1d:12:3,gap,dense:4 on basicmotions (sr, bc at 8 bits, sr at 4 and 1). sr runs of the first two archs
at 1 and 30 epochs show how the share of zero errors moves the backward pass. Every run
is measured with `fxtrain measure` for --steps steps on the four cores, cached in
--dir/measured.json.

--fit prints each core's [unit_cycles] table: per unit of work (fxtrain/device/work.py),
the price that best fits (non-negative least squares on relative error) the cycles of
every part of every phase of the 8-bit fit runs; then the sub-byte units (unpack,
repack) from the forward and weight-update loops of the 4- and 1-bit fit runs. Without --fit it prints the estimate /
measured tables of the profiles as they are. A results table, not a test.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from tabulate import tabulate

import fxtrain
from fxtrain.device.fit import fit_for
from fxtrain.device.profiles import load_target
from fxtrain.device.work import PHASES
from fxtrain.measuring.measure import estimate

CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7")
# key: (arch, data, batch)
FIT_ARCHS = {"default": ("dense:32,dense:10", "digits", 16), "conv": ("conv:4:3,pool:2,dense:10", "digits", 16),
             "ts8": ("conv1d:8:5,pool1d:2,conv1d:16:5,gap,dense:4", "basicmotions", 8),
             "ts5": ("conv1d:5:3,pool1d:2,conv1d:10:3,gap,dense:4", "basicmotions", 8)}
HELD_OUT = {"mlp3": ("dense:64,dense:32,dense:10", "digits", 16),
            "ts6": ("conv1d:6:3,pool1d:2,conv1d:12:3,gap,dense:4", "basicmotions", 8),
            "conv3": ("conv:3:3,pool:2,dense:10", "digits", 16)}
ARCHS = {**FIT_ARCHS, **HELD_OUT}


def runs(epochs):
    """(name, arch key, method, bits, epochs) of every calibration and report run."""
    out = [(f"{a}_{m}8_e{epochs}", a, m, 8, epochs) for a in FIT_ARCHS for m in ("sr", "r", "bc")]
    out += [(f"{a}_sr{b}_e{epochs}", a, "sr", b, epochs) for a in FIT_ARCHS for b in (4, 1)]
    out += [(f"{a}_{m}8_e{epochs}", a, m, 8, epochs) for a in HELD_OUT for m in ("sr", "bc")]
    out += [(f"{a}_sr{b}_e{epochs}", a, "sr", b, epochs) for a in HELD_OUT for b in (4, 1)]
    out += [(f"{a}_sr8_e{e}", a, "sr", 8, e) for a in ("default", "conv", "mlp3") for e in (1, 30) if e != epochs]
    return out


def measured(folder, steps, epochs):
    """{run name: {core: measure() report}}, training and measuring what the cache lacks."""
    cache_path = folder / "measured.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    for name, arch, method, bits, e in runs(epochs):
        run_dir = folder / name
        if not (run_dir / "report.json").is_file():
            text, data, batch = ARCHS[arch]
            fxtrain.train(arch=text, data=data, batch=batch, method=method, bits=bits, epochs=e, out=run_dir)
        for core in CORES:
            key = f"{core}|{steps}"
            if key in cache.get(name, {}):
                continue
            cache.setdefault(name, {})[key] = fxtrain.measure(run_dir, core, steps=steps).report
            cache_path.write_text(json.dumps(cache))
            print(f"measured {name} on {core}", flush=True)
    return cache


def nnls(a, b):
    """Non-negative least squares by dropping the negative coefficients until none is left."""
    keep = [j for j in range(a.shape[1]) if a[:, j].any()]
    while True:
        sol = np.linalg.lstsq(a[:, keep], b, rcond=None)[0]
        if (sol >= 0).all():
            x = np.zeros(a.shape[1])
            x[keep] = sol
            return x
        keep = [j for j, v in zip(keep, sol) if v > 0]


SUB_BYTE = ("unpack", "repack")
# the loops whose cost the weight's slot changes, and no share of zero errors does
SLOT_PARTS = ("forward.dense", "forward.conv", "update.weights")


def _work(rep, target):
    """The cost model's {part: {unit: count}} of the measured run ``rep`` on ``target``."""
    shape = (tuple(rep["input_shape"]), rep["n_classes"], rep["n_train"])
    return fit_for(rep["arch"], rep["method"], rep["bits"], rep["batch"], shape, target, rep["momentum"],
                   rep["lr"]).cost.work


def _rows(cache, core, steps, epochs, packed):
    """[(units of a part, measured cycles)] of the fit runs at 8 bits, or at 4 and 1 bits."""
    rows = []
    for name, arch, method, bits, e in runs(epochs):
        rep = cache.get(name, {}).get(f"{core}|{steps}")
        if arch not in FIT_ARCHS or e != epochs or rep is None or (bits < 8) != packed:
            continue
        parts = _work(rep, load_target(core))
        rows += [(parts.get(part, {}), got["cycles"]) for part, got in rep["parts"].items()
                 if got["cycles"] and (not packed or part in SLOT_PARTS)]
    return rows


def fit_core(cache, core, steps, epochs):
    """{unit: cycles} for one core: every unit from every part of the 8-bit fit runs, then unpack and
    repack from the slot-bound parts of the 4- and 1-bit runs, the others held at their fitted prices."""
    rows = _rows(cache, core, steps, epochs, False)
    units = sorted({u for w, _ in rows for u in w})
    x = nnls(np.array([[w.get(u, 0) / cyc for u in units] for w, cyc in rows]), np.ones(len(rows)))
    # every unit the runs exercise gets its price, zero included: an unpriced unit would fall back to its proxy
    prices = {u: float(v) for u, v in zip(units, x)}
    rows = _rows(cache, core, steps, epochs, True)
    rest = [1 - sum(n * prices.get(u, 0) for u, n in w.items() if u not in SUB_BYTE) / cyc for w, cyc in rows]
    x = nnls(np.array([[w.get(u, 0) / cyc for u in SUB_BYTE] for w, cyc in rows]), np.array(rest))
    prices.update({u: float(v) for u, v in zip(SUB_BYTE, x)})
    return {u: round(v, 1) for u, v in sorted(prices.items())}


def ratio_table(cache, steps, names):
    """Markdown rows: run, core, estimate / measured per phase and per step."""
    rows = []
    for name in names:
        for core in CORES:
            rep = cache.get(name, {}).get(f"{core}|{steps}")
            if rep is None:
                continue
            fresh = estimate(rep)
            rows.append([name, core] + [f"{fresh['phases'][p]['ratio']:.2f}" for p in PHASES]
                        + [f"{fresh['per_step']['ratio']:.2f}"])
    return tabulate(rows, headers=["run", "core", *PHASES, "per step"], tablefmt="github")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="runs/calibration")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    cache = measured(folder, args.steps, args.epochs)
    if args.fit:
        for core in CORES:
            prices = fit_core(cache, core, args.steps, args.epochs)
            print(f"\n# {core}\n[unit_cycles]\n" + "\n".join(f"{u} = {v}" for u, v in prices.items()))
        return
    names = [n for n, *_ in runs(args.epochs)]
    fit = [n for n in names if n.split("_")[0] in FIT_ARCHS and n.endswith(f"_e{args.epochs}")]
    held = [n for n in names if n.split("_")[0] in HELD_OUT and n.endswith(f"_e{args.epochs}")]
    other = [n for n in names if n not in fit and n not in held]
    for title, group in (("fitted archs", fit), ("held-out archs", held), ("other training states", other)):
        print(f"\nestimate / measured, {title} ({args.steps} steps):\n" + ratio_table(cache, args.steps, group))


if __name__ == "__main__":
    main()
