"""Synthetic data sets generated from the seed: two moons and two spirals (2 features, 2 classes)."""
import math

import numpy as np

N_SAMPLES = 1000
MOONS_NOISE = 0.15


def make_moons(n_samples=N_SAMPLES, noise=MOONS_NOISE, seed=0):
    """Two interleaving half circles, the points scikit-learn's ``make_moons`` gives for the same seed.

    The first ``n // 2`` points lie on the upper moon (class 0), the rest on the
    lower one (class 1); they are shuffled with ``RandomState(seed)`` and then get
    Gaussian noise from the same generator, in that order.

    Returns
    -------
    X : float64 [n, 2]; y : int64 [n].
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    gen = np.random.RandomState(seed)
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)),
                   np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    order = np.arange(n_samples)
    gen.shuffle(order)
    X, y = X[order], y[order]
    X += gen.normal(scale=noise, size=X.shape)
    return X, y


def make_spirals(n_samples=N_SAMPLES, seed=0):
    """Two interleaved spirals of 1.5 turns with small Gaussian noise.

    Returns
    -------
    X : float64 [n, 2]; y : int64 [n].
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.25, 1.0, n_samples)
    y = rng.integers(0, 2, n_samples)
    angle = 3.0 * math.pi * t + math.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) + rng.normal(0, 0.03, (n_samples, 2))
    return X, y
