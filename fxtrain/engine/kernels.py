"""Dense layers and max pooling over flat buffers: the integer kernels and the float32 reference loops.

Every tensor is a flat 1-D array, as the C runtime declares it: activations of
sample ``n`` start at ``n * values_per_sample``, images are HWC, dense weights
``[out][in]`` and conv weights ``[out][ky][kx][in]`` from offset ``w_off`` of the
network's flat weight array. A layer's geometry comes from its row ``d`` of the
desc table (:mod:`fxtrain.engine.network`); conv layers are in :mod:`fxtrain.engine.conv`.

The integer kernels (``*_int``) are matrix products from :mod:`fxtrain.engine.gemm`
in the accumulator's dtype (int32 or int64, as ``engine.bounds`` planned): exact, so
their results do not depend on the order of the terms. The reference loops
(``dense_forward``, ``dense_backward``) are type-generic and serve the float32
method; each partial sum is cast back to the output's dtype (``t(...)``), so they give
the same exact sums on integers, which the tests use. Kernels write into arrays the
caller allocated (the work buffers of :func:`fxtrain.engine.scratch.work_layout`); none allocates.
"""
import numpy as np
from numba import njit

from .gemm import PAIR, PAIR_MIN_WIDTH, QUAD, dot_gemm, pack_words, transpose, word_gemm
from .simd import QUAD_LANES
from .network import DENSE, GAP, IN_C, IN_H, IN_W, KH, KIND, KW, N_IN, N_OUT, OUT_H, OUT_W, POOL, RELU, W_OFF

# ---------------------------------------------------------------- dense, integer


@njit(cache=True)
def inputs_nonneg(desc, X, out):
    """out[l] = True where layer l's input is never negative: ReLU outputs (and pools and averages of them),
    and the data ``X`` itself if it has no negative value. Such inputs can be packed in quads."""
    lo = 0
    for v in X.ravel():
        lo = min(lo, v)
    for l in range(desc.shape[0]):
        if l == 0:
            out[l] = lo >= 0
        else:
            below = desc[l - 1, KIND]
            out[l] = desc[l - 1, RELU] != 0 or ((below == POOL or below == GAP) and out[l - 1])


@njit(cache=True, inline='always')
def _per(nonneg, signed_ok):
    """QUAD where the listed operand is non-negative, the packed one int8 and the CPU has a quad sweep."""
    return QUAD if nonneg and signed_ok and QUAD_LANES > 0 else PAIR


@njit(cache=True)
def pack_dense_weights(desc, w, wpack, nonneg):
    """Pack each wide dense layer's weights for :func:`dense_forward_int`, at its weight offset:
    word (q, o) holds w[o, g*q .. g*q + g-1], g = 4 (quads) where ``nonneg[l]`` allows, else 2.
    Done once per batch in training (the weights change) and once per evaluation."""
    for l in range(desc.shape[0]):
        d = desc[l]
        if d[KIND] == DENSE and d[N_OUT] >= PAIR_MIN_WIDTH:
            per = _per(nonneg[l], w.itemsize == 1)
            pack_words(w[d[W_OFF]:], d[N_IN], d[N_OUT], np.int64(1), d[N_IN], wpack[d[W_OFF]:], per)


@njit(cache=True)
def dense_forward_int(d, x, w, wpack, nb, out, items, terms, nonneg):
    """out[n, o] = terms[o] + sum_i x[n, i] * w[o, i]: the sums start from the bias terms. Sweeps over
    the packed weights (``nonneg``: as :func:`pack_dense_weights` packed them), skipping groups of
    zero inputs, or dot products for a narrow layer."""
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    if n_out >= PAIR_MIN_WIDTH:
        word_gemm(wpack[wo:], n_out, x, n_in, np.int64(1), n_in, nb, out, items, terms[:n_out],
                  _per(nonneg, w.itemsize == 1))
    else:
        dot_gemm(x, n_in, nb, w[wo:], n_out, out, terms[:n_out])


@njit(cache=True)
def dense_backward_int(d, x, err, w, nb, grad, back, want_back, words, items, gtmp, nonneg):
    """grad[o, i] = sum_n err[n, o] x[n, i] and, if ``want_back``, back[n, i] = sum_o err[n, o] w[o, i].

    Sweeps over groups of samples (of ``x``; or of ``err`` where the layer has more outputs
    than inputs: the sweeps are then longer, in quads if ``nonneg`` (x never negative),
    and ``gtmp`` holds the gradient transposed) and over output pairs of ``w``; groups that
    are all zero are skipped.
    """
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    one, pair = np.int64(1), np.int64(PAIR)  # not literals: see fxtrain.engine.gemm
    if n_out > n_in:
        per = _per(nonneg, True)  # the errors are int8
        pack_words(err, nb, n_out, n_out, one, words, per)
        word_gemm(words, n_out, x, one, n_in, nb, n_in, gtmp, items, gtmp[:0], per)
        transpose(gtmp, n_in, n_out, grad)
    else:
        pack_words(x, nb, n_in, n_in, one, words, pair)
        word_gemm(words, n_in, err, one, n_out, nb, n_out, grad, items, grad[:0], pair)
    if want_back:
        pack_words(w[wo:], n_out, n_in, n_in, one, words, pair)
        word_gemm(words, n_in, err, n_out, one, n_out, nb, back, items, back[:0], pair)


