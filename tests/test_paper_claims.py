"""The convex problems' constants against direct computation: what the bounds of experiment ``convex`` are built on."""
import numpy as np
import pytest

from fxtrain.experiments.convex import _step
from fxtrain.experiments.convex_problems import (PROBLEMS, R, _sigmoid, constants, dloss, make_problem,
                                                 objective, second_moment)

D, N = 8, 64


def _grads(prob, w):
    """Per-sample gradients [n, d] at w, one sample at a time (the slow, plain reference)."""
    X, y, lam = prob["X"], prob["y"], prob["lam"]
    return np.array([dloss(prob["loss"], x @ w, yi) * x + lam * w for x, yi in zip(X, y)])


def _hessian(prob, w):
    X, lam = prob["X"], prob["lam"]
    if prob["loss"] == "squared":
        return X.T @ X / len(X) + lam * np.eye(X.shape[1])
    s = _sigmoid(X @ w)
    return (X.T * (s * (1 - s))) @ X / len(X) + lam * np.eye(X.shape[1])


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_second_moment_is_the_mean_squared_per_sample_gradient(name):
    prob = make_problem(name, 3, D, N)
    rng = np.random.default_rng(0)
    w = rng.uniform(-R, R, (4, D))
    z = w @ prob["X"].T
    got = second_moment(prob["loss"], z, prob["y"][None], np.sum(prob["X"] ** 2, axis=1)[None], prob["lam"], w)
    # the closed form used every step equals (1/n) sum_i |grad f_i(w)|^2 computed sample by sample
    want = [np.mean(np.sum(_grads(prob, wc) ** 2, axis=1)) for wc in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_optimum_is_stationary_inside_the_box_and_below_every_point(name):
    prob = make_problem(name, 1, D, N)
    w = prob["w_star"]
    # the full gradient vanishes at w*, and w* lies inside the box, so F* is also the box's minimum
    assert np.abs(_grads(prob, w).mean(axis=0)).max() < 1e-9
    assert np.abs(w).max() < R
    pts = np.random.default_rng(2).uniform(-R, R, (50, D))
    f = objective(prob["loss"], np.repeat(prob["X"][None], 50, 0), np.repeat(prob["y"][None], 50, 0), prob["lam"], pts)
    assert (f >= prob["f_star"]).all()


def test_constants_bound_the_curvature_they_name():
    rng = np.random.default_rng(5)
    for name in PROBLEMS:
        prob = make_problem(name, 0, D, N)
        k = constants(prob, D)
        assert k["D"] == 2 * R * np.sqrt(D)
        for _ in range(20):
            w, v = rng.uniform(-R, R, D), rng.uniform(-R, R, D)
            # mu: no Hessian in the box has a smaller eigenvalue; L2: the Hessian moves at most L2 |w - v|
            assert np.linalg.eigvalsh(_hessian(prob, w))[0] >= k["mu"] - 1e-12
            assert np.linalg.norm(_hessian(prob, w) - _hessian(prob, v), 2) <= k["L2"] * np.linalg.norm(w - v) + 1e-12
        # least squares is rank deficient (not strongly convex); the quadratics' Hessians do not move at all
        assert (k["mu"] == 0) == (name == "least-squares") and (k["L2"] == 0) == (PROBLEMS[name]["loss"] == "squared")


@pytest.mark.parametrize("method", ["sr", "r", "bc", "float"])
def test_every_update_stays_in_the_box_and_on_the_grid(method):
    rng = np.random.default_rng(1)
    delta = 2.0 ** -3
    state = {"q": np.zeros((3, D)), "wr": np.zeros((3, D)), "w": np.zeros((3, D))}
    for _ in range(20):
        _step(method, state, rng.normal(0, 100, (3, D)), 1.0, delta, rng)  # steps far larger than the box
        w = state["w"] if method == "float" else state["q"] * delta
        assert np.abs(w).max() <= R and np.abs(state["wr"]).max() <= R
        assert method == "float" or np.array_equal(state["q"], np.round(state["q"]))
