"""Fine-tuning the last layers (--train-layers N): the layers under them run forward only, keep their
weights and biases byte for byte, make no generator draw, and cost no SRAM for weights or gradients."""
import numpy as np
import pytest
from numba import njit

import fxtrain
from cli_helpers import invoke, one_line_error
from fxtrain.device.cost import account
from fxtrain.device.work import by_phase, work
from fxtrain.engine.fixedpoint import xorshift32
from fxtrain.engine.network import parse_arch
from fxtrain.errors import ConfigError
from fxtrain.training.config import TrainConfig
from fxtrain.training.job import prepare

CONV = "conv:4:3,pool:2,dense:10"


def _trained(epochs=2, **kw):
    run = prepare(TrainConfig(epochs=epochs, **kw))
    st = run.state
    before = {name: a.copy() for name, a in st.arrays().items()}
    for _ in range(epochs):
        run.step_epoch()
    return run, before


def _frozen_slices(run):
    """(weights, biases) slices of the layers under the lowest that trains."""
    n_w = sum(s.n_weights for s in run.layers[:run.low])
    n_b = sum(s.n_bias for s in run.layers[:run.low])
    return slice(0, n_w), slice(0, n_b)


@pytest.mark.parametrize("method", ["sr", "r", "bc", "float"])
@pytest.mark.parametrize("arch, n", [("dense:32,dense:16,dense:10", 1), ("dense:32,dense:16,dense:10", 2),
                                     (CONV, 1)])
def test_frozen_layers_keep_every_byte_and_the_rest_learn(method, arch, n):
    run, before = _trained(method=method, arch=arch, train_layers=n)
    w, b = ("wf", "bf") if method == "float" else ("wq", "bq")
    fw, fb = _frozen_slices(run)
    st = run.state.arrays()
    assert run.low > 0
    assert np.array_equal(st[w][fw], before[w][fw]) and np.array_equal(st[b][fb], before[b][fb])
    if method == "bc":  # the shadow under them does not move either
        assert np.array_equal(st["shadow"][fw], before["shadow"][fw])
    # the trained layers do change
    assert not np.array_equal(st[w][fw.stop:], before[w][fw.stop:])


@njit(cache=True)
def _draws_between(a, b, limit):
    r = np.array([a], np.uint32)
    for i in range(limit):
        if r[0] == b:
            return i
        xorshift32(r)
    return -1


@pytest.mark.parametrize("arch, n, per_step", [
    ("dense:32,dense:10", 1, 320 + 10),                              # the last layer's weights and biases
    ("dense:32,dense:16,dense:10", 2, (512 + 16) + (160 + 10) + 16 * 16),  # and the error sent into layer 2
    (CONV, 1, 360 + 10)])
def test_frozen_layers_make_no_draw(arch, n, per_step):
    run = prepare(TrainConfig(epochs=1, arch=arch, train_layers=n))
    start = int(run.state.rng[0])
    run.step_epoch()
    n_train, steps = len(run.data.y_train), len(run.data.y_train) // 16
    # the shuffle's n - 1 draws, then per step one draw per stochastically rounded value of the trained
    # layers: their updates and the errors sent between them, none for the lowest trained layer's input
    assert _draws_between(start, int(run.state.rng[0]), 10**7) == (n_train - 1) + steps * per_step


def test_training_every_layer_by_count_is_the_default_run():
    full, _ = _trained(epochs=1)
    all_named, _ = _trained(epochs=1, train_layers=2)
    assert all_named.low == 0
    assert np.array_equal(full.state.wq, all_named.state.wq) and np.array_equal(full.state.rng, all_named.state.rng)


def test_a_resumed_fine_tuning_run_continues_bit_for_bit(tmp_path):
    whole = fxtrain.train(epochs=3, train_layers=1)
    fxtrain.train(epochs=1, train_layers=1, out=tmp_path / "run")
    resumed = fxtrain.train(epochs=3, train_layers=1, resume=tmp_path / "run")
    assert np.array_equal(whole.run.state.wq, resumed.run.state.wq)
    assert np.array_equal(whole.run.state.rng, resumed.run.state.rng)
    # a resume that trains other layers is another run
    with pytest.raises(ConfigError, match="train_layers=1 \\(now 2\\)"):
        fxtrain.train(epochs=3, train_layers=2, resume=tmp_path / "run")


@pytest.mark.parametrize("value, needle", [(0, "positive integer"), (3, "more than the 2 weight layers"),
                                           (-1, "positive integer")])
def test_bad_train_layers_are_one_line(value, needle):
    r = invoke("train", "--epochs", 1, "--train-layers", value)
    assert r.exit_code == 1 and needle in one_line_error(r)


def test_the_accounting_keeps_frozen_weights_out_of_sram():
    layers = parse_arch("conv:8:3,pool:2,dense:10", (8, 8, 1), 10)
    full = account(layers, "sr", 8, 16, 1437, 64, 10)
    last = account(layers, "sr", 8, 16, 1437, 64, 10, low=2)
    # SRAM holds the last layer's packed rows (10 rows of 72 bytes) and biases only
    assert last.buffers["weights"] == 10 * 72 and last.buffers["biases"] == 4 * 10
    assert full.buffers["weights"] == 8 * 12 + 10 * 72 and last.full_bytes == full.total_bytes
    assert last.sram_saved_bytes == full.total_bytes - last.total_bytes > 0 and full.sram_saved_bytes == 0
    # the frozen conv runs its forward pass only: no gradient taps, no error into the pool below dense
    units = by_phase(work(layers, "sr", 8, 16, 1437, 64, 10, low=2))
    assert "grad_tap" not in units["update"] and "pool_back" not in units["backward"]
    assert "conv_tap" in units["forward"] and units["update"]["update_sr"] == 720


def test_simulate_and_compare_show_the_sram_saved():
    r = invoke("simulate", "--target", "cortex-m4", "--epochs", 1, "--arch", "conv:8:3,pool:2,dense:10",
               "--train-layers", 1)
    assert r.exit_code == 0, r.output
    assert "bytes of SRAM saved against training all" in r.output and "no flash wait states" in r.output
    r = invoke("compare", "--target", "cortex-m4", "--bits", "8", "--arch", "conv:8:3,pool:2,dense:10",
               "--train-layers", 1)
    assert r.exit_code == 0 and "saved B" in r.output, r.output


def test_the_device_step_exports_a_frozen_run_with_its_trunk_in_flash(tmp_path):
    fxtrain.train(epochs=1, train_layers=1, out=tmp_path / "run")
    r = invoke("export", tmp_path / "run", "--out", tmp_path / "fw", "--train-step")
    assert r.exit_code == 0, r.output
    header = (tmp_path / "fw" / "fx_train.h").read_text()
    # the frozen layer's rows and biases are const arrays; RAM holds the last layer's (10 rows of 32 bytes)
    assert "static const FX_WORD_ALIGNED uint8_t fx_frozen_weights[2048]" in header
    assert "static const int32_t fx_frozen_biases[32]" in header and "#define FX_LOW 1" in header
    assert "uint8_t fx_buf_weights[320];" in header
    # inference export is unaffected
    assert invoke("export", tmp_path / "run", "--out", tmp_path / "fw2").exit_code == 0
