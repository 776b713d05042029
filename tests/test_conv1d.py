"""Time series on the simulator: non-square conv and pool, the 1-D tokens (conv1d, pool1d) and global average
pooling (gap), each held to a plain NumPy reference written here apart from the engine; every export path takes
them (the inference exports: tests/test_conv1d_export.py; the training step: tests/test_conv1d_device.py)."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fxtrain
from cli_helpers import invoke, one_line_error
from fxtrain.engine.bounds import plan_accumulators
from fxtrain.engine.draws import fill_draws
from fxtrain.engine.epoch import IntParams, Net
from fxtrain.engine.fixedpoint import new_rng, sr_div
from fxtrain.engine.gap import channel_sums, gap_backward_int
from fxtrain.engine.network import build_desc, parse_arch
from fxtrain.engine.passes import backward_float, backward_int, forward_float, forward_int, mac_backward_int, \
    mac_forward_int
from fxtrain.engine.scratch import allocate, scratch_layout
from fxtrain.errors import ConfigError
from fxtrain.layers import parse_token
from fxtrain.layers.gap import average_round

NB = 3  # samples per batch in the kernel tests


def i8(seed, shape, lo=-127, hi=127):
    return np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(np.int8)


def conv_ref(x, w, ph, pw):
    """out[n, y, x, o] = sum over ky, kx, c of w[o, ky, kx, c] * xpad[n, y + ky, x + kx, c], in x's dtype."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[1:3]
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1
    y = np.zeros((n, oh, ow, w.shape[0]), x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            y += np.einsum("nyxc,oc->nyxo", xp[:, ky:ky + oh, kx:kx + ow], w[:, ky, kx])
    return y


def conv_grads_ref(x, w, err, ph, pw):
    """(weight gradient, error below) of conv_ref for the output error ``err``."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[1:3]
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = err.shape[1:3]
    g, bp = np.zeros_like(w), np.zeros_like(xp)
    for ky in range(kh):
        for kx in range(kw):
            g[:, ky, kx] = np.einsum("nyxo,nyxc->oc", err, xp[:, ky:ky + oh, kx:kx + ow])
            bp[:, ky:ky + oh, kx:kx + ow] += np.einsum("nyxo,oc->nyxc", err, w[:, ky, kx])
    return g, bp[:, ph:ph + h, pw:pw + wd]


def pool_ref(x, ph, pw):
    n, h, wd, c = x.shape
    oh, ow = h // ph, wd // pw
    return x[:, :oh * ph, :ow * pw].reshape(n, oh, ph, ow, pw, c).max(axis=(2, 4))


def engine(spec, nb=NB):
    """(desc, Scratch) of a net of the one layer ``spec``, integer buffers for batch ``nb``."""
    plan = plan_accumulators([spec], 8, nb, 1)
    n_in = int(np.prod(spec.in_shape))
    return build_desc([spec]), allocate(scratch_layout([spec], nb, nb, n_in, plan, False))


CASES = [("conv:4:1x3", (5, 6, 2)), ("conv:3:3x1:same", (5, 6, 2)), ("conv1d:8:5", (1, 12, 3)),
         ("conv1d:4:3:same", (1, 12, 3))]


@pytest.mark.parametrize("tok,shape", CASES)
def test_conv_float_forward_and_integer_sums_equal_numpy(tok, shape):
    s = parse_token(tok, shape)
    x, w = i8(1, (NB, *shape)), i8(2, (s.out_shape[2], s.kh, s.kw, shape[2]))
    xf, wf = x * np.float32(2.0**-7), w * np.float32(2.0**-6)
    desc, ws = engine(s)
    acts = np.zeros((2, ws.acts.shape[1]), np.float32)
    acts[0, :x.size] = xf.ravel()
    forward_float(desc, wf.ravel(), np.zeros(s.n_bias, np.float32), acts, NB, True)
    want = conv_ref(xf.astype(np.float64), wf.astype(np.float64), s.pad_h, s.pad_w)
    # the float engine is the float convolution, whatever the kernel's shape and padding
    assert np.allclose(acts[1, :want.size].reshape(want.shape), want, atol=1e-5, rtol=0)
    exact = conv_ref(x.astype(np.int64), w.astype(np.int64), s.pad_h, s.pad_w)
    for fast in (True, False):  # the packed sweeps and the reference loops
        out = np.zeros(exact.size, np.int32)
        mac_forward_int(desc[0], 0, x.ravel(), w.ravel(), ws, NB, out, True, fast)
        # the int32 sums before the shift equal the integer reference exactly, in both kernel families
        assert np.array_equal(out.reshape(exact.shape), exact), fast


@pytest.mark.parametrize("tok,shape", [CASES[1], CASES[3]])
def test_conv_integer_gradient_and_error_below_equal_numpy(tok, shape):
    s = parse_token(tok, shape)
    x, w = i8(3, (NB, *shape)), i8(4, (s.out_shape[2], s.kh, s.kw, shape[2]))
    err = i8(5, (NB, *s.out_shape), -128)
    g, back = conv_grads_ref(x.astype(np.int64), w.astype(np.int64), err.astype(np.int64), s.pad_h, s.pad_w)
    desc, ws = engine(s)
    for fast in (True, False):
        below = np.zeros(x.size, np.int32)
        mac_backward_int(desc[0], 0, x.ravel(), err.ravel(), w.ravel(), ws, NB, below, True, True, fast)
        # exact sums: the weight gradient, the bias gradient and the unscaled error for the layer below
        assert np.array_equal(ws.grad[:w.size].reshape(w.shape), g), fast
        assert np.array_equal(ws.gbias[:s.n_bias], err.astype(np.int64).sum(axis=(0, 1, 2))), fast
        assert np.array_equal(below.reshape(x.shape), back), fast


def test_pool1d_forward_and_backward_equal_numpy():
    s = parse_token("pool1d:2", (1, 9, 4))  # a ragged last step, dropped
    assert (s.kh, s.kw, s.out_shape) == (1, 2, (1, 4, 4))
    x = np.random.default_rng(6).permutation(np.arange(-100, 100))[:NB * 36].reshape(NB, 1, 9, 4).astype(np.int8)
    desc, ws = engine(s)
    acts = np.zeros((2, ws.acts.shape[1]), np.float32)
    acts[0, :x.size] = x.ravel()
    forward_float(desc, np.zeros(0, np.float32), np.zeros(0, np.float32), acts, NB, True)
    assert np.allclose(acts[1, :NB * 16].reshape(NB, 1, 4, 4), pool_ref(x, 1, 2), atol=1e-5)
    err = np.arange(1, NB * 16 + 1, dtype=np.float32)
    below = np.zeros(x.size, np.float32)
    backward_float(desc, 0, np.zeros(0, np.float32), acts, err, below, ws.grad, ws.gbias, NB, True, True)
    # each window's error goes to its maximum (distinct values), nothing to the dropped step
    win = x[:, :, :8].reshape(NB, 1, 4, 2, 4)
    want = np.zeros((NB, 1, 9, 4), np.float32)
    at = win.argmax(axis=3)
    for n, y, p, c in np.ndindex(NB, 1, 4, 4):
        want[n, y, 2 * p + at[n, y, p, c], c] = err.reshape(NB, 1, 4, 4)[n, y, p, c]
    assert np.array_equal(below.reshape(want.shape), want)


# ---------------------------------------------------------------- gap


def tflite_average(s, n):
    """TFLite's int8 AVERAGE_POOL_2D rounding, as C writes it: (s + n/2) / n or (s - n/2) / n, truncating."""
    num = s + n // 2 if s >= 0 else s - n // 2
    return int(Fraction(num, n))  # int() of a Fraction truncates toward zero, as C's division


@pytest.mark.parametrize("h,w", [(1, 23), (4, 5), (2, 2)])
def test_gap_float_mean_and_integer_sums_and_averages(h, w):
    s = parse_token("gap", (h, w, 5))
    n = h * w
    x = i8(7, (NB, h, w, 5), -128)
    desc, ws = engine(s)
    acts = np.zeros((2, ws.acts.shape[1]), np.float32)
    acts[0, :x.size] = x.ravel() * np.float32(2.0**-7)
    forward_float(desc, np.zeros(0, np.float32), np.zeros(0, np.float32), acts, NB, True)
    assert np.allclose(acts[1, :NB * 5], (x * 2.0**-7).mean(axis=(1, 2)).ravel(), atol=1e-5, rtol=0)
    sums = np.zeros(NB * 5, np.int32)
    channel_sums(desc[0], x.ravel(), NB, sums)
    exact = x.astype(np.int64).sum(axis=(1, 2)).ravel()
    assert np.array_equal(sums, exact)  # the int32 sums before the division, exactly
    net = Net(desc, np.zeros(1, np.int64), np.zeros(1, np.int64))
    p = IntParams(np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int16),
                  new_rng(0))
    ws.acts[0, :x.size] = x.ravel()
    ws.e_act[0] = -5
    forward_int(net, p, ws, NB, ws.counts, True, True)
    want = [tflite_average(int(v), n) for v in exact]
    # TFLite's rule through the engine's dispatch, in the input's exponent
    assert ws.acts[1, :NB * 5].tolist() == want and ws.e_act[1] == -5


