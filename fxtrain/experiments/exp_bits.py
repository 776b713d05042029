"""Experiments ``bits`` (accuracy against bits, Table 1's analogue) and ``batch`` (batch size)."""
from ..data import load_dataset
from .common import CONV_ARCH, cells, failed_note, final, pm, select
from .report import Panel, Plan, Result

BITS_FULL = {"bits": [1, 2, 3, 4, 6, 8, 12, 16], "seed": [0, 1, 2, 3, 4], "epochs": 30}
BITS_QUICK = {"bits": [2, 8], "seed": [0], "epochs": 3}
ARCHS = {"mlp": "default", "conv": CONV_ARCH}
BATCH_FULL = {"batch": [16, 32, 64, 128, 256, 512, 1024], "seed": [0, 1, 2, 3, 4], "epochs": 30}
BATCH_QUICK = {"batch": [16, 256], "seed": [0], "epochs": 2}
LR = "0.0625"


def plan(name, quick):
    return _plan_bits(quick) if name == "bits" else _plan_batch(quick)


def analyze(name, plan, records):
    return _analyze_bits(name, plan, records) if name == "bits" else _analyze_batch(name, plan, records)


def _plan_bits(quick):
    g = BITS_QUICK if quick else BITS_FULL
    fixed = {"epochs": g["epochs"], "lr": LR, "batch": 16}
    cs = cells({"arch": list(ARCHS.values()), "method": ["bc", "sr", "r"], "bits": g["bits"], "seed": g["seed"]},
               fixed)
    # float ignores bits; one run per arch and seed, labelled with the widest grid it is set against
    cs += cells({"arch": list(ARCHS.values()), "method": ["float"], "seed": g["seed"]}, fixed)
    return Plan(cs, {"archs": "dense:32,dense:10 and " + CONV_ARCH, "bits": g["bits"], "seeds": g["seed"],
                     "epochs": g["epochs"], "lr": LR, "batch": 16})


def _analyze_bits(name, plan, records):
    rows, panels, table = [], [], []
    bits = plan.grid["bits"]
    for label, arch in ARCHS.items():
        ref = final(select(records, arch=arch, method="float"))
        lines = []
        for method in ("bc", "sr", "r"):
            pts = [(b, final(select(records, arch=arch, method=method, bits=b))) for b in bits]
            rows += [{"arch": label, "method": method, "bits": b, **s} for b, s in pts]
            lines.append((method, bits, [s["mean"] for _, s in pts], [s["std"] for _, s in pts]))
        rows.append({"arch": label, "method": "float", "bits": "f32", **ref})
        lines.append(("float", [bits[0], bits[-1]], [ref["mean"]] * 2, None))
        panels.append(Panel(f"{label}: test accuracy vs bits", "weight bits", "test accuracy", lines, logx=True))
        for b in bits:
            table.append({"arch": label, "bits": b, **{m: pm(next(r for r in rows if r["arch"] == label and
                                                                  r["method"] == m and r["bits"] == b))
                                                       for m in ("bc", "sr", "r")}, "float": pm(ref)})
    notes = ["mean ± std over seeds of the final test accuracy; float has no grid (f32) and is repeated per row"]
    return Result(name, plan.grid, [("Test accuracy against bits", table)], rows, panels,
                  notes + failed_note(records))


def train_size():
    """Training samples of the digits split (the same count for every seed: the split is per class)."""
    return len(load_dataset("digits", 0).y_train)


def _plan_batch(quick):
    g = BATCH_QUICK if quick else BATCH_FULL
    n = train_size()
    steps = g["epochs"] * (n // g["batch"][0])
    base = {"method": ["sr", "bc"], "bits": [2, 8], "seed": g["seed"]}
    cs = []
    for b in g["batch"]:
        cs += cells(base, {"batch": b, "epochs": g["epochs"], "lr": LR})
        # the same number of steps as the smallest batch: ceil(steps / steps per epoch) epochs
        cs += cells(base, {"batch": b, "epochs": -(-steps // (n // b)), "lr": LR})
    return Plan(cs, {"batches": g["batch"], "methods": "sr, bc", "bits": [2, 8], "seeds": g["seed"],
                     "same epochs": g["epochs"], "same steps": steps, "train samples": n, "lr": LR})


def _analyze_batch(name, plan, records):
    n, steps = plan.grid["train samples"], plan.grid["same steps"]
    rows, tables, panels = [], [], []
    for regime in ("same epochs", "same steps"):
        table, lines = [], {}
        for b in plan.grid["batches"]:
            epochs = plan.grid["same epochs"] if regime == "same epochs" else -(-steps // (n // b))
            row = {"batch": b, "epochs": epochs, "steps": epochs * (n // b)}
            for m in ("sr", "bc"):
                for bits in (2, 8):
                    s = final(select(records, batch=b, epochs=epochs, method=m, bits=bits))
                    rows.append({"regime": regime, "batch": b, "epochs": epochs, "steps": row["steps"],
                                 "method": m, "bits": bits, **s})
                    row[f"{m} {bits}-bit"] = pm(s)
                    lines.setdefault(f"{m} {bits}-bit", []).append((b, s["mean"], s["std"]))
            table.append(row)
        tables.append((f"Test accuracy against batch size, {regime}", table))
        panels.append(Panel(f"{regime}", "batch size", "test accuracy",
                            [(k, [p[0] for p in v], [p[1] for p in v], [p[2] for p in v]) for k, v in lines.items()],
                            logx=True))
    return Result(name, plan.grid, tables, rows, panels,
                  [f"lr {LR} for every batch (the step is alpha/batch on the mean gradient)"] + failed_note(records))
