"""Experiments ``optimizer`` (SGD, Robbins-Monro, momentum, Adam) and ``runtime`` (seconds per epoch).

runtime's device figures are estimates of the cost model (``fxtrain.device``), whose
prices are fitted to measured instructions (``fxtrain measure``); the table says they
are estimates.
"""
import statistics

from ..data import load_dataset
from ..device.fit import fit_for
from ..device.profiles import load_target
from ..engine.network import parse_arch
from .common import CONV_ARCH, cells, curve, failed_note, final, pm, select
from .report import Panel, Plan, Result

# (label, method, settings): momentum keeps alpha / (1 - beta) equal to SGD's alpha
VARIANTS = [
    ("bc sgd", "bc", {"lr": "0.0625"}),
    ("bc sgd robbins-monro", "bc", {"lr": "0.0625", "lr_decay_tau": 10}),
    ("bc momentum 0.875", "bc", {"lr": "0.0078125", "momentum": "0.875", "optimizer": "momentum"}),
    ("bc adam", "bc", {"lr": "0.00390625", "optimizer": "adam"}),
    ("sr sgd", "sr", {"lr": "0.0625"}),
    ("sr sgd robbins-monro", "sr", {"lr": "0.0625", "lr_decay_tau": 10}),
    ("sr momentum 0.875", "sr", {"lr": "0.0078125", "momentum": "0.875", "optimizer": "momentum"}),
]
OPT_FULL = {"bits": [2, 8], "seed": [0, 1, 2, 3, 4], "epochs": 30}
OPT_QUICK = {"bits": [2], "seed": [0], "epochs": 3}
TARGETS = ("cortex-m0plus", "cortex-m4", "cortex-m7")
RT_FULL = {"seed": [0, 1, 2, 3, 4], "epochs": 5, "bits": [2, 8]}
RT_QUICK = {"seed": [0], "epochs": 3, "bits": [8]}
ARCHS = {"mlp": "default", "conv": CONV_ARCH}


def plan(name, quick):
    if name == "runtime":
        g = RT_QUICK if quick else RT_FULL
        return Plan(cells({"arch": list(ARCHS.values()), "method": ["sr", "r", "bc", "float"], "bits": g["bits"],
                           "seed": g["seed"]}, {"epochs": g["epochs"]}),
                    {"archs": "dense:32,dense:10 and " + CONV_ARCH, "bits": g["bits"], "seeds": g["seed"],
                     "epochs": g["epochs"], "batch": 16, "targets": ", ".join(TARGETS)})
    g = OPT_QUICK if quick else OPT_FULL
    cs = []
    for _, method, settings in VARIANTS:
        cs += cells({"bits": g["bits"], "seed": g["seed"]}, {"method": method, "epochs": g["epochs"], **settings})
    return Plan(cs, {"variants": "; ".join(f"{lab} (lr {s['lr']})" for lab, _, s in VARIANTS), "bits": g["bits"],
                     "seeds": g["seed"], "epochs": g["epochs"], "batch": 16, "robbins-monro tau": "10 epochs"})


def analyze(name, plan, records):
    return _analyze_runtime(name, plan, records) if name == "runtime" else _analyze_opt(name, plan, records)


def _variant(records, method, settings, bits):
    match = {"method": method, "bits": bits, "momentum": "0", "optimizer": "sgd", "lr_decay_tau": 0, **settings}
    return select(records, **match)


def _analyze_opt(name, plan, records):
    rows, table, panels = [], [], []
    for bits in plan.grid["bits"]:
        lines = []
        for label, method, settings in VARIANTS:
            recs = _variant(records, method, settings, bits)
            s = final(recs)
            rows.append({"variant": label, "bits": bits, **s})
            table.append({"variant": label, "bits": bits, "final test acc": pm(s),
                          "best epoch acc": max(curve(recs, "test_accuracy")[1]) if recs else None})
            if recs:
                lines.append((label, *curve(recs, "test_accuracy"), None))
        panels.append(Panel(f"{bits}-bit: test accuracy vs epoch", "epoch", "test accuracy", lines))
    rm = _variant(records, "bc", VARIANTS[1][2], plan.grid["bits"][0])
    notes = ["Robbins-Monro rates applied (alpha_0 / (1 + epoch / 10), rounded to m*2^-k): "
             + ", ".join(dict.fromkeys(h["lr"] for h in rm[0]["report"]["history"])) if rm else "",
             "Adam keeps two float32 moments per weight (8 bytes/weight, counted by the cost model); "
             "momentum uses alpha/8 so that alpha/(1-beta) equals SGD's alpha"]
    return Result(name, plan.grid, [("Optimizers: final test accuracy (mean ± std over seeds)", table)], rows,
                  panels, notes + failed_note(records))


def _sim_seconds(recs):
    """Median over cells of the median epoch wall time (training and the per-epoch evaluation), first epoch out."""
    return statistics.median(statistics.median(h["seconds"] for h in r["report"]["history"][1:]) for r in recs)


def _analyze_runtime(name, plan, records):
    data = load_dataset("digits", 0)
    shape = (data.input_shape, data.n_classes, len(data.y_train))
    targets = [load_target(t) for t in TARGETS]
    rows = []
    for label, arch in ARCHS.items():
        arch_text = ",".join(s.token() for s in parse_arch(None if arch == "default" else arch, *shape[:2]))
        for bits in plan.grid["bits"]:
            for method in ("sr", "r", "bc", "float"):
                recs = select(records, arch=arch, method=method, bits=bits)
                row = {"arch": label, "method": method, "bits": bits,
                       "simulator s/epoch (measured)": _sim_seconds(recs) if recs else None}
                for t in targets:
                    row[f"{t.name} s/epoch (estimated, cost model)"] = fit_for(arch_text, method, bits, 16, shape,
                                                                                t).seconds_per_epoch
                rows.append(row)
    panels = [_device_panel(rows, t, plan.grid["bits"]) for t in TARGETS]
    notes = ["device seconds are ESTIMATES of fxtrain's cost model (each profile's cycles per unit of work, fitted "
             "to measured instructions: fxtrain measure), not measurements; simulator seconds are measured on this "
             "machine (per epoch, with evaluation)",
             f"(accuracy is not the point here; sr mlp: {pm(final(select(records, method='sr', arch='default')))})"]
    return Result(name, plan.grid, [("Seconds per epoch: simulator (measured) and devices (estimated)", rows)],
                  rows, panels, notes + failed_note(records))


def _device_panel(rows, target, bits):
    """Estimated seconds per epoch on ``target`` against bits, one line per (arch, method)."""
    col = f"{target} s/epoch (estimated, cost model)"
    lines = []
    for arch in ARCHS:
        for method in ("sr", "bc", "float"):
            ys = [r[col] for r in rows if r["arch"] == arch and r["method"] == method]
            lines.append((f"{arch} {method}", bits, ys, None))
    return Panel(f"{target}: estimated seconds per epoch", "weight bits", "seconds per epoch (cost model)", lines,
                 logy=True)
