"""The convex problems of experiment ``convex``, their optima, and the constants the theorems name.

Each problem is F(w) = (1/n) sum_i phi(x_i . w, y_i) + lam/2 |w|^2 over the box
[-R, R]^d, with one of two losses:

* ``squared``: phi(z, y) = (z - y)^2 / 2 (least squares, and ridge with lam > 0);
* ``logistic``: phi(z, y) = log(1 + exp(-y z)) with y in {-1, +1}.

The squared loss has a constant Hessian, so the Hessian's Lipschitz constant L2 is
0 and the secondary source's BC term D * L2 * sqrt(d) * Delta / 2 vanishes; the
logistic loss is the strongly convex, non-quadratic case where that term is not 0.
"""
import numpy as np

NOISE = 0.5
# R: the box every iterate is projected onto (a power of two, so R / Delta is a whole number of grid
# steps and the projection of a grid point stays on the grid). Every optimum here lies well inside it.
R = 2.0
# least squares: X has rank d/2, so F is convex but not strongly convex; ridge and logistic add lam.
PROBLEMS = {"least-squares": {"loss": "squared", "lam": 0.0, "rank_div": 2},
            "ridge": {"loss": "squared", "lam": 0.1, "rank_div": 1},
            "logistic": {"loss": "logistic", "lam": 0.05, "rank_div": 1}}
# logistic inputs are scaled so |x| is about 3: the margins x_i . w* are then about 1 in size, where the
# loss's third derivative (and with it L2's effect) is near its largest, rather than about 0 as at z = 0
LOGISTIC_SCALE = 3.0
# max over z of |s(z)(1 - s(z))(1 - 2 s(z))| for the logistic s: the loss's third derivative bound, 1/(6 sqrt 3)
PHI3_MAX = 1.0 / (6.0 * np.sqrt(3.0))


def make_problem(name, seed, d, n):
    """The problem ``name`` generated from ``seed``: a dict with X [n, d], y [n], lam, loss, w_star [d], f_star."""
    spec = PROBLEMS[name]
    rng = np.random.default_rng(seed)
    if spec["loss"] == "squared":
        rank = d // spec["rank_div"]
        X = rng.standard_normal((n, rank)) @ (rng.standard_normal((rank, d)) / np.sqrt(rank))
        y = X @ rng.uniform(-1.0, 1.0, d) + NOISE * rng.standard_normal(n)
        H = X.T @ X / n + spec["lam"] * np.eye(d)
        w_star = np.linalg.lstsq(H, X.T @ y / n, rcond=None)[0]  # the minimum-norm minimiser when H is singular
    else:
        X = rng.standard_normal((n, d)) * (LOGISTIC_SCALE / np.sqrt(d))
        # labels drawn from the model itself, so the classes overlap and the minimiser is finite without lam too
        y = np.where(rng.random(n) < _sigmoid(X @ rng.uniform(-1.0, 1.0, d) * 2.0), 1.0, -1.0)
        w_star = _newton_logistic(X, y, spec["lam"])
    prob = {"X": X, "y": y, "lam": spec["lam"], "loss": spec["loss"], "w_star": w_star}
    prob["f_star"] = float(objective(prob["loss"], X[None], y[None], prob["lam"], w_star[None])[0])
    return prob


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # tanh form: no overflow for large |z|


def _newton_logistic(X, y, lam):
    """The minimiser of the regularised logistic loss, by Newton's method to float64 precision."""
    n, d = X.shape
    w = np.zeros(d)
    for _ in range(50):
        s = _sigmoid(-y * (X @ w))
        grad = -(X.T @ (y * s)) / n + lam * w
        H = (X.T * (s * (1 - s))) @ X / n + lam * np.eye(d)
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-15:
            break
    return w


def dloss(loss, z, y):
    """phi'(z, y), elementwise: the per-sample gradient is phi'(x . w, y) x + lam w."""
    return z - y if loss == "squared" else -y * _sigmoid(-y * z)


def objective(loss, X, y, lam, w):
    """F of each chain: X [C, n, d], y [C, n], w [C, d] -> [C]."""
    return loss_of_z(loss, np.einsum("cnd,cd->cn", X, w), y, lam, w)


def loss_of_z(loss, z, y, lam, w):
    """F of each chain from its margins z = X w [C, n] (saves the product when z is at hand)."""
    phi = 0.5 * (z - y) ** 2 if loss == "squared" else np.logaddexp(0.0, -y * z)
    return np.mean(phi, axis=1) + 0.5 * lam * np.sum(w * w, axis=1)


def second_moment(loss, z, y, xsq, lam, w):
    """(1/n) sum_i |grad f_i(w)|^2 of each chain, exactly: the theorems' E|g|^2 at w for one-sample SGD.

    With c_i = phi'(z_i): |c_i x_i + lam w|^2 = c_i^2 |x_i|^2 + 2 lam c_i z_i + lam^2 |w|^2, so
    only the margins z [C, n] and |x_i|^2 ``xsq`` [C, n] are needed.
    """
    c = dloss(loss, z, y)
    return np.mean(c * c * xsq + 2 * lam * c * z, axis=1) + lam * lam * np.sum(w * w, axis=1)


def constants(prob, d):
    """mu, L2 and D of a problem: the strong convexity, the Hessian's Lipschitz constant, the box's diameter.

    mu is the smallest eigenvalue of the Hessian over the box: exact for the squared loss
    (the Hessian is constant), lam for the logistic loss (its data term's curvature can fall
    to nearly 0 far out in the box, so only lam is certain). L2 is 0 for the squared loss
    and PHI3_MAX * mean |x_i|^3 for the logistic loss, a bound in the operator norm.
    """
    X, lam = prob["X"], prob["lam"]
    if prob["loss"] == "squared":
        mu = float(np.linalg.eigvalsh(X.T @ X / len(X))[0]) + lam
        l2 = 0.0
    else:
        mu = lam
        l2 = float(PHI3_MAX * np.mean(np.linalg.norm(X, axis=1) ** 3))
    # a rank-deficient X gives an eigenvalue of about -1e-16: that problem is not strongly convex
    return {"mu": max(mu, 0.0) if mu > 1e-12 else 0.0, "L2": l2, "D": float(2 * R * np.sqrt(d))}
