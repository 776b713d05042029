"""Experiment ``convex``: SR, R and BC floors against the grid step on least squares and ridge.

The theorem held against the numbers (Li et al. 2017, SR on a convex F with
E|g|^2 <= G^2): the SR iterates' expected suboptimality has a term that does
not vanish with iterations, ``sqrt(d) * Delta * G / 2``. Here G is measured: the
root mean square of the stochastic gradients drawn in the second half of the
run. A floor is the mean of F(w) - F* over the last quarter of the run, averaged
over seeds.
"""
import numpy as np

from .convex import PROBLEMS, floor_of, sr_bound
from .report import Panel, Plan, Result

METHODS = ("float", "sr", "r", "bc")
SCHEDULES = {"constant": 0, "robbins-monro": 1}
LR = "0.03125"
FULL = {"d": 16, "n": 256, "epochs": 100, "seeds": [0, 1, 2, 3, 4], "delta_exps": list(range(2, 11))}
QUICK = {"d": 16, "n": 128, "epochs": 10, "seeds": [0, 1], "delta_exps": [2, 4, 6, 8]}
# Below twice float SGD's own floor, a measured floor is SGD's noise rather than the grid's.
FIT_MARGIN = 2.0


def plan(name, quick):
    g = QUICK if quick else FULL
    cells = [{"kind": "convex", "problem": p, "method": m, "schedule": s, "tau": tau, "lr": LR, **g}
             for p in PROBLEMS for s, tau in SCHEDULES.items() for m in METHODS]
    return Plan(cells, {"problems": "least-squares (rank d/2), ridge (lam 0.1)", "d": g["d"], "n": g["n"],
                        "epochs": g["epochs"], "seeds": g["seeds"], "lr": f"{LR} (constant, or /(1 + epoch/1))",
                        "Delta": f"2^-{g['delta_exps'][0]} .. 2^-{g['delta_exps'][-1]}"})


def _floors(curves):
    """Mean and std over seeds of each delta's floor: two lists."""
    fl = np.array([[floor_of(c) for c in row] for row in curves])
    return fl.mean(axis=1), fl.std(axis=1, ddof=1) if fl.shape[1] > 1 else np.zeros(len(fl))


