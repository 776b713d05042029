"""Each layer's integer backward pass against float64 finite differences.

The reference forward functions here are plain numpy, written apart from the
kernels. Layers are linear in x and in w, so central differences are exact up to
float64 rounding: integer gradients must match to 1e-9 relative (tolerance stated
per test). The error sent below is then stochastically rounded to int8, which may
move it by at most one step of its new grid.
"""
import numpy as np
import pytest

from fxtrain.engine import conv as C, kernels as K, requant as Q
from fxtrain.engine.scratch import work_layout
from fxtrain.engine.bulk import requant_sr_bulk
from fxtrain.engine.draws import draw_buffer
from fxtrain.engine.fixedpoint import new_rng, round_shift
from fxtrain.engine.network import CONV, DENSE, POOL, LayerSpec, build_desc

E_X, E_W, E_ERR = -7, -6, -7  # exponents of input, weights and upstream error


def gen(seed):
    """int8 arrays from a generator of the test's own, so no test depends on another's draws."""
    rng = np.random.default_rng(seed)
    return lambda shape, lo=-128, hi=127: rng.integers(lo, hi + 1, shape).astype(np.int8)


def row(kind, in_shape, out_shape, k=0, pad=0):
    """The desc row the flat kernels read for one layer (weights from offset 0)."""
    return build_desc([LayerSpec(kind, in_shape, out_shape, kh=k, kw=k, pad_h=pad, pad_w=pad)])[0]


def work(kind, in_shape, out_shape, nb, k=0, pad=0):
    """The integer kernels' work buffers for one layer at batch ``nb``."""
    spec = LayerSpec(kind, in_shape, out_shape, kh=k, kw=k, pad_h=pad, pad_w=pad)
    layout = work_layout([spec], nb, np.int32, np.int32)
    return {name: np.zeros(shape, dtype) for name, (shape, dtype) in layout.items()}


def dense_ref(x, w):
    return x @ w.T


def conv_ref(x, w, pad):
    n, h, wd, c = x.shape
    o, k = w.shape[0], w.shape[1]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    y = np.zeros((n, oh, ow, o))
    for oy in range(oh):
        for ox in range(ow):
            patch = xp[:, oy:oy + k, ox:ox + k, :]
            y[:, oy, ox, :] = np.einsum("nyxc,oyxc->no", patch, w)
    return y


