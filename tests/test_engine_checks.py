"""The checked entry points refuse a wrong buffer with a clear Python error before any compiled
code sees it (compiled code does not check bounds: a short buffer would be silent corruption)."""
import numpy as np
import pytest

from fxtrain.engine.epoch import Rule, train_epoch
from fxtrain.engine.numbers import qmax
from fxtrain.training.config import TrainConfig
from fxtrain.training.run import Run


@pytest.fixture(scope="module")
def wide(digits):
    """A run that takes the packed kernels and bulk draws (a dense layer of 16,384 weights)."""
    return Run(TrainConfig(method="sr", bits=8, arch="dense:256,dense:10", batch=64), digits)


def call(run, **swap):
    """train_epoch on ``run`` with some of its arrays swapped for bad ones."""
    rule = Rule(8, qmax(8), run.m, run.k, run.cfg.batch, run.mom_j, False, 0)
    X = swap.pop("X", run.X)
    ws = run.ws._replace(**swap)
    return train_epoch(run.method, run._net(), run._params(), X, run.data.e_x, run.data.y_train, rule, ws)


@pytest.mark.parametrize("swap,error,words", [
    (lambda r: {"draws": np.zeros(8, np.uint32)}, ValueError, "draws must have shape"),
    (lambda r: {"wpack": np.zeros(r.ws.wpack.shape, np.int64)}, TypeError, "wpack must have dtype int32"),
    (lambda r: {"items": r.ws.items[::2].copy()}, ValueError, "items must have shape"),
    (lambda r: {"X": r.X.astype(np.float32)}, TypeError, "X must have dtype int8"),
    (lambda r: {"X": np.asfortranarray(r.X)}, ValueError, "X must be C-contiguous"),
])
def test_a_wrong_buffer_is_refused_by_name(wide, swap, error, words):
    before = wide.state.wq.copy()
    with pytest.raises(error, match=words):
        call(wide, **swap(wide))
    assert np.array_equal(wide.state.wq, before)  # nothing ran


@pytest.mark.parametrize("method", ["sr", "float"])
def test_scratch_is_specified_once(monkeypatch, method):
    """FIELDS names every buffer: the Scratch tuple, the layout and the check all use exactly its names."""
    from fxtrain.engine import scratch
    from fxtrain.training.config import TrainConfig
    from fxtrain.training.job import prepare
    run = prepare(TrainConfig(method=method, arch="conv:4:3,pool:2,dense:10", epochs=1))
    assert list(scratch.Scratch._fields) == list(scratch.FIELDS) == list(scratch.scratch_layout(
        run.layers, 16, 100, 64, run.acc_plan, method == "float"))
    checked = []
    real = scratch.require
    monkeypatch.setattr(scratch, "require", lambda name, *a: (checked.append(name), real(name, *a)))
    scratch.check_scratch(run.ws, run._net(), len(run.data.y_train), method == "float")
    # the integer epoch's check covers every buffer; the float epoch's, those its loops use
    assert set(checked) == set(scratch.FIELDS) if method == "sr" else set(checked) < set(scratch.FIELDS)