@pytest.mark.parametrize("n,sums,want", [
    (4, [2, -2, 6, -6, 10, -10, 1, -1, 3, -3], [1, -1, 2, -2, 3, -3, 0, 0, 1, -1]),  # exact ties: away from zero
    (5, [2, -2, 3, -3, 7, -7, 8, -8], [0, 0, 1, -1, 1, -1, 2, -2]),  # odd n: n/2 is 2, so 2.5/5 is no tie
    (23, [11, -11, 12, -12, 80, -80, 127, -128 * 23], [0, 0, 1, -1, 3, -3, 6, -128]),
])
def test_gap_rounds_ties_as_tflite(n, sums, want):
    s = parse_token("gap", (1, n, 1))
    # each sum spread over the window of its own sample: floor(v/n) everywhere, one more in v mod n places
    x = np.array([np.full(n, v // n) + (np.arange(n) < v % n) for v in sums]).reshape(len(sums), 1, n, 1)
    assert x.sum(axis=(1, 2, 3)).tolist() == sums and x.min() >= -128 and x.max() <= 127
    x = x.astype(np.int8)
    desc, ws = engine(s, len(sums))
    net = Net(desc, np.zeros(1, np.int64), np.zeros(1, np.int64))
    p = IntParams(np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int16),
                  new_rng(0))
    ws.acts[0, :x.size] = x.ravel()
    forward_int(net, p, ws, len(sums), ws.counts, True, False)
    assert ws.acts[1, :len(sums)].tolist() == want == [tflite_average(v, n) for v in sums]
    assert average_round(sums, n).tolist() == want  # the reference inference's copy of the rule


@given(st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=1, max_value=2**31 - 1),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_sr_div_is_the_floor_of_x_over_n_plus_the_draw(x, n, r):
    # the exact rational: floor(x/n + r/2^32)
    assert sr_div(x, n, r) == math.floor(Fraction(x, n) + Fraction(r, 2**32))


def test_gap_backward_float_divides_the_error():
    s = parse_token("gap", (1, 23, 4))
    desc, ws = engine(s)
    err = np.random.default_rng(8).standard_normal(NB * 4).astype(np.float32)
    below = np.zeros(NB * 23 * 4, np.float32)
    acts = np.zeros((2, ws.acts.shape[1]), np.float32)
    backward_float(desc, 0, np.zeros(0, np.float32), acts, err, below, ws.grad, ws.gbias, NB, True, True)
    want = np.broadcast_to(err.reshape(NB, 1, 1, 4) / 23.0, (NB, 1, 23, 4))
    assert np.allclose(below.reshape(want.shape), want, atol=1e-5, rtol=0)


def test_gap_backward_integer_is_an_unbiased_division_with_one_draw_per_value_in_hwc_order():
    h, w, e = 1, 23, np.array([-128, -77, -5, -1, 0, 1, 6, 77, 127], np.int8)  # n = 23: not a power of two
    c, n, nb, t = len(e), h * w, 1500, 4  # t = floor(log2 23)
    s = parse_token("gap", (h, w, c))
    desc, ws = engine(s, nb)
    err = np.tile(e, nb)
    below = np.zeros(nb * n * c, np.int8)
    rng, seed_state = new_rng(11), new_rng(11)
    net = Net(desc, np.zeros(1, np.int64), np.zeros(1, np.int64))
    p = IntParams(np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int16), rng)
    e_below, clipped = backward_int(net, p, 0, ws, err, -7, below, nb, True, True, True)
    # the error below is e * 2^t / n on the exponent E - t, and nothing saturates
    assert (e_below, clipped) == (-7 - t, 0)
    draws = np.zeros(nb * n * c + 64, np.uint32)
    fill_draws(seed_state, draws, nb * n * c, draws[nb * n * c:])
    # exactly one draw per value: the generator stands where nb * n * c draws leave it
    assert rng[0] == seed_state[0]
    got = below.reshape(nb, n, c).astype(np.int64)
    r = draws[:nb * n * c].reshape(nb, n, c)
    for k in range(200):  # value j takes draw j, sample-major, then position, then channel (HWC order)
        i, pos, ch = np.unravel_index(k * 997 % got.size, got.shape)
        assert got[i, pos, ch] == math.floor(Fraction(int(e[ch]) << t, n) + Fraction(int(r[i, pos, ch]), 2**32))
    exact = e.astype(np.float64) * 2**t / n
    # every value is the floor or the ceiling of e * 2^t / n, and their mean is e * 2^t / n (statistical:
    # 34,500 draws per channel, standard deviation of the mean below 0.003)
    assert np.all((got >= np.floor(exact)) & (got <= np.ceil(exact)))
    assert np.allclose(got.mean(axis=(0, 1)), exact, atol=0.015, rtol=0)
    again = np.zeros_like(below)
    gap_backward_int(desc[0], err, nb, new_rng(11), again)
    assert np.array_equal(again, below)  # the kernel itself, called directly: the same bytes


# ---------------------------------------------------------------- whole runs and refusals


def windows(path, n=64, t=100, c=6, seed=0):
    """Synthetic (N, 1, T, C) windows of 4 classes (a sine per class), saved as an NPZ of images."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    steps = np.arange(t)
    x = np.sin(2 * np.pi * (y[:, None, None] + 1) * steps[None, :, None] / 25 + np.arange(c)) \
        + 0.3 * rng.standard_normal((n, t, c))
    np.savez(path, X=x[:, None].astype(np.float32), y=y)
    return str(path)


@pytest.mark.parametrize("method", ["sr", "r", "bc", "float"])
def test_a_time_series_net_trains_two_epochs(tmp_path, method):
    res = fxtrain.train(arch="conv1d:8:5,pool1d:2,conv1d:16:5,gap,dense:4", method=method, bits=8, epochs=2,
                        data=windows(tmp_path / "w.npz"))
    hist = res.report["history"]
    assert len(hist) == 2 and all(math.isfinite(r["loss"]) and 0 <= r["test_accuracy"] <= 1 for r in hist)
    assert res.report["arch"] == "conv1d:8:5:valid,pool1d:2,conv1d:16:5:valid,gap,dense:4"
    if method != "float":  # the C inference arithmetic holds every 1-D layer: the deployed accuracy is there
        assert 0 <= res.report["deployed_test_accuracy"] <= 1 and "deployed_note" not in res.report


@pytest.mark.parametrize("arch,shape,needle", [
    ("conv1d:8:5,gap,conv1d:4:3,dense:4", (1, 100, 6), "follows gap, which must close the conv trunk"),
    ("conv:4:3,gap,pool:2,dense:4", (8, 8, 1), "put gap right before the dense layers"),
    ("conv:4:3,pool1d:2,dense:4", (8, 8, 1), "pool1d reads a height-1 window (1, T, C), but the input is 6x6x4"),
    ("conv1d:8:5,dense:4", (8, 8, 1), "use conv:FILTERS:K[:same|:valid] on images"),
    ("conv1d:8:200,dense:4", (1, 100, 6), "kernel 200 is larger than the 1x100 input"),
    ("conv1d:8:5,dense:4", (64,), "conv1d needs a window input (1, T, C); the data here is flat"),
    ("gap,dense:4", (64,), "gap averages the positions of a conv trunk's (h, w, c) output"),
    ("conv1d:8:5,pool:2,dense:4", (1, 100, 6), "pool 2 is larger than the 1x96 input; on a height-1 window (1, T, C) "
                                               "use pool1d:2"),
    ("conv1d:8:4:same,dense:4", (1, 100, 6), "same needs an odd kernel"),
    ("conv:8:3x2x1,dense:4", (8, 8, 1), "is not a size K or KHxKW"),
])
def test_bad_archs_are_refused_in_one_line(arch, shape, needle):
    with pytest.raises(ConfigError) as exc:
        parse_arch(arch, shape, 4)
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


@pytest.mark.parametrize("tok,shape", [("conv:4:1x3:same", (5, 6, 2)), ("conv:4:3x1", (5, 6, 2)),
                                       ("conv1d:4:3:same", (1, 9, 2)), ("conv:4:1x3", (1, 9, 2)),
                                       ("conv:4:3", (5, 6, 2)), ("pool:2x3", (5, 6, 2)), ("pool1d:3", (1, 9, 2)),
                                       ("pool:1x3", (1, 9, 2)), ("gap", (5, 6, 2))])
def test_tokens_round_trip(tok, shape):
    s = parse_token(tok, shape)
    # parse(token(spec)) == spec; a square kernel keeps its old text, a 1 x K one on a window prints as 1-D
    assert parse_token(s.token(), shape) == s
    assert s.token().startswith({"conv:4:1x3": "conv1d:4:3", "pool:1x3": "pool1d:3", "conv:4:3": "conv:4:3:valid"}
                                .get(tok, tok.split(":same")[0]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained run folder with a non-square conv, and one with gap after a square conv."""
    tmp = tmp_path_factory.mktemp("ts")
    rng = np.random.default_rng(1)
    images = tmp / "img.npz"
    np.savez(images, X=rng.standard_normal((40, 5, 6, 2)).astype(np.float32), y=np.arange(40) % 3)
    out = {}
    for name, arch in (("nonsquare", "conv:4:1x3,dense:3"), ("gap", "conv:4:3,gap,dense:3")):
        fxtrain.train(arch=arch, epochs=1, data=str(images), out=tmp / name)
        out[name] = tmp / name
    return out


def test_every_export_path_takes_them_from_the_cli(runs, tmp_path):
    for name in runs:
        for args in (("--train-step",), ("--to", "tflite")):
            res = invoke("export", runs[name], *args, "--out", tmp_path / f"{name}{len(args)}")
            assert res.exit_code == 0, res.output


@pytest.mark.parametrize("path,args", [("train-step", ("--train-step",)), ("inference", ()),
                                       ("tflite", ("--to", "tflite"))])
def test_a_path_that_refuses_a_kind_says_so_in_one_line_and_writes_nothing(runs, tmp_path, monkeypatch, path, args):
    """Each export path asks the kinds first (layers.check_export): a kind that one path cannot hold yet (here gap,
    made to refuse) stops that path before it writes."""
    from fxtrain.layers import gap
    monkeypatch.setattr(type(gap.KIND), "export_refusal", lambda self, s, p: "a refusal" if p == path else None)
    one_line_error(invoke("export", runs["gap"], *args, "--out", tmp_path / "fw"), "layer 1 (gap): a refusal",
                   "does not hold it yet")
    assert not (tmp_path / "fw").exists()
