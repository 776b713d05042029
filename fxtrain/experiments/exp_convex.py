"""Experiment ``convex``: SR, R and BC floors against the grid step on least squares, ridge and logistic regression.

What is held against the numbers (the theorem statements as a secondary source gives
them; see docs/experiments.md): for a mu-strongly convex F on a domain of diameter D,
with E|g|^2 <= G^2 and alpha_t = 1/(mu (t + 1)), the suboptimality at the averaged
iterate w_bar_T is at most (1 + log(T + 1)) G^2 / (2 mu T) plus a term that no number
of steps removes: sqrt(d) Delta G / 2 for SR, D L2 sqrt(d) Delta / 2 for BC's w_r
(L2: the Lipschitz constant of the Hessian, 0 on a quadratic). G here is measured
two ways: the largest exact second moment (1/n) sum_i |grad f_i(w_t)|^2 over every
step (what the theorems assume), and the RMS of the gradients drawn in the second
half (smaller). A floor is F - F* at w_bar_T, and beside it the mean of F(w_t) - F*
over the last quarter of the run, each averaged over seeds.
"""
import numpy as np

from .convex import bc_bound_delta, floor_of, rate_term, sr_bound
from .convex_problems import PROBLEMS, R
from .report import Panel, Plan, Result

METHODS = ("float", "sr", "r", "bc")
# schedule: tau (epochs) of the Robbins-Monro rate; "theorem" is 1/(mu (t + 1)) per step
SCHEDULES = {"constant": 0, "robbins-monro": 1, "theorem": 0}
LR = "0.03125"
FULL = {"d": 16, "n": 256, "epochs": 100, "seeds": [0, 1, 2, 3, 4], "delta_exps": list(range(2, 11))}
# quick: long enough (40 epochs) for the averaged iterate to leave its start behind, Delta no finer than
# 2^-6, where SR's floor is still well above float SGD's own
QUICK = {"d": 16, "n": 128, "epochs": 40, "seeds": [0, 1, 2], "delta_exps": [2, 3, 4, 5, 6]}
QUICK_SCHEDULES = ("robbins-monro", "theorem")
# Below twice float SGD's own floor, a measured floor is SGD's noise rather than the grid's.
FIT_MARGIN = 2.0


def _schedules(problem, quick):
    """The theorem's rate needs mu > 0: least squares (rank d/2) runs only the other two."""
    names = QUICK_SCHEDULES if quick else tuple(SCHEDULES)
    return [s for s in names if s != "theorem" or PROBLEMS[problem]["lam"] > 0]


def plan(name, quick):
    g = QUICK if quick else FULL
    cells = [{"kind": "convex", "problem": p, "method": m, "schedule": s, "tau": SCHEDULES[s], "lr": LR, **g}
             for p in PROBLEMS for s in _schedules(p, quick) for m in METHODS]
    return Plan(cells, {"problems": "least-squares (rank d/2), ridge (lam 0.1), logistic (lam 0.05)",
                        "d": g["d"], "n": g["n"], "epochs": g["epochs"], "seeds": g["seeds"], "box R": R,
                        "lr": f"{LR} constant, {LR}/(1 + epoch/1), or 1/(mu (t+1)) per step",
                        "Delta": f"2^-{g['delta_exps'][0]} .. 2^-{g['delta_exps'][-1]}"})


def _stats(per_seed):
    """Mean and std (sample) over seeds of each delta's value: [n_delta][n_seed] -> two arrays."""
    a = np.asarray(per_seed, dtype=float)
    return a.mean(axis=1), a.std(axis=1, ddof=1) if a.shape[1] > 1 else np.zeros(len(a))


