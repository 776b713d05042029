"""Quantized SGD on the convex problems of :mod:`convex_problems` in exact grid arithmetic (NumPy, not the int8 engine).

These problems are not softmax nets, so the engine's passes do not apply. The
update rules are the engine's, on a grid of step ``delta``: weights are integer
codes ``q`` with value ``q * delta``; the stochastic gradient and the step are
float64. Every iterate is projected onto the box [-R, R]^d (the theorems assume a
bounded domain; R / delta is a whole number, so a projected code stays a code):

* ``sr``: ``q <- floor(q - alpha g / delta + u)``, ``u ~ U[0, 1)``: rounds up with
  probability equal to the dropped fraction, so its mean is exact;
* ``r``: ``q <- floor(q - alpha g / delta + 1/2)``, round half up;
* ``bc``: ``w_r <- w_r - alpha g(q delta)``, ``q = floor(w_r / delta + 1/2)``;
* ``float``: plain SGD, the reference without a grid.

One sample per step, drawn with replacement by ``numpy.random.default_rng``. Every
(delta, seed) pair is one chain; all chains of a cell step together as arrays.
The rate follows the cell's schedule: ``constant``, ``robbins-monro``
(``lr / (1 + epoch / tau)`` per epoch, rounded to m*2^-k as on a device) or
``theorem`` (``1 / (mu (t + 1))`` per step t, the strongly convex theorems' own
rate, in float64; mu per seed from :func:`convex_problems.constants`).
"""
import numpy as np

from .cells import robbins_monro
from .convex_problems import PROBLEMS, R, constants, dloss, loss_of_z, make_problem, objective, second_moment

EVALS_PER_EPOCH = 4
FLOOR_SHARE = 0.25  # the tail floor is the mean suboptimality over the last quarter of the evaluations


def _step(method, state, g, alpha, delta, rng):
    """One update of every chain in place, then the projection onto the box."""
    if method == "float":
        state["w"] = np.clip(state["w"] - alpha * g, -R, R)
    elif method == "bc":
        state["wr"] = np.clip(state["wr"] - alpha * g, -R, R)
        state["q"] = np.floor(state["wr"] / delta + 0.5)
    else:
        v = state["q"] - alpha * g / delta
        q = np.floor(v + (rng.random(v.shape) if method == "sr" else 0.5))
        state["q"] = np.clip(q, -R / delta, R / delta)


def _weights(method, state, delta):
    return state["w"] if method == "float" else state["q"] * delta