def slope(deltas, floors, ref=None):
    """Least-squares slope of log2(floor) on log2(delta); with ``ref``, only floors above FIT_MARGIN * ref."""
    pts = [(d, f) for d, f in zip(deltas, floors) if f > 0 and (ref is None or f > FIT_MARGIN * ref)]
    if len(pts) < 2:
        return None
    x, y = np.log2([p[0] for p in pts]), np.log2([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _rows(recs):
    """CSV rows: one per (problem, schedule, method or bc weight, delta)."""
    rows, ref = [], {}
    for r in recs:
        c = r["cell"]
        if c["method"] == "float":
            ref[(c["problem"], c["schedule"])] = _floors(r["report"]["gap"])[0][0]
    for r in recs:
        c, rep = r["cell"], r["report"]
        series = [(c["method"] if c["method"] != "bc" else "bc w_b", rep["gap"])]
        if rep["gap_real"]:
            series.append(("bc w_r", rep["gap_real"]))
        for label, curves in series:
            mean, std = _floors(curves)
            for i, delta in enumerate(rep["deltas"]):
                g = float(np.mean(rep["g_rms"][i]))
                bound = sr_bound(c["d"], delta, g) if delta else None
                rows.append({"problem": c["problem"], "schedule": c["schedule"], "weights": label,
                             "delta": delta, "floor_mean": float(mean[i]), "floor_std": float(std[i]),
                             "G": g, "sr_bound": bound,
                             "floor_over_bound": float(mean[i]) / bound if bound else None,
                             "float_floor": float(ref[(c["problem"], c["schedule"])]), "seeds": len(c["seeds"])})
    return rows


def _slopes(rows):
    """One row per (problem, schedule, weights): fitted slopes and the floors at both ends."""
    out = []
    for key in dict.fromkeys((r["problem"], r["schedule"], r["weights"]) for r in rows):
        sel = [r for r in rows if (r["problem"], r["schedule"], r["weights"]) == key]
        if sel[0]["weights"] == "float":
            continue
        d, f = [r["delta"] for r in sel], [r["floor_mean"] for r in sel]
        ratios = [r["floor_over_bound"] for r in sel]
        out.append({"problem": key[0], "schedule": key[1], "weights": key[2],
                    "slope (all Delta)": slope(d, f), "slope (floor > 2x float)": slope(d, f, sel[0]["float_floor"]),
                    f"floor at {d[0]:g}": f[0], f"floor at 2^{int(np.log2(d[-1]))}": f[-1],
                    "float floor": sel[0]["float_floor"], "floor/bound min": min(ratios),
                    "floor/bound max": max(ratios)})
    return out


def _panels(rows, recs):
    panels = []
    for prob in PROBLEMS:
        for sched in SCHEDULES:
            sel = [r for r in rows if r["problem"] == prob and r["schedule"] == sched]
            lines = []
            for w in dict.fromkeys(r["weights"] for r in sel if r["weights"] != "float"):
                pts = [r for r in sel if r["weights"] == w]
                lines.append((w, [p["delta"] for p in pts], [p["floor_mean"] for p in pts], None))
            pts = [r for r in sel if r["weights"] == "sr"]
            lines.append(("sqrt(d) Delta G / 2", [p["delta"] for p in pts], [p["sr_bound"] for p in pts], None))
            lines.append(("float SGD", [pts[0]["delta"], pts[-1]["delta"]], [pts[0]["float_floor"]] * 2, None))
            panels.append(Panel(f"{prob}, {sched}: floor vs Delta", "grid step Delta", "F(w) - F*", lines,
                                logx=True, logy=True))
    lines = []
    for r in recs:
        c = r["cell"]
        if c["problem"] == "ridge" and c["schedule"] == "robbins-monro":
            rep = r["report"]
            for i in (0, len(rep["deltas"]) - 1) if c["method"] != "float" else (0,):
                curve = np.mean(rep["gap"][i], axis=0)
                label = c["method"] + (f" Delta={rep['deltas'][i]:g}" if rep["deltas"][i] else "")
                steps = (np.arange(len(curve)) + 1) * c["n"] // 4
                lines.append((label, steps.tolist(), np.maximum(curve, 1e-12).tolist(), None))
    panels.append(Panel("ridge, robbins-monro: F(w) - F* vs iteration", "iteration", "F(w) - F*", lines,
                        logx=True, logy=True))
    return panels


def analyze(name, plan, records):
    recs = [r for r in records if r["status"] == "ok"]
    rows = _rows(recs)
    slopes = _slopes(rows)
    lrs = next(r["report"]["lrs"] for r in recs if r["cell"]["schedule"] == "robbins-monro")
    notes = ["", "Exact grid arithmetic in NumPy (integer codes times Delta, float64 gradients), not the int8 "
             "engine: these problems are not softmax nets.",
             "Theorem (Li et al. 2017, SR): with E|g|^2 <= G^2, SR's suboptimality keeps a term sqrt(d)*Delta*G/2 "
             "that no number of iterations removes; G here is the measured RMS gradient.",
             "Robbins-Monro rates per epoch, rounded to m*2^-k: " + ", ".join(lrs[:6])
             + (f", ... {lrs[-1]}" if len(lrs) > 6 else "")]
    failed = len(records) - len(recs)
    if failed:
        notes.append(f"{failed} cell(s) failed; see their records")
    sr_rows = [r for r in rows if r["weights"] == "sr" and r["schedule"] == "robbins-monro"]
    table2 = [{k: r[k] for k in ("problem", "delta", "floor_mean", "floor_std", "G", "sr_bound",
                                 "floor_over_bound")} for r in sr_rows]
    return Result(name, plan.grid, [("Fitted log-log slopes of the floor against Delta", slopes),
                                    ("SR floor against the theorem's bound (robbins-monro)", table2)],
                  rows, _panels(rows, recs), notes)