def slope(deltas, floors, ref=None):
    """Least-squares slope of log2(floor) on log2(delta); with ``ref``, only floors above FIT_MARGIN * ref."""
    pts = [(d, f) for d, f in zip(deltas, floors) if f > 0 and (ref is None or f > FIT_MARGIN * ref)]
    if len(pts) < 2:
        return None
    x, y = np.log2([p[0] for p in pts]), np.log2([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _series(rep, method):
    """(label, tail curves, averaged-iterate gaps) per set of weights a cell reports."""
    if method != "bc":
        return [(method, rep["gap"], rep["avg_gap"])]
    return [("bc w_b", rep["gap"], rep["avg_gap"]), ("bc w_r", rep["gap_real"], rep["avg_gap_real"])]


def _rows(recs):
    """CSV rows: one per (problem, schedule, weights, delta)."""
    ref = {}
    for r in recs:
        c = r["cell"]
        if c["method"] == "float":
            rep = r["report"]
            ref[(c["problem"], c["schedule"])] = (_stats([[floor_of(x) for x in rep["gap"][0]]])[0][0],
                                                  _stats(rep["avg_gap"])[0][0])
    rows = []
    for r in recs:
        c, rep = r["cell"], r["report"]
        k = rep["consts"]
        mu, l2, diam = (float(np.mean([x[key] for x in k])) for key in ("mu", "L2", "D"))
        for label, curves, avg in _series(rep, c["method"]):
            tail, tail_sd = _stats([[floor_of(x) for x in row] for row in curves])
            at_avg, avg_sd = _stats(avg)
            for i, delta in enumerate(rep["deltas"]):
                g_max = float(np.sqrt(np.max(rep["g2_max"][i])))
                rt = rate_term(g_max ** 2, mu, rep["steps"]) if c["schedule"] == "theorem" else None
                rows.append({"problem": c["problem"], "schedule": c["schedule"], "weights": label, "delta": delta,
                             "avg_floor_mean": float(at_avg[i]), "avg_floor_std": float(avg_sd[i]),
                             "floor_mean": float(tail[i]), "floor_std": float(tail_sd[i]),
                             "G_max": g_max, "G_rms": float(np.mean(rep["g_rms"][i])), "mu": mu, "L2": l2, "D": diam,
                             "rate_term": rt, "sr_bound_delta": sr_bound(c["d"], delta, g_max) if delta else None,
                             "bc_bound_delta": bc_bound_delta(c["d"], delta, l2, diam) if delta else None,
                             "float_floor": float(ref[(c["problem"], c["schedule"])][0]),
                             "float_avg_floor": float(ref[(c["problem"], c["schedule"])][1]),
                             "seeds": len(c["seeds"]), "steps": rep["steps"]})
    return rows


def _pick(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _slopes(rows):
    """One row per (problem, schedule, weights): slopes at w_bar_T and of the tail mean, and the end floors."""
    out = []
    for key in dict.fromkeys((r["problem"], r["schedule"], r["weights"]) for r in rows if r["weights"] != "float"):
        sel = _pick(rows, problem=key[0], schedule=key[1], weights=key[2])
        d, fa, ft = [r["delta"] for r in sel], [r["avg_floor_mean"] for r in sel], [r["floor_mean"] for r in sel]
        out.append({"problem": key[0], "schedule": key[1], "weights": key[2],
                    "slope w_bar (all)": slope(d, fa), "slope w_bar (> 2x float)": slope(d, fa, sel[0]["float_avg_floor"]),
                    "slope tail (all)": slope(d, ft), "slope tail (> 2x float)": slope(d, ft, sel[0]["float_floor"]),
                    f"w_bar floor 2^{int(np.log2(d[0]))}": fa[0], f"w_bar floor 2^{int(np.log2(d[-1]))}": fa[-1],
                    "float w_bar floor": sel[0]["float_avg_floor"]})
    return out


def _bounds(rows):
    """SR and BC w_r at w_bar_T beside the bounds, under the theorem's rate (the Delta terms alone elsewhere)."""
    out = []
    for prob in PROBLEMS:
        sched = "theorem" if _pick(rows, problem=prob, schedule="theorem") else "robbins-monro"
        for sr in _pick(rows, problem=prob, schedule=sched, weights="sr"):
            wr = _pick(rows, problem=prob, schedule=sched, weights="bc w_r", delta=sr["delta"])[0]
            rt = sr["rate_term"] or 0.0
            sr_b, bc_b = rt + sr["sr_bound_delta"], (wr["rate_term"] or 0.0) + wr["bc_bound_delta"]
            out.append({"problem": prob, "schedule": sched, "Delta": sr["delta"], "SR F(w_bar)-F*": sr["avg_floor_mean"],
                        "G max": sr["G_max"], "G rms": sr["G_rms"], "rate term": sr["rate_term"],
                        "sqrt(d) Delta G/2": sr["sr_bound_delta"], "SR bound": sr_b,
                        "SR / bound": sr["avg_floor_mean"] / sr_b, "BC w_r F(w_bar)-F*": wr["avg_floor_mean"],
                        "D L2 sqrt(d) Delta/2": wr["bc_bound_delta"], "BC bound": bc_b,
                        "BC / bound": wr["avg_floor_mean"] / bc_b if bc_b else None})
    return out


def _constants(rows):
    out = []
    for prob in PROBLEMS:
        sel = _pick(rows, problem=prob, weights="sr")
        out.append({"problem": prob, "mu": sel[0]["mu"], "L2": sel[0]["L2"], "D = 2R sqrt(d)": sel[0]["D"],
                    "G max (largest over runs)": max(r["G_max"] for r in sel),
                    "G rms (second half)": float(np.median([r["G_rms"] for r in sel]))})
    return out


def _panels(rows):
    panels = []
    for prob in PROBLEMS:
        for sched in dict.fromkeys(r["schedule"] for r in _pick(rows, problem=prob)):
            sel = _pick(rows, problem=prob, schedule=sched)
            lines = []
            for w in dict.fromkeys(r["weights"] for r in sel if r["weights"] != "float"):
                pts = _pick(sel, weights=w)
                lines.append((w, [p["delta"] for p in pts], [max(p["avg_floor_mean"], 1e-12) for p in pts], None))
            pts = _pick(sel, weights="sr")
            lines.append(("sqrt(d) Delta G/2", [p["delta"] for p in pts], [p["sr_bound_delta"] for p in pts], None))
            if pts[0]["bc_bound_delta"]:  # BC's Delta term, drawn where it is not 0 (L2 > 0)
                lines.append(("D L2 sqrt(d) Delta/2", [p["delta"] for p in pts], [p["bc_bound_delta"] for p in pts],
                              None))
            lines.append(("float SGD", [pts[0]["delta"], pts[-1]["delta"]], [pts[0]["float_avg_floor"]] * 2, None))
            panels.append(Panel(f"{prob}, {sched}: F(w_bar_T) - F* vs Delta", "grid step Delta", "F(w_bar) - F*",
                                lines, logx=True, logy=True))
    return panels


def analyze(name, plan, records):
    recs = [r for r in records if r["status"] == "ok"]
    rows = _rows(recs)
    rm = next((r["report"]["lrs"] for r in recs if r["cell"]["schedule"] == "robbins-monro"), [])
    th = next((r for r in recs if r["cell"]["schedule"] == "theorem"), None)
    notes = ["", "Exact grid arithmetic in NumPy (integer codes times Delta, float64 gradients), not the int8 "
             f"engine: these problems are not softmax nets. Every iterate is projected onto [-{R:g}, {R:g}]^d.",
             "Bounds (a secondary source's statement of the paper's strongly convex theorems, with alpha_t = "
             "1/(mu(t+1)) and the averaged iterate): SR (1+log(T+1))G^2/(2 mu T) + sqrt(d) Delta G/2; BC's w_r "
             "(1+log(T+1))G^2/(2 mu T) + D L2 sqrt(d) Delta/2. G = G max, the largest exact second moment's root.",
             "Robbins-Monro rates per epoch, rounded to m*2^-k: " + ", ".join(rm[:6])
             + (f", ... {rm[-1]}" if len(rm) > 6 else "")]
    if th:
        notes.append(f"theorem's rate, {th['cell']['problem']} seed {th['cell']['seeds'][0]}: "
                     f"{th['report']['lrs'][0]} at the first step, {th['report']['lrs'][1]} at the last")
    failed = len(records) - len(recs)
    if failed:
        notes.append(f"{failed} cell(s) failed; see their records")
    return Result(name, plan.grid, [("Problem constants (mean over seeds)", _constants(rows)),
                                    ("Fitted log-log slopes of the floor against Delta", _slopes(rows)),
                                    ("SR and BC w_r at the averaged iterate against the bounds", _bounds(rows))],
                  rows, _panels(rows), notes)
