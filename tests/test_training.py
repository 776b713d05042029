"""Accuracy, determinism, resume and the integer-only promise of the sr engine."""
import json
from dataclasses import replace

import numpy as np
import pytest

from fxtrain.engine.numbers import qmax
from fxtrain.training.checkpoint import resume
from fxtrain.training.config import TrainConfig
from fxtrain.training.job import output_folder, train_job
from fxtrain.training.run import Run


SEEDS = (0, 1, 2)


def final_accuracy(trained, method, bits=8):
    """Test accuracy after the default 30 epochs, for each of SEEDS."""
    return np.array([trained(method, bits=bits, seed=s).state.history[-1]["test_accuracy"] for s in SEEDS])


def test_sr_8bit_reaches_093_and_tracks_float(trained):
    sr, fl = final_accuracy(trained, "sr"), final_accuracy(trained, "float")
    # on every seed, and on average within 1.5 points of the float32 reference
    assert sr.min() >= 0.93 and sr.mean() >= fl.mean() - 0.015


def test_bc_8bit_reaches_093(trained):
    assert final_accuracy(trained, "bc").min() >= 0.93


def test_low_bits_order_bc_above_sr_above_r(trained):
    # the paper's ordering at a coarse grid, on the mean over seeds and on each seed:
    # R stalls, SR explores, BC accumulates in float
    acc = {m: final_accuracy(trained, m, bits=4) for m in ("bc", "sr", "r")}
    assert acc["bc"].mean() > acc["sr"].mean() > acc["r"].mean()
    assert np.all(acc["sr"] > acc["r"] + 0.3)
    for s in SEEDS:
        assert trained("r", bits=4, seed=s).state.history[-1]["changed_fraction"] == 0.0  # R is frozen


def test_same_seed_same_weights_other_seed_different(digits, trained):
    again = Run(TrainConfig(method="sr", bits=8, seed=0), digits)
    for _ in range(again.cfg.epochs):
        again.step_epoch()
    ref = trained("sr")
    assert np.array_equal(again.state.wq, ref.state.wq) and np.array_equal(again.state.bq, ref.state.bq)
    assert int(again.state.rng[0]) == int(ref.state.rng[0])
    other = trained("sr", seed=1)
    assert not np.array_equal(other.state.wq, ref.state.wq)


def epochs(run, n):
    for _ in range(n):
        run.step_epoch()
    return run


def full_and_resumed(cfg, digits, tmp_path, split):
    """The same config trained straight through, and stopped after ``split`` epochs then resumed."""
    full = epochs(Run(cfg, digits), cfg.epochs)
    first = Run(replace(cfg, epochs=split), digits)
    with output_folder(tmp_path, first) as folder:
        train_job(first, folder)
    resumed = epochs(resume(tmp_path, cfg, digits), cfg.epochs - split)
    for name, arr in full.state.arrays().items():
        assert np.array_equal(arr, resumed.state.arrays()[name]), name  # every state array, bit for bit
    return full, resumed


@pytest.mark.parametrize("method", ["sr", "bc", "float"])
def test_resume_is_bit_identical(tmp_path, digits, method):
    full, resumed = full_and_resumed(TrainConfig(method=method, bits=4, epochs=6, seed=3), digits, tmp_path, 2)
    assert resumed.state.history == full.state.history


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
def test_sr_weights_stay_on_grid_and_state_is_integer(tmp_path, digits, bits):
    run = Run(TrainConfig(method="sr", bits=bits, epochs=1), digits)
    with output_folder(tmp_path, run) as folder:
        train_job(run, folder)
    w = run.state.wq.astype(np.int64)
    if bits == 1:
        assert set(np.unique(w)) <= {-1, 1}
    else:
        assert w.min() >= -qmax(bits) and w.max() <= qmax(bits)
    assert run.state.wq.dtype == (np.int8 if bits <= 8 else np.int16)
    with np.load(tmp_path / "checkpoint.npz") as z:
        kinds = {k: z[k].dtype.kind for k in z.files if k != "meta"}
    assert all(k in "iu" for k in kinds.values()), kinds  # no float array in sr's state
    assert all(v.dtype.kind in "iu" for v in run.state.arrays().values())


def test_conv_arch_trains(digits):
    run = Run(TrainConfig(method="sr", arch="conv:4:3,pool:2,dense:10", epochs=3), digits)
    for _ in range(3):
        run.step_epoch()
    assert run.state.history[-1]["test_accuracy"] > 0.8
    # records are plain JSON: they survive a round trip unchanged
    assert json.loads(json.dumps(run.state.history)) == run.state.history


@pytest.mark.parametrize("method,dtype", [("sr", np.int16), ("r", np.int16), ("bc", np.float32),
                                          ("float", np.float32)])
def test_momentum_state_and_resume(tmp_path, digits, method, dtype):
    cfg = TrainConfig(method=method, bits=8, epochs=4, momentum="0.875", optimizer="momentum", lr="0.0078125")
    full, _ = full_and_resumed(cfg, digits, tmp_path, 2)
    assert full.state.mom.dtype == dtype and np.any(full.state.mom != 0)
    # r is exempt: at this small per-step rate most velocity updates fall in R's dead zone
    # (|step| < half a grid step), the stall the paper predicts; the others must learn
    if method != "r":
        assert full.state.history[-1]["test_accuracy"] > 0.85


def test_sr_momentum_keeps_weights_on_grid(digits):
    run = Run(TrainConfig(method="sr", bits=4, epochs=2, momentum="0.75", optimizer="momentum"), digits)
    run.step_epoch()
    assert np.abs(run.state.wq.astype(int)).max() <= 7
    assert all(v.dtype.kind in "iu" for v in run.state.arrays().values())
