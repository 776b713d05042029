"""Forward and backward passes over the flat network (``model.build_desc``).

Each backward rule sits next to its forward rule. Integer passes keep int8
tensors with one exponent each; the float passes mirror them in float32 for the
reference method. Layer ``l`` reads ``acts[l]`` and writes ``acts[l + 1]``;
``acts[0]`` holds the input batch.
"""
import numpy as np
from numba import njit

from .kernels import (
    add_bias_int, conv_backward, conv_fwd, dense_bwd_input, dense_fwd,
    dense_grad, pool_bwd, pool_fwd, relu_mask, requant_round, requant_sr, tensor_shift,
)
from .model import (
    B_OFF, DENSE, IN_C, IN_H, IN_W, KIND, KSIZE, OUT_C, OUT_H, OUT_W, PAD, POOL, RELU, W_OFF,
)


@njit(cache=True)
def view4(buf, nb, h, w, c):
    """[nb, h, w, c] view on the front of a flat buffer."""
    return buf[:nb * h * w * c].reshape((nb, h, w, c))


@njit(cache=True)
def in4(buf, nb, d):
    return view4(buf, nb, d[IN_H], d[IN_W], d[IN_C])


@njit(cache=True)
def out4(buf, nb, d):
    return view4(buf, nb, d[OUT_H], d[OUT_W], d[OUT_C])


@njit(cache=True)
def layer_weights(wflat, d):
    """Dense weights as [out][in] (4-D [out][1][1][in]) or conv weights as [out][ky][kx][in]."""
    o = d[OUT_C]
    if d[KIND] == DENSE:
        n_in = d[IN_H] * d[IN_W] * d[IN_C]
        return wflat[d[W_OFF]:d[W_OFF] + o * n_in].reshape((o, 1, 1, n_in))
    k = d[KSIZE]
    return wflat[d[W_OFF]:d[W_OFF] + o * k * k * d[IN_C]].reshape((o, k, k, d[IN_C]))


@njit(cache=True)
def _mac_fwd(d, x4, w4, a4):
    nb, o = x4.shape[0], w4.shape[0]
    if d[KIND] == DENSE:
        dense_fwd(x4.reshape((nb, -1)), w4.reshape((o, -1)), a4.reshape((nb, o)))
    else:
        conv_fwd(x4, w4, d[PAD], a4)


@njit(cache=True)
def _mac_bwd(d, x4, err4, w4, grad, gbias, back4, want_back):
    """Weight gradient, bias gradient and (if wanted) the unscaled error for the layer below."""
    nb, o = err4.shape[0], w4.shape[0]
    g4 = grad[:w4.size].reshape(w4.shape)
    if d[KIND] == DENSE:
        e2 = err4.reshape((nb, o))
        dense_grad(e2, x4.reshape((nb, -1)), g4.reshape((o, -1)))
        if want_back:
            dense_bwd_input(e2, w4.reshape((o, -1)), back4.reshape((nb, -1)))
    else:
        conv_backward(err4, x4, w4, d[PAD], g4, back4, want_back)
    gb = gbias[:o]
    gb[:] = 0
    e2 = err4.reshape((-1, o))
    for r in range(e2.shape[0]):
        for j in range(o):
            gb[j] += e2[r, j]


@njit(cache=True)
def forward_int(desc, wq, bq, e_w, e_b, acts, e_act, acc, nb):
    """Integer forward pass; ``e_act[l]`` is the exponent of ``acts[l]``.

    Each layer's int32 accumulator is shifted (round-half-up) by the smallest s
    that brings its largest magnitude into int8, chosen per batch.
    """
    for l in range(desc.shape[0]):
        d = desc[l]
        x4, y4 = in4(acts[l], nb, d), out4(acts[l + 1], nb, d)
        if d[KIND] == POOL:
            pool_fwd(x4, d[KSIZE], y4)
            e_act[l + 1] = e_act[l]
            continue
        a4 = out4(acc, nb, d)
        _mac_fwd(d, x4, layer_weights(wq, d), a4)
        add_bias_int(a4, bq[d[B_OFF]:d[B_OFF] + d[OUT_C]], e_act[l] + e_w[l] - e_b[l])
        s = tensor_shift(a4)
        requant_round(a4, s, d[RELU] != 0, y4)
        e_act[l + 1] = e_act[l] + e_w[l] + s


@njit(cache=True)
def backward_int(desc, l, wq, e_w, acts, e_act, err, e_err, back, err_below, grad, gbias, rng, nb):
    """Backward through layer ``l`` given int8 ``err`` (exponent ``e_err``) at its output.

    Fills ``grad``/``gbias`` (int32, exponents e_err + e_act[l] and e_err) and writes
    the int8 error for the layer below into ``err_below`` with stochastic rounding,
    one draw per value. Returns that error's exponent.
    """
    d = desc[l]
    x4, y4, e4 = in4(acts[l], nb, d), out4(acts[l + 1], nb, d), out4(err, nb, d)
    below4 = in4(err_below, nb, d)
    if d[KIND] == POOL:
        pool_bwd(x4, e4, d[KSIZE], below4)
        return e_err
    if d[RELU] != 0:
        relu_mask(e4, y4)
    w4 = layer_weights(wq, d)
    back4 = in4(back, nb, d)
    _mac_bwd(d, x4, e4, w4, grad, gbias, back4, l > 0)
    if l == 0:
        return e_err
    s = tensor_shift(back4)
    requant_sr(back4, s, rng, below4)
    return e_err + e_w[l] + s


@njit(cache=True)
def forward_float(desc, wf, bf, acts, nb):
    """float32 reference forward pass over the same layout."""
    for l in range(desc.shape[0]):
        d = desc[l]
        x4, y4 = in4(acts[l], nb, d), out4(acts[l + 1], nb, d)
        if d[KIND] == POOL:
            pool_fwd(x4, d[KSIZE], y4)
            continue
        _mac_fwd(d, x4, layer_weights(wf, d), y4)
        b = bf[d[B_OFF]:d[B_OFF] + d[OUT_C]]
        y2 = y4.reshape((-1, d[OUT_C]))
        for r in range(y2.shape[0]):
            for j in range(d[OUT_C]):
                v = y2[r, j] + b[j]
                y2[r, j] = v if (v > 0 or d[RELU] == 0) else np.float32(0.0)


@njit(cache=True)
def backward_float(desc, l, wf, acts, err, err_below, grad, gbias, nb):
    """float32 backward through layer ``l``; the error below lands in ``err_below``."""
    d = desc[l]
    x4, y4, e4 = in4(acts[l], nb, d), out4(acts[l + 1], nb, d), out4(err, nb, d)
    below4 = in4(err_below, nb, d)
    if d[KIND] == POOL:
        pool_bwd(x4, e4, d[KSIZE], below4)
        return
    if d[RELU] != 0:
        relu_mask(e4, y4)
    _mac_bwd(d, x4, e4, layer_weights(wf, d), grad, gbias, below4, l > 0)
