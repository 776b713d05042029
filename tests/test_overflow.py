"""No integer sum wraps: bounds fixed at configuration, int64 where int32 cannot hold a sum."""
import numpy as np
import pytest

from fxtrain.data import Dataset, load_dataset
from fxtrain.engine import conv as C, kernels as K, requant as Q
from fxtrain.engine.scratch import work_layout
from fxtrain.engine.bounds import BIAS_TERM_LIMIT, plan_accumulators
from fxtrain.engine.network import CONV, LayerSpec, build_desc, parse_arch
from fxtrain.errors import ConfigError
from fxtrain.training.config import TrainConfig
from fxtrain.training.run import Run


def test_conv_gradient_at_batch_256_on_28x28_is_exact():
    d = build_desc([LayerSpec(CONV, (28, 28, 1), (26, 26, 1), kh=3, kw=3)])[0]
    x, err = np.full(256 * 28 * 28, 127, np.int8), np.full(256 * 26 * 26, 127, np.int8)
    layers = parse_arch("conv:1:3,dense:2", (28, 28, 1), 2)
    grad = np.zeros(9, plan_accumulators(layers, 8, 256, 1).grad_dtype)
    C.conv_backward(d, x, err, np.ones(9, np.int8), 256, grad, np.zeros(0, np.int64), False)
    # the exact sum, 256 * 26 * 26 * 127 * 127, which int32 would have wrapped to -1,503,747,072
    assert grad.tolist() == [2_791_220_224] * 9
    grad[:] = 0
    lay = work_layout(layers[:1], 256, np.int32, np.int64)
    C.conv_backward_int(d, x, err, np.ones(9, np.int8), 256, grad, np.zeros(0, np.int64), False,
                        np.zeros(*lay["cols"]), np.zeros(*lay["errs"]))
    assert grad.tolist() == [2_791_220_224] * 9  # the integer kernel's int64 sums too


def test_dense_forward_with_fan_in_140000_is_exact():
    layers = parse_arch("dense:1,dense:2", (140_000,), 2)
    plan = plan_accumulators(layers, 8, 1, 1)
    assert plan.acc_wide and not plan.grad_wide  # the forward sum is the one beyond int32
    out = np.zeros(1, plan.acc_dtype)
    d = build_desc(layers)[0]
    K.dense_forward(d, np.full(140_000, 127, np.int8), np.full(140_000, 127, np.int8), 1, out)
    assert out.tolist() == [140_000 * 127 * 127]
    out[:] = 0
    K.dense_forward_int(d, np.full(140_000, 127, np.int8), np.full(140_000, 127, np.int8), np.zeros(0, np.int32), 1,
                        out, np.zeros(0, np.int32), np.zeros(1, np.int64), True)
    assert out.tolist() == [140_000 * 127 * 127]  # the integer kernel's int64 sum too


def test_bias_term_is_clamped_not_wrapped():
    def add_bias(acc, bias, shift):  # what forward_int does with a layer's bias: terms, then added
        terms = np.zeros(1, np.int64)
        clamped = Q.bias_terms(np.array([bias], np.int32), 0, 1, shift, terms)
        Q.add_terms(acc, 1, 1, terms)
        return clamped
    acc = np.array([2**31 - 100], np.int64)
    # a bias far beyond the term limit is clamped (and counted), never wrapped
    assert add_bias(acc, 2**31 - 1, -4) == 1 and acc.tolist() == [2**31 - 100 + BIAS_TERM_LIMIT]
    acc = np.array([2**31 - 100], np.int64)
    assert add_bias(acc, 1000, 0) == 0
    assert acc.tolist() == [2**31 + 900]


