"""Quantized SGD on least squares and ridge in exact grid arithmetic (NumPy, not the int8 engine).

These problems are not softmax nets, so the engine's passes do not apply. The
update rules are the engine's, on a grid of step ``delta`` with no saturation
(the theorems assume an unbounded grid): weights are integer codes ``q`` with
value ``q * delta``; the stochastic gradient and the step are float64.

* ``sr``: ``q <- floor(q - alpha g / delta + u)``, ``u ~ U[0, 1)``: rounds up with
  probability equal to the dropped fraction, so its mean is exact;
* ``r``: ``q <- floor(q - alpha g / delta + 1/2)``, round half up;
* ``bc``: ``w_r <- w_r - alpha g(q delta)``, ``q = floor(w_r / delta + 1/2)``;
* ``float``: plain SGD, the reference without a grid.

F(w) = 1/(2n) |X w - y|^2 + lam/2 |w|^2 with one sample per step, drawn with
replacement by ``numpy.random.default_rng(seed)``. Every (delta, seed) pair is one
chain; all chains of a cell step together as arrays.
"""
import numpy as np

from .cells import robbins_monro

NOISE = 0.5
# least squares: X has rank d/2, so F is convex but not strongly convex; ridge adds lam.
PROBLEMS = {"least-squares": {"lam": 0.0, "rank_div": 2}, "ridge": {"lam": 0.1, "rank_div": 1}}
EVALS_PER_EPOCH = 4
FLOOR_SHARE = 0.25  # the floor is the mean suboptimality over the last quarter of the evaluations


def make_problem(name, seed, d, n):
    """(X [n, d], y [n], lam, w* [d], F*) of problem ``name``, generated from ``seed``."""
    spec = PROBLEMS[name]
    rng = np.random.default_rng(seed)
    rank = d // spec["rank_div"]
    X = rng.standard_normal((n, rank)) @ (rng.standard_normal((rank, d)) / np.sqrt(rank))
    y = X @ rng.uniform(-1.0, 1.0, d) + NOISE * rng.standard_normal(n)
    H = X.T @ X / n + spec["lam"] * np.eye(d)
    w_star = np.linalg.lstsq(H, X.T @ y / n, rcond=None)[0]  # the minimum-norm minimiser when H is singular
    f_star = objective(X[None], y[None], spec["lam"], w_star[None])[0]
    return X, y, spec["lam"], w_star, f_star


def objective(X, y, lam, w):
    """F of each chain: X [C, n, d], y [C, n], w [C, d] -> [C]."""
    r = np.einsum("cnd,cd->cn", X, w) - y
    return 0.5 * np.mean(r * r, axis=1) + 0.5 * lam * np.sum(w * w, axis=1)


def _step(method, state, g, alpha, delta, rng):
    """One update of every chain in place; ``state`` holds q (codes), wr (bc) or w (float)."""
    if method == "float":
        state["w"] -= alpha * g
    elif method == "bc":
        state["wr"] -= alpha * g
        state["q"] = np.floor(state["wr"] / delta + 0.5)
    else:
        v = state["q"] - alpha * g / delta
        state["q"] = np.floor(v + (rng.random(v.shape) if method == "sr" else 0.5))


def _weights(method, state, delta):
    return state["w"] if method == "float" else state["q"] * delta


def simulate(cell):
    """Run one convex cell (a problem, a method, a schedule; chains over deltas x seeds).

    Returns a dict of lists: ``gap`` [n_delta][n_seed][evals] of F(w) - F*,
    ``gap_real`` (bc's w_r, else None), ``g_rms`` [n_delta][n_seed] (root mean square
    of the drawn gradients over the second half), and ``lrs`` (one per epoch).
    """
    deltas = [0.0] if cell["method"] == "float" else [2.0 ** -e for e in cell["delta_exps"]]
    seeds, d, n = cell["seeds"], cell["d"], cell["n"]
    probs = [make_problem(cell["problem"], s, d, n) for s in seeds]
    C = len(deltas) * len(seeds)
    X = np.stack([probs[c % len(seeds)][0] for c in range(C)])
    Y = np.stack([probs[c % len(seeds)][1] for c in range(C)])
    lam = probs[0][2]
    f_star = np.array([probs[c % len(seeds)][4] for c in range(C)])
    delta = np.array([deltas[c // len(seeds)] for c in range(C)])[:, None]
    rng = np.random.default_rng([cell["seeds"][0], len(seeds), d, n])
    state = {"q": np.zeros((C, d)), "wr": np.zeros((C, d)), "w": np.zeros((C, d))}
    steps_per_eval = n // EVALS_PER_EPOCH
    gaps, gaps_real, gsq, gcount, lrs = [], [], np.zeros(C), 0, []
    rows = np.arange(C)
    for epoch in range(cell["epochs"]):
        lr = robbins_monro(cell["lr"], epoch, cell["tau"])
        lrs.append(lr)
        alpha = float(lr)
        for t in range(n):
            w = _weights(cell["method"], state, delta)
            idx = rng.integers(0, n, C)
            x = X[rows, idx]
            g = x * (np.sum(x * w, axis=1) - Y[rows, idx])[:, None] + lam * w
            if 2 * epoch >= cell["epochs"]:
                gsq += np.sum(g * g, axis=1)
                gcount += 1
            _step(cell["method"], state, g, alpha, delta, rng)
            if (t + 1) % steps_per_eval == 0:
                gaps.append(objective(X, Y, lam, _weights(cell["method"], state, delta)) - f_star)
                if cell["method"] == "bc":
                    gaps_real.append(objective(X, Y, lam, state["wr"]) - f_star)
    shape = (len(deltas), len(seeds), -1)
    return {"deltas": deltas, "gap": np.array(gaps).T.reshape(shape).tolist(),
            "gap_real": np.array(gaps_real).T.reshape(shape).tolist() if gaps_real else None,
            "g_rms": np.sqrt(gsq / max(gcount, 1)).reshape(len(deltas), len(seeds)).tolist(), "lrs": lrs}


def floor_of(curve):
    """The floor of one chain: mean F(w) - F* over the last quarter of its evaluations."""
    curve = np.asarray(curve)
    return float(curve[-max(1, int(len(curve) * FLOOR_SHARE)):].mean())


def sr_bound(d, delta, g):
    """The Delta term of the SR theorem's bound, sqrt(d) * Delta * G / 2."""
    return float(np.sqrt(d) * delta * g / 2)


def run_convex_cell(cell):
    """A sweep runner: ``(report, None)``; the report is :func:`simulate`'s result plus the cell."""
    return {**simulate(cell), "cell": cell}, None