def fd_grad(f, a, h=0.5):
    """Central differences of the scalar f at every entry of a (float64)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        a[idx] += h
        up = f()
        a[idx] -= 2 * h
        dn = f()
        a[idx] += h
        g[idx] = (up - dn) / (2 * h)
    return g


def check(int_grad, exponent, fd):
    """Integer gradient, dequantised, equals the finite difference (float64 rounding only)."""
    np.testing.assert_allclose(int_grad.astype(np.float64) * 2.0**exponent, fd, rtol=1e-9, atol=1e-9)


def dense_int(d, x, w, err, nb, wk):
    """The integer kernels' forward, weight gradient and error below (int32 sums); quads where
    the inputs are never negative (and the CPU has a quad sweep), pairs otherwise."""
    n_in, n_out = x.size // nb, w.size // (x.size // nb)
    y, g, back = np.zeros(nb * n_out, np.int32), np.zeros(n_out * n_in, np.int32), np.zeros(nb * n_in, np.int32)
    nonneg = np.zeros(1, np.bool_)
    K.inputs_nonneg(d[None], x, nonneg)
    K.pack_dense_weights(d[None], w.ravel(), wk["wpack"], nonneg)
    K.dense_forward_int(d, x.ravel(), w.ravel(), wk["wpack"], nb, y, wk["items"], np.zeros(n_out, np.int32),
                        nonneg[0])
    K.dense_backward_int(d, x.ravel(), err.ravel(), w.ravel(), nb, g, back, True, wk["words"], wk["items"],
                         wk["gtmp"], nonneg[0])
    return y, g, back


def dense_reference(d, x, w, err, nb):
    """The type-generic reference loops (the float32 method's) on the same integers."""
    n_in, n_out = x.size // nb, w.size // (x.size // nb)
    y, g, back = np.zeros(nb * n_out, np.int32), np.zeros(n_out * n_in, np.int32), np.zeros(nb * n_in, np.int32)
    K.dense_forward(d, x.ravel(), w.ravel(), nb, y)
    K.dense_backward(d, x.ravel(), err.ravel(), w.ravel(), nb, g, back, True)
    return y, g, back


# 5 and 10 outputs take the dot-product path, 19 and 40 the packed sweeps (40 > 13 inputs: the transposed
# gradient); 12, 13, 14 and 256 inputs, 3 to 7 samples, so the last pair or quad of a packing is full or
# part empty; ReLU-like inputs (0..127) take quads where the CPU has them
@pytest.mark.parametrize("nb,n_in,n_out", [(4, 12, 5), (6, 13, 10), (3, 256, 10), (5, 13, 19), (4, 12, 19), (7, 13, 40),
                                         (5, 14, 40)])
@pytest.mark.parametrize("kernels", ["int", "int relu-like inputs", "reference"])
def test_dense_backward_matches_finite_differences(nb, n_in, n_out, kernels):
    i8 = gen(1)
    x, w, err = i8((nb, n_in), 0 if "relu" in kernels else -128), i8((n_out, n_in), -127), i8((nb, n_out))
    x[0, :4] = 0  # zero groups, which the packed sweeps skip
    err[:2, 0] = 0
    xf, wf, ef = x * 2.0**E_X, w * 2.0**E_W, err * 2.0**E_ERR
    loss = lambda: float(np.sum(ef * dense_ref(xf, wf)))  # noqa: E731
    d = row(DENSE, (1, 1, n_in), (1, 1, n_out))
    if kernels.startswith("int"):
        y, g, back = dense_int(d, x, w, err, nb, work(DENSE, (1, 1, n_in), (1, 1, n_out), nb))
    else:
        y, g, back = dense_reference(d, x, w, err, nb)
    assert np.array_equal(y.reshape(nb, n_out), dense_ref(x.astype(np.int64), w.astype(np.int64)))  # exact
    check(g.reshape(n_out, n_in), E_ERR + E_X, fd_grad(loss, wf))
    check(back.reshape(nb, n_in), E_ERR + E_W, fd_grad(loss, xf))


@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("kernels", ["int", "reference"])
def test_conv_backward_matches_finite_differences(pad, kernels):
    i8 = gen(2 + pad)
    x, w, k = i8((2, 5, 6, 2)), i8((3, 3, 3, 2), -127), 3  # 18 values per patch: an even pair count
    oh, ow = 5 + 2 * pad - k + 1, 6 + 2 * pad - k + 1
    err = i8((2, oh, ow, 3))
    xf, wf, ef = x * 2.0**E_X, w * 2.0**E_W, err * 2.0**E_ERR
    loss = lambda: float(np.sum(ef * conv_ref(xf, wf, pad)))  # noqa: E731
    d = row(CONV, (5, 6, 2), (oh, ow, 3), k=k, pad=pad)
    y = np.zeros(2 * oh * ow * 3, np.int32)
    g, back = np.zeros(w.size, np.int32), np.zeros(x.size, np.int32)
    if kernels == "int":
        wk = work(CONV, (5, 6, 2), (oh, ow, 3), 2, k=k, pad=pad)
        C.conv_forward_int(d, x.ravel(), w.ravel(), 2, y, wk["words"], wk["cols"], wk["wide"], wk["items"],
                           np.zeros(3, np.int32))
        C.conv_backward_int(d, x.ravel(), err.ravel(), w.ravel(), 2, g, back, True, wk["cols"], wk["errs"])
    else:
        C.conv_forward(d, x.ravel(), w.ravel(), 2, y)
        C.conv_backward(d, x.ravel(), err.ravel(), w.ravel(), 2, g, back, True)
    assert np.array_equal(y.reshape(2, oh, ow, 3), conv_ref(x.astype(np.int64), w.astype(np.int64), pad))  # exact
    check(g.reshape(w.shape), E_ERR + E_X, fd_grad(loss, wf))
    check(back.reshape(x.shape), E_ERR + E_W, fd_grad(loss, xf))


def test_conv_int_forward_with_an_odd_patch_is_exact():
    # 3 x 3 x 1 patches (9 values: the last pair half empty), 'same' padding, 4 filters
    i8 = gen(12)
    x, w = i8((3, 6, 5, 1)), i8((4, 3, 3, 1), -127)
    d = row(CONV, (6, 5, 1), (6, 5, 4), k=3, pad=1)
    wk = work(CONV, (6, 5, 1), (6, 5, 4), 3, k=3, pad=1)
    y = np.zeros(3 * 6 * 5 * 4, np.int32)
    C.conv_forward_int(d, x.ravel(), w.ravel(), 3, y, wk["words"], wk["cols"], wk["wide"], wk["items"],
                       np.zeros(4, np.int32))
    assert np.array_equal(y.reshape(3, 6, 5, 4), conv_ref(x.astype(np.int64), w.astype(np.int64), 1))


def test_maxpool_backward_matches_finite_differences():
    # distinct values, so the max is unique and the function differentiable there
    rng, i8 = np.random.default_rng(4), gen(5)
    x = rng.permutation(np.arange(-100, 100))[:2 * 4 * 4 * 3].reshape(2, 4, 4, 3).astype(np.int8)
    err = i8((2, 2, 2, 3))
    xf, ef = x * 2.0**E_X, err * 2.0**E_ERR
    pool = lambda a: a.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4))  # noqa: E731
    d = row(POOL, (4, 4, 3), (2, 2, 3), k=2)
    y = np.zeros(2 * 2 * 2 * 3, np.int8)
    K.pool_forward(d, x.ravel(), 2, y)
    assert np.array_equal(y.reshape(2, 2, 2, 3), pool(x))
    back = np.zeros(x.size, np.int8)
    K.pool_backward(d, x.ravel(), err.ravel(), 2, back)
    check(back.reshape(x.shape), E_ERR, fd_grad(lambda: float(np.sum(ef * pool(xf))), xf, h=0.25 * 2.0**E_X))