@pytest.mark.parametrize("arch, shape, batch, acc_wide, grad_wide", [
    ("dense:32,dense:10", (64,), 16, False, False),     # the default: int32 everywhere
    ("conv:8:3,pool:2,dense:10", (28, 28, 1), 195, False, False),
    ("conv:8:3,pool:2,dense:10", (28, 28, 1), 196, False, True),   # 196 * 26 * 26 * 128 * 127 > 2**31 - 1
    ("dense:1,dense:2", (140_000,), 1, True, False),
])
def test_plan_switches_to_int64_exactly_at_the_bound(arch, shape, batch, acc_wide, grad_wide):
    plan = plan_accumulators(parse_arch(arch, shape, 10 if "10" in arch else 2), 8, batch, 1)
    assert (plan.acc_wide, plan.grad_wide) == (acc_wide, grad_wide)
    assert bool(plan.describe()) == (acc_wide or grad_wide)  # every int64 sum is named


def test_an_update_beyond_int64_is_refused():
    layers = parse_arch("conv:8:3,dense:2", (4096, 4096, 1), 2)
    with pytest.raises(ConfigError, match="beyond int64"):
        plan_accumulators(layers, 8, 2**16, 2**23)


def _crafted(tmp_path):
    """The reviewer's case: 3,000 copies of one 48x48 image, bright exactly where class 0's initial
    dense weight exceeds class 1's, 95% labelled 0. Its conv weight gradient is coherent over batch
    and positions, so at batch 2048 it passes 2**31."""
    shape = (48, 48, 1)
    probe = Dataset("probe", np.zeros((2400, *shape), np.int8), np.tile([0, 1], 1200),
                    np.zeros((600, *shape), np.int8), np.tile([0, 1], 300), -7, shape, 2)
    w1 = Run(TrainConfig(arch="conv:1:3:same,dense:2", batch=2048), probe).state.wq[9:].reshape(2, -1)
    img = (w1[0] > w1[1]).astype(np.float64).reshape(shape)
    y = np.zeros(3000, np.int64)
    y[np.random.default_rng(0).permutation(3000)[:150]] = 1
    path = tmp_path / "crafted.npz"
    np.savez(path, X=np.repeat(img[None], 3000, axis=0), y=y)
    return str(path)


def _float_conv_gradient(run, data):
    """d(mean cross-entropy)/d(conv weight) in float64 at the initial weights, by central differences."""
    st = run.state
    wd = st.wq[9:].astype(float).reshape(2, -1) * 2.0 ** st.e_w[1]
    x = np.pad(data.X_train[0, :, :, 0].astype(float) * 2.0 ** data.e_x, 1)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3))  # [48, 48, 3, 3]
    p1 = float(np.mean(data.y_train == 1))

    def loss(wc):
        z = wd @ np.maximum(np.einsum("ijab,ab->ij", win, wc), 0).ravel()
        lse = np.log(np.exp(z - z.max()).sum()) + z.max()
        return (1 - p1) * (lse - z[0]) + p1 * (lse - z[1])
    wc = st.wq[:9].astype(float).reshape(3, 3) * 2.0 ** st.e_w[0]
    h = 1e-4 * 2.0 ** st.e_w[0]
    return np.array([(loss(wc + h * np.eye(9)[k].reshape(3, 3)) - loss(wc - h * np.eye(9)[k].reshape(3, 3)))
                     / (2 * h) for k in range(9)])


def test_crafted_case_trains_downhill(tmp_path):
    path = _crafted(tmp_path)
    data = load_dataset(path, 0)
    run = Run(TrainConfig(arch="conv:1:3:same,dense:2", batch=2048, data=path, epochs=1), data)
    assert run.acc_plan.grad_wide and run.ws.grad.dtype == np.int64
    g = _float_conv_gradient(run, data)
    before = run.state.wq[:9].astype(np.int64)
    run.step_epoch()  # one step: 2,400 training samples, batch 2048
    moved = run.state.wq[:9].astype(np.int64) - before
    # every conv weight that moved went against its true gradient; with the int32 wrap two went uphill
    assert np.all(moved * g <= 0), (moved, g)
    assert np.count_nonzero(moved) >= 7