def _chains(cell):
    """Stacked data of every chain (delta-major, seed-minor) and the per-seed constants."""
    deltas = [0.0] if cell["method"] == "float" else [2.0 ** -e for e in cell["delta_exps"]]
    seeds, d, n = cell["seeds"], cell["d"], cell["n"]
    probs = [make_problem(cell["problem"], s, d, n) for s in seeds]
    C = len(deltas) * len(seeds)
    seed_of = [c % len(seeds) for c in range(C)]
    X = np.stack([probs[i]["X"] for i in seed_of])
    return {"deltas": deltas, "probs": probs, "C": C, "X": X, "Y": np.stack([probs[i]["y"] for i in seed_of]),
            "xsq": np.sum(X * X, axis=2), "f_star": np.array([probs[i]["f_star"] for i in seed_of]),
            "delta": np.array([deltas[c // len(seeds)] for c in range(C)])[:, None],
            "consts": [constants(p, d) for p in probs], "seed_of": seed_of}


def _theorem_mu(ch):
    """mu of each chain [C, 1], for the theorem's rate 1 / (mu (t + 1))."""
    return np.array([ch["consts"][i]["mu"] for i in ch["seed_of"]])[:, None]


def simulate(cell):
    """Run one convex cell (a problem, a method, a schedule; chains over deltas x seeds).

    Returns a dict of lists: ``gap`` [n_delta][n_seed][evals] of F(w) - F*,
    ``gap_real`` (bc's w_r, else None), ``avg_gap`` and ``avg_gap_real`` [n_delta][n_seed]
    (F - F* at the averaged iterate w_bar_T = (1/T) sum of the T iterates the gradients
    were taken at), ``g_rms`` (root mean square of the drawn gradients, second half),
    ``g2_max`` (the largest exact second moment (1/n) sum_i |grad f_i(w_t)|^2 over every
    step), ``consts`` (mu, L2, D per seed), ``steps`` and ``lrs`` (the rate per epoch,
    or for ``theorem`` the first and last steps' rates).
    """
    ch = _chains(cell)
    C, X, Y, xsq, delta = ch["C"], ch["X"], ch["Y"], ch["xsq"], ch["delta"]
    d, n, method = cell["d"], cell["n"], cell["method"]
    loss, lam = PROBLEMS[cell["problem"]]["loss"], ch["probs"][0]["lam"]
    rng = np.random.default_rng([cell["seeds"][0], len(cell["seeds"]), d, n])
    state = {"q": np.zeros((C, d)), "wr": np.zeros((C, d)), "w": np.zeros((C, d))}
    gaps, gaps_real, lrs, rows = [], [], [], np.arange(C)
    gsq, gcount, g2max = np.zeros(C), 0, np.zeros(C)
    wsum, wrsum = np.zeros((C, d)), np.zeros((C, d))
    steps = cell["epochs"] * n
    theorem = cell["schedule"] == "theorem"
    mu = _theorem_mu(ch) if theorem else None
    for epoch in range(cell["epochs"]):
        if not theorem:
            lrs.append(robbins_monro(cell["lr"], epoch, cell["tau"]))
        for t in range(n):
            alpha = 1.0 / (mu * (epoch * n + t + 1)) if theorem else float(lrs[-1])
            w = _weights(method, state, delta)
            wsum += w
            if method == "bc":
                wrsum += state["wr"]
            z = np.einsum("cnd,cd->cn", X, w)
            g2max = np.maximum(g2max, second_moment(loss, z, Y, xsq, lam, w))
            idx = rng.integers(0, n, C)
            g = X[rows, idx] * dloss(loss, z[rows, idx], Y[rows, idx])[:, None] + lam * w
            if 2 * epoch >= cell["epochs"]:
                gsq += np.sum(g * g, axis=1)
                gcount += 1
            _step(method, state, g, alpha, delta, rng)
            if (t + 1) % (n // EVALS_PER_EPOCH) == 0:
                w = _weights(method, state, delta)
                gaps.append(loss_of_z(loss, np.einsum("cnd,cd->cn", X, w), Y, lam, w) - ch["f_star"])
                if method == "bc":
                    gaps_real.append(objective(loss, X, Y, lam, state["wr"]) - ch["f_star"])
    if theorem:
        lrs = [f"{1 / ch['consts'][0]['mu']:.4g}", f"{1 / (ch['consts'][0]['mu'] * steps):.4g}"]
    out = _shaped(cell, ch, {"gap": np.array(gaps).T, "gap_real": np.array(gaps_real).T if gaps_real else None,
                             "avg_gap": wsum / steps, "avg_gap_real": wrsum / steps if method == "bc" else None,
                             "g_rms": np.sqrt(gsq / max(gcount, 1)), "g2_max": g2max})
    return {**out, "deltas": ch["deltas"], "consts": ch["consts"], "steps": steps, "lrs": lrs}


def _shaped(cell, ch, raw):
    """Per-chain arrays as nested lists [n_delta][n_seed](...); the averaged iterates become F - F* there."""
    shape, loss, lam = (len(ch["deltas"]), len(cell["seeds"])), PROBLEMS[cell["problem"]]["loss"], ch["probs"][0]["lam"]
    out = {}
    for key, a in raw.items():
        if a is not None and key.startswith("avg_gap"):
            a = objective(loss, ch["X"], ch["Y"], lam, a) - ch["f_star"]
        out[key] = None if a is None else np.asarray(a).reshape(shape + a.shape[1:]).tolist()
    return out

def floor_of(curve):
    """The tail floor of one chain: mean F(w) - F* over the last quarter of its evaluations."""
    curve = np.asarray(curve)
    return float(curve[-max(1, int(len(curve) * FLOOR_SHARE)):].mean())


def sr_bound(d, delta, g):
    """The Delta term of the SR theorem's bound, sqrt(d) * Delta * G / 2."""
    return float(np.sqrt(d) * delta * g / 2)


def bc_bound_delta(d, delta, l2, diam):
    """The Delta term of BC's bound as the secondary source gives it, D * L2 * sqrt(d) * Delta / 2."""
    return float(diam * l2 * np.sqrt(d) * delta / 2)


def rate_term(g2, mu, steps):
    """The strongly convex theorems' vanishing term (1 + log(T + 1)) G^2 / (2 mu T), T steps."""
    return float((1 + np.log(steps + 1)) * g2 / (2 * mu * steps)) if mu > 0 else None


def run_convex_cell(cell):
    """A sweep runner: ``(report, None)``; the report is :func:`simulate`'s result plus the cell."""
    return {**simulate(cell), "cell": cell}, None