def test_relu_mask_matches_finite_differences():
    i8 = gen(6)
    act = i8((3, 7))
    act[act < 0] = 0  # a ReLU output
    err = i8((3, 7))
    masked = err.copy()
    Q.relu_mask(masked.ravel(), act.ravel(), act.size)
    pre = act.astype(np.float64)  # where act > 0 the pre-activation equals it
    ef = err.astype(np.float64)
    fd = fd_grad(lambda: float(np.sum(ef * np.maximum(pre, 0))), pre, h=0.25)
    assert np.array_equal(masked, np.where(act > 0, err, 0)) and np.allclose(fd[act > 0], masked[act > 0])


def test_sr_requantised_error_is_within_one_step():
    acc = np.random.default_rng(7).integers(-(2**20), 2**20, 500).astype(np.int32)
    s = Q.tensor_shift(acc, 500)
    assert s == max(0, int(np.abs(acc).max()).bit_length() - 7)
    out, bulk = np.zeros(500, np.int8), np.zeros(500, np.int8)
    Q.requant_sr(acc, 500, s, new_rng(3), out)
    # tolerance: one step of the int8 grid, 2**s in accumulator units
    assert np.all(np.abs(out.astype(np.int64) * 2**s - acc) < 2**s)
    requant_sr_bulk(acc, 500, s, new_rng(3), bulk, draw_buffer())
    assert np.array_equal(bulk, out)  # the bulk draws give the same bytes


def test_integer_softmax_error_matches_float_softmax():
    logits = gen(8)((64, 10))
    y = np.random.default_rng(9).integers(0, 10, 64)
    for e_z in (-6, -3, 0):
        err = np.zeros((64, 10), np.int8)
        terms = np.zeros((64, 2), np.int64)
        Q.softmax_error_int(logits.ravel(), 64, 10, e_z, y, err.ravel(), np.zeros(10, np.int64), terms)
        z = logits * 2.0**e_z
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ref = (p - np.eye(10)[y]) * 128
        # tolerance: 1 Q7 step for rounding plus 1 for the Q8 exponent and Q15 table
        assert np.abs(err - np.clip(ref, -128, 127)).max() <= 2.0


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("top", [0, 127, 128, 255, 1000, 2**20, 2**31 - 1])
def test_requant_round_is_round_half_up_then_saturated(dtype, top):
    acc = np.random.default_rng(top % 97).integers(-top, top + 1, 2000).astype(dtype)
    acc[:2] = [top, -top]
    for s in (Q.tensor_shift(acc, 2000), Q.tensor_shift(acc, 2000) + 3):
        for relu in (True, False):
            out = np.zeros(2000, np.int8)
            clipped = Q.requant_round(acc, 2000, s, relu, out)
            exact = np.array([round_shift(int(a), s) for a in acc])
            # every value rounded half up, clipped to int8 (and at 0 under ReLU); the 128s counted
            assert np.array_equal(out, np.clip(exact, 0 if relu else -128, 127))
            assert clipped == int(np.sum(exact > 127))
