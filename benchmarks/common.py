"""Shared helpers for the benchmark scripts: pinned threads, tiled data, training-only epochs.

Import this module before numpy anywhere else in a script: it pins BLAS/OpenMP to one
thread so every implementation in a table runs single-threaded, like fxtrain's kernels.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from fxtrain.data import load_dataset  # noqa: E402
from fxtrain.training.config import TrainConfig  # noqa: E402
from fxtrain.training.run import Run  # noqa: E402


def digits(tile=1, seed=0):
    """The digits split with its training set repeated ``tile`` times (the test set unchanged)."""
    d = load_dataset("digits", seed)
    if tile == 1:
        return d
    return replace(d, X_train=np.ascontiguousarray(np.tile(d.X_train, (tile, 1, 1, 1))),
                   y_train=np.ascontiguousarray(np.tile(d.y_train, tile)))


def make_run(data, method, arch, batch, bits=8, lr="0.0625", seed=0):
    return Run(TrainConfig(method=method, bits=bits, batch=batch, lr=lr, arch=arch, seed=seed), data)


def train_epoch(run):
    """One epoch of training only: ``Run.step_epoch`` with its evaluation switched off.

    ``step_epoch`` makes one jitted call (the method's compiled epoch) and then scores
    the train and test sets; here the scoring is stubbed out on this instance, so the
    timing is training only while the jitted call keeps exactly the arguments that
    fxtrain/training/run.py passes (no copy here to drift when they change). What remains
    besides the jitted call is a copy of the weights and a count of changed ones.
    """
    if "accuracy" not in vars(run):
        run.accuracy = lambda X, y: 0.0
    return run.step_epoch()


def epoch_fn(run):
    """A no-argument callable running one training-only epoch of ``run``."""
    return lambda: train_epoch(run)


def full_epoch_fn(run):
    """A no-argument callable running ``Run.step_epoch`` as the CLI does (with evaluation)."""
    return run.step_epoch


def median_time(fn, reps, warmup=1):
    """Median wall time in seconds of ``fn()`` over ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loglog_slope(x, y):
    """Least-squares slope of log(y) against log(x): the growth exponent."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def macs_per_sample(layers):
    """Training multiply-accumulates per sample: forward, weight gradient, and the error
    sent below (every weighted layer but the first); pooling counts 0."""
    total = 0
    for i, s in enumerate(layers):
        if s.n_weights:
            per_pass = s.n_weights * s.out_shape[0] * s.out_shape[1]
            total += per_pass * (3 if i > 0 else 2)
    return total
