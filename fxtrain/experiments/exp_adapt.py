"""Experiment ``adapt``: fine-tune a float-pretrained net to a second sensor, on the grid, layer by layer.

Each cell (:mod:`adapt`) pretrains in float on the digits, quantizes the weights through
``--init`` and adapts them on the digits as a second sensor reads them: a fixed per-pixel
gain and offset and a one-pixel shift (:func:`adapt.target_digits`). It reports the target's
test accuracy before and after adapting, the source's test accuracy after (what adapting
forgot), the training SRAM, and for one seed the cycles per training sample measured on
each target's core.
"""
from .adapt import GAIN, OFFSET, SHIFT
from .common import failed_note, pm
from .report import Panel, Plan, Result
from .summary import stats

ARCH = "conv:8:3,pool:2,dense:32,dense:10"
WEIGHT_LAYERS = 3
METHODS = ("sr", "r", "bc", "float")
LR, BATCH = "0.0625", 16
FULL = {"bits": [8, 4, 2], "layers": [1, 2, None], "seeds": [0, 1, 2, 3, 4], "pre_epochs": 30, "epochs": 10,
        "targets": ["cortex-m0plus", "cortex-m4"]}
QUICK = {"bits": [8], "layers": [1, None], "seeds": [0], "pre_epochs": 5, "epochs": 3,
         "targets": ["cortex-m0plus", "cortex-m4"]}


def layers_label(n):
    return f"all {WEIGHT_LAYERS}" if n is None else f"last {n}"


def plan(name, quick):
    g = QUICK if quick else FULL
    cells = []
    for method in METHODS:
        for bits in (g["bits"] if method != "float" else [8]):  # float has no grid: one bits value
            for n in g["layers"]:
                for seed in g["seeds"]:
                    measured = g["targets"] if method != "float" and seed == g["seeds"][0] else []
                    cells.append({"kind": "adapt", "arch": ARCH, "method": method, "bits": bits, "train_layers": n,
                                  "seed": seed, "pre_epochs": g["pre_epochs"], "epochs": g["epochs"], "lr": LR,
                                  "batch": BATCH, "measure": measured})
    return Plan(cells, {"arch": ARCH, "source": "digits, float, " f"{g['pre_epochs']} epochs",
                        "target": f"digits through a second sensor: per-pixel gain U{GAIN}, offset U{OFFSET} "
                                  f"(pixels 0..16), shifted {SHIFT} pixel right",
                        "bits": g["bits"], "train layers": [layers_label(n) for n in g["layers"]],
                        "seeds": g["seeds"], "adapt epochs": g["epochs"], "lr": LR, "batch": BATCH,
                        "measured on": g["targets"]})


def _group(records):
    groups = {}
    for r in records:
        if r["status"] == "ok":
            c = r["cell"]
            groups.setdefault((c["method"], c["bits"], c["train_layers"]), []).append(r)
    return groups


def _row(method, bits, n, recs, targets):
    reps = [r["report"] for r in recs]
    row = {"method": method, "bits": "f32" if method == "float" else bits, "train": layers_label(n),
           **{f"{field} {part}": stats([rep[field] for rep in reps])[part]
              for field in ("before", "after", "source_before", "source_after") for part in ("mean", "std")},
           "seeds": len(reps), "sram_bytes": reps[0]["sram_bytes"], "sram_saved_bytes": reps[0]["sram_saved_bytes"],
           "saturated": reps[0]["saturated"]}
    measured = next((rep["cycles_per_sample"] for rep in reps if rep["cycles_per_sample"]), {})
    for t in targets:
        row[f"{t} cycles/sample"] = round(measured[t]) if t in measured else None
    return row


def _cell(row, field):
    return pm({"mean": row[f"{field} mean"], "std": row[f"{field} std"]})


def analyze(name, plan, records):
    targets = plan.grid["measured on"]
    rows = [_row(*key, recs, targets) for key, recs in _group(records).items()]
    table = [{"method": r["method"], "bits": r["bits"], "train": r["train"], "target before": _cell(r, "before"),
              "target after": _cell(r, "after"), "source before": _cell(r, "source_before"),
              "source after": _cell(r, "source_after"),
              "SRAM B": r["sram_bytes"], "saved B": r["sram_saved_bytes"],
              **{t: "-" if r[f"{t} cycles/sample"] is None else f"{r[f'{t} cycles/sample']:,}" for t in targets}}
             for r in rows]
    panels = []
    for bits in plan.grid["bits"]:
        lines = []
        for method in METHODS:
            pts = [r for r in rows if r["method"] == method and r["bits"] in (bits, "f32")]
            if pts:
                xs = [WEIGHT_LAYERS if r["train"].startswith("all") else int(r["train"].split()[1]) for r in pts]
                lines.append((f"{method} after", xs, [r["after mean"] for r in pts], [r["after std"] for r in pts]))
                lines.append((f"{method} before", xs, [r["before mean"] for r in pts], None))
        panels.append(Panel(f"{bits}-bit grid (float: f32): target test accuracy", "trainable weight layers (last N)",
                            "target test accuracy", lines))
    for t in targets:
        lines = []
        for method in ("sr", "r", "bc"):
            for bits in plan.grid["bits"]:
                pts = [r for r in rows if r["method"] == method and r["bits"] == bits and r[f"{t} cycles/sample"]]
                if pts:
                    xs = [WEIGHT_LAYERS if r["train"].startswith("all") else int(r["train"].split()[1]) for r in pts]
                    lines.append((f"{method} {bits}-bit", xs, [r[f"{t} cycles/sample"] for r in pts], None))
        panels.append(Panel(f"{t}: measured cycles per training sample", "trainable weight layers (last N)",
                            "cycles per sample", lines))
    notes = [f"target = the digits through a second sensor: gain U{GAIN} and offset U{OFFSET} per pixel (fixed), "
             f"shifted {SHIFT} pixel right; values above the source's input scale (16) saturate, counted in the CSV",
             "before: the quantized pretrained net on the target's test split; after: adapted; source before/after: the "
             "source's test split (the same images, first sensor) before and after adapting: what adapting forgot",
             "cycles per sample: fxtrain measure (2 steps under Unicorn) / batch, seed 0; float has no C runtime; "
             "the cost model has no flash wait states, so the frozen layers' flash-resident weights cost as SRAM"]
    notes += [f"not measured: {r['report']['measure_error']}" for r in records
              if r["status"] == "ok" and r["report"].get("measure_error")][:1]
    return Result(name, plan.grid, [("Adapting to a second sensor", table)], rows, panels, notes + failed_note(records))