# ---------------------------------------------------------------- dense, reference loops


@njit(cache=True)
def dense_forward(d, x, w, nb, out):
    """out[n, o] = sum_i x[n, i] * w[o, i]; the reduction axis is contiguous."""
    t = out.dtype.type
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    for n in range(nb):
        xr = x[n * n_in:(n + 1) * n_in]
        for o in range(n_out):
            wr = w[wo + o * n_in:wo + (o + 1) * n_in]
            s = t(0)
            for i in range(n_in):
                s = t(s + t(xr[i]) * t(wr[i]))
            out[n * n_out + o] = s


@njit(cache=True)
def dense_backward(d, x, err, w, nb, grad, back, want_back):
    """grad[o, i] = sum_n err[n, o] x[n, i] (summed over the batch, not averaged) and,
    if ``want_back``, back[n, i] = sum_o err[n, o] w[o, i], the error for the layer below."""
    t = grad.dtype.type
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    grad[:n_in * n_out] = 0
    for n in range(nb):
        xr = x[n * n_in:(n + 1) * n_in]
        for o in range(n_out):
            e = t(err[n * n_out + o])
            if e != 0:  # ReLU zeroes many errors
                g = grad[o * n_in:(o + 1) * n_in]
                for i in range(n_in):
                    g[i] = t(g[i] + e * t(xr[i]))
    if not want_back:
        return
    tb = back.dtype.type
    back[:nb * n_in] = 0
    for n in range(nb):
        b = back[n * n_in:(n + 1) * n_in]
        for o in range(n_out):
            e = tb(err[n * n_out + o])
            if e != 0:
                wr = w[wo + o * n_in:wo + (o + 1) * n_in]
                for i in range(n_in):
                    b[i] = tb(b[i] + e * tb(wr[i]))


# ---------------------------------------------------------------- max pool (stride = window)


@njit(cache=True)
def pool_forward(d, x, nb, out):
    """Max over disjoint kh x kw windows, per channel; a ragged last row or column is dropped."""
    h, wd, c, ph, pw = d[IN_H], d[IN_W], d[IN_C], d[KH], d[KW]
    oh, ow = d[OUT_H], d[OUT_W]
    for n in range(nb):
        for py in range(oh):
            for px in range(ow):
                o = out[((n * oh + py) * ow + px) * c:((n * oh + py) * ow + px + 1) * c]
                first = x[((n * h + py * ph) * wd + px * pw) * c:][:c]
                for ch in range(c):  # an element loop: an array copy would link numba's float error formatting
                    o[ch] = first[ch]
                for ky in range(ph):
                    for kx in range(pw):
                        v = x[((n * h + py * ph + ky) * wd + px * pw + kx) * c:][:c]
                        for ch in range(c):
                            o[ch] = max(o[ch], v[ch])


@njit(cache=True)
def pool_backward(d, x, err, nb, out):
    """Route each window's error to its first maximum (row-major), zero elsewhere.

    All channels of a window at once: the running maximum and its offset per channel
    are vector selects, where a scan per channel mispredicted on every new maximum.
    """
    h, wd, c, ph, pw = d[IN_H], d[IN_W], d[IN_C], d[KH], d[KW]
    oh, ow = d[OUT_H], d[OUT_W]
    out[:nb * h * wd * c] = 0
    top, at = np.empty(c, x.dtype), np.empty(c, np.int64)
    for n in range(nb):
        for py in range(oh):
            for px in range(ow):
                first = ((n * h + py * ph) * wd + px * pw) * c
                for ch in range(c):
                    top[ch] = x[first + ch]
                    at[ch] = 0
                for ky in range(ph):
                    for kx in range(pw):
                        off = (ky * wd + kx) * c
                        for ch in range(c):  # indices, not slices: a slice per window costs two refcount updates
                            v = x[first + off + ch]
                            take = v > top[ch]
                            top[ch] = v if take else top[ch]
                            at[ch] = off if take else at[ch]
                e0 = ((n * oh + py) * ow + px) * c
                for ch in range(c):
                    out[first + at[ch] + ch] = err[e0 + ch]
