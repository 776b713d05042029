"""Adam (bc, float) and the per-epoch rate hook: exact state, exact accounting, and no effect when unused."""
import numpy as np
import pytest

from fxtrain.engine.adam import adam_float, adam_state
from fxtrain.errors import ConfigError
from fxtrain.experiments.cells import nearest_lr, robbins_monro, run_train_cell
from fxtrain.experiments.spec import train_cell


def test_adam_first_step_is_alpha_times_the_gradient_sign():
    h = np.array([3e-3, -2e-5, 0.5], np.float32)
    mom, w = adam_state(5), np.zeros(3, np.float32)
    adam_float(w, h, np.float32(1.0), mom, 0, 0.01)
    # at t = 1, m_hat = h and sqrt(v_hat) = |h|: the step is alpha * sign(h), whatever the gradient's scale
    assert np.allclose(-w, 0.01 * np.sign(h), rtol=1e-4)
    assert mom[-1] == 0.0  # a layer's update leaves the step counter to the end of the step


@pytest.mark.parametrize("method", ["bc", "float"])
def test_adam_counts_one_step_per_batch_and_trains(method):
    from fxtrain.experiments.spec import train_config
    from fxtrain.training.job import prepare
    run = prepare(train_config(train_cell({"method": method, "optimizer": "adam", "lr": "0.00390625",
                                           "epochs": 2})))
    before = run.accuracy(run.data.X_test, run.data.y_test)
    run.step_epoch()
    run.step_epoch()
    # 1,438 samples in batches of 16: 89 full batches per epoch, two epochs
    assert run.state.mom[-1] == 2 * (len(run.data.y_train) // 16)
    assert run.state.history[-1]["test_accuracy"] > before + 0.3


def test_adam_state_is_counted_and_refused_for_integer_methods():
    from fxtrain.device.fit import fit_for
    from fxtrain.device.profiles import load_target
    shape, t = ((8, 8, 1), 10, 1438), load_target("cortex-m4")
    plain = fit_for("dense:32,dense:10", "bc", 8, 16, shape, t)
    adam = fit_for("dense:32,dense:10", "bc", 8, 16, shape, t, adam=True)
    n_w = 64 * 32 + 32 * 10
    # two float32 moments per weight plus the step counter, on a line of its own
    assert adam.cost.buffers["adam"] == 8 * n_w + 4 and adam.cost.labels["adam"] == "adam moments (2 x float32)"
    assert adam.cost.total_bytes - plain.cost.total_bytes == 8 * n_w + 4
    assert adam.cost.fmul_per_step > plain.cost.fmul_per_step
    with pytest.raises(ConfigError, match="bc and float only"):
        train_cell({"method": "sr", "optimizer": "adam"})
    # the simulation of a bc Adam run counts its state
    import fxtrain
    sim = fxtrain.simulate("cortex-m4", method="bc", optimizer="adam", lr="0.00390625", epochs=1)
    assert sim.fit.cost.buffers["adam"] == 8 * n_w + 4


def test_constant_schedule_cell_equals_fxtrain_train_byte_for_byte():
    import fxtrain
    from fxtrain.training.artifacts import model_arrays
    _, npz = run_train_cell(train_cell({"method": "sr", "bits": 4, "epochs": 2}))
    ref = fxtrain.train(method="sr", bits=4, epochs=2)
    from fxtrain._files import npz_bytes
    # a sweep cell is the same training run as fxtrain.train: identical model bytes
    assert npz == npz_bytes(model_arrays(ref.run))


def test_set_lr_changes_the_step_exactly_and_the_schedule_rounds_to_device_rates():
    from fractions import Fraction

    from fxtrain.experiments.spec import train_config
    from fxtrain.training.job import prepare
    run = prepare(train_config(train_cell({"batch": 16})))
    run.set_lr("0.03125")
    assert (run.m, run.k) == (1, 9)  # 2^-5 / 16 = 2^-9
    assert robbins_monro("0.0625", 0, 10) == "0.0625" and robbins_monro("0.0625", 10, 10) == "0.03125"
    m, k = nearest_lr(Fraction(1, 10))
    assert (m, k) == (52429, 19)  # round(0.1 * 2^19) = 52428.8 -> 52429
    with pytest.raises(ConfigError):
        run.set_lr("0.1")


@pytest.mark.parametrize("method", ["bc", "float"])
def test_adam_checkpointed_at_epoch_3_resumes_to_the_uninterrupted_6_epoch_run(tmp_path, method):
    import fxtrain
    from fxtrain.training.artifacts import CHECKPOINT
    kw = dict(method=method, optimizer="adam", lr="0.00390625", arch="dense:16,dense:10", bits=2)
    fxtrain.train(epochs=3, out=tmp_path / "cut", **kw)
    resumed = fxtrain.train(epochs=6, resume=tmp_path / "cut", **kw)
    whole = fxtrain.train(epochs=6, out=tmp_path / "whole", **kw)
    assert (tmp_path / "cut" / CHECKPOINT).read_bytes() == (tmp_path / "whole" / CHECKPOINT).read_bytes()
    assert resumed.history == whole.history
    assert resumed.run.state.mom[-1] == 6 * (len(whole.run.data.y_train) // 16)  # one tick per step
    for name in ("wq", "shadow", "wf", "mom"):
        a, b = getattr(resumed.run.state, name), getattr(whole.run.state, name)
        assert (a is None and b is None) or np.array_equal(a, b), name


def test_the_optimizer_is_one_option_with_one_line_refusals():
    import fxtrain
    with pytest.raises(ConfigError, match="pass --optimizer momentum"):
        fxtrain.train(momentum="0.875", epochs=1)
    with pytest.raises(ConfigError, match="needs its beta"):
        fxtrain.train(optimizer="momentum", epochs=1)
    with pytest.raises(ConfigError, match="bc and float only"):
        fxtrain.train(optimizer="adam", method="sr", epochs=1)
