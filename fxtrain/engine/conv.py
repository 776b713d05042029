"""Conv2D (stride 1, zero padding) over flat HWC buffers: the integer kernels and the float32 reference.

Conventions as in :mod:`fxtrain.engine.kernels`: weights ``[out][ky][kx][in]`` from
the layer's weight offset, one row ``d`` of the desc table per layer. A conv's
reduction (``kh * kw * c_in`` values) and its outputs (``c_out`` filters) are short,
while its output positions are many, so the integer forward product runs along the
positions: the patches are gathered into pair words, position-major, and every
filter sweeps them (:func:`fxtrain.engine.gemm.word_gemm`); the weight gradient is
a dot product over all the batch's positions, from transposed int8 copies.
"""
import numpy as np
from numba import njit

from .gemm import PAIR, dot_gemm, pack_words, word_gemm
from .network import IN_C, IN_H, IN_W, KH, KW, OUT_C, OUT_H, OUT_W, PAD_H, PAD_W, W_OFF


@njit(cache=True)
def gather_cols(d, x, nb, cols):
    """The batch's patches, transposed: ``cols[j, p]`` is value j (in ky, kx, c order) of the
    patch of output position p (n, oy, ox row-major), 0 in the padding."""
    h, wd, c_in, kh, kw, ph, pw = d[IN_H], d[IN_W], d[IN_C], d[KH], d[KW], d[PAD_H], d[PAD_W]
    oh, ow = d[OUT_H], d[OUT_W]
    pos = nb * oh * ow
    for ky in range(kh):
        for kx in range(kw):
            lo, hi = max(0, pw - kx), min(ow, wd + pw - kx)  # ox whose ix is inside the image
            for c in range(c_in):
                col = cols[((ky * kw + kx) * c_in + c) * pos:]
                for n in range(nb):
                    for oy in range(oh):
                        seg = col[(n * oh + oy) * ow:(n * oh + oy + 1) * ow]
                        iy = oy + ky - ph
                        if iy < 0 or iy >= h or lo >= hi:
                            seg[:] = 0
                            continue
                        seg[:lo] = 0
                        seg[hi:] = 0
                        first = ((n * h + iy) * wd + lo + kx - pw) * c_in + c
                        src = x[first:first + (hi - lo - 1) * c_in + 1:c_in]
                        for ox in range(lo, hi):
                            seg[ox] = src[ox - lo]


@njit(cache=True)
def conv_forward_int(d, x, w, nb, out, words, cols, wide, items, terms):
    """HWC convolution in the accumulator's dtype, plus the bias terms: every filter sweeps the
    packed patches (``wide`` receives filter-major sums), then the result is transposed into ``out``."""
    c_out, kk = d[OUT_C], d[KH] * d[KW] * d[IN_C]
    pos = nb * d[OUT_H] * d[OUT_W]
    gather_cols(d, x, nb, cols)
    one, pair = np.int64(1), np.int64(PAIR)  # not literals: see fxtrain.engine.gemm
    pack_words(cols, kk, pos, pos, one, words, pair)
    word_gemm(words, pos, w[d[W_OFF]:], kk, one, kk, c_out, wide, items, wide[:0], pair)
    t = out.dtype.type
    for o in range(c_out):
        src, term = wide[o * pos:(o + 1) * pos], terms[o]
        for p in range(pos):
            out[p * c_out + o] = t(src[p] + term)


@njit(cache=True)
def conv_backward_int(d, x, err, w, nb, grad, back, want_back, cols, errs):
    """grad[o, j] = sum over positions p of err[p, o] * patch[p, j], as dot products over
    all positions of transposed copies; ``back`` (if wanted) by the reference scatter."""
    c_out, kk = d[OUT_C], d[KH] * d[KW] * d[IN_C]
    pos = nb * d[OUT_H] * d[OUT_W]
    gather_cols(d, x, nb, cols)
    for o in range(c_out):
        e = errs[o * pos:(o + 1) * pos]
        for p in range(pos):
            e[p] = err[p * c_out + o]
    dot_gemm(errs, pos, c_out, cols, kk, grad, grad[:0])
    if want_back:
        conv_scatter(d, x, err, w, nb, grad, back, False, True)


# ---------------------------------------------------------------- reference loops


@njit(cache=True)
def conv_forward(d, x, w, nb, out):
    """HWC convolution: out[n, y, x, o] = sum w[o, ky, kx, c] * x[n, y+ky-pad_h, x+kx-pad_w, c].

    Each output pixel's zero-padded patch is gathered once, then dotted with every
    filter: the reduction runs over one contiguous vector instead of a branchy nest.
    """
    t = out.dtype.type
    h, wd, c_in, kh, kw, ph, pw = d[IN_H], d[IN_W], d[IN_C], d[KH], d[KW], d[PAD_H], d[PAD_W]
    oh, ow, c_out, wo = d[OUT_H], d[OUT_W], d[OUT_C], d[W_OFF]
    kk = kh * kw * c_in
    patch = np.zeros(kk, dtype=out.dtype)
    for n in range(nb):
        for oy in range(oh):
            for ox in range(ow):
                j = 0
                for ky in range(kh):
                    iy = oy + ky - ph
                    for kx in range(kw):
                        ix = ox + kx - pw
                        inside = 0 <= iy < h and 0 <= ix < wd
                        base = ((n * h + iy) * wd + ix) * c_in
                        for c in range(c_in):
                            patch[j] = t(x[base + c]) if inside else t(0)
                            j += 1
                ob = ((n * oh + oy) * ow + ox) * c_out
                for o in range(c_out):
                    wr = w[wo + o * kk:wo + (o + 1) * kk]
                    s = t(0)
                    for j in range(kk):
                        s = t(s + patch[j] * t(wr[j]))
                    out[ob + o] = s


@njit(cache=True)
def conv_backward(d, x, err, w, nb, grad, back, want_back):
    """grad[o, ky, kx, c] = sum over n, y, x of err[n, y, x, o] * x[n, y+ky-pad_h, x+kx-pad_w, c] and,
    if ``want_back``, back[n, iy, ix, c] = sum of err * w scattered through the kernel."""
    conv_scatter(d, x, err, w, nb, grad, back, True, want_back)


@njit(cache=True)
def conv_scatter(d, x, err, w, nb, grad, back, want_grad, want_back):
    """One sweep over the output errors for both backward products (either may be skipped)."""
    t, tb = grad.dtype.type, back.dtype.type
    h, wd, c_in, kh, kw, ph, pw = d[IN_H], d[IN_W], d[IN_C], d[KH], d[KW], d[PAD_H], d[PAD_W]
    oh, ow, c_out, wo = d[OUT_H], d[OUT_W], d[OUT_C], d[W_OFF]
    if want_grad:
        grad[:c_out * kh * kw * c_in] = 0
    if want_back:
        back[:nb * h * wd * c_in] = 0
    for n in range(nb):
        for oy in range(oh):
            for ox in range(ow):
                for o in range(c_out):
                    e = err[((n * oh + oy) * ow + ox) * c_out + o]
                    if e == 0:
                        continue
                    for ky in range(kh):
                        iy = oy + ky - ph
                        for kx in range(kw):
                            ix = ox + kx - pw
                            if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                                continue
                            gb, xb = ((o * kh + ky) * kw + kx) * c_in, ((n * h + iy) * wd + ix) * c_in
                            if want_grad:
                                g, xr = grad[gb:gb + c_in], x[xb:xb + c_in]
                                for c in range(c_in):
                                    g[c] = t(g[c] + t(e) * t(xr[c]))
                            if want_back:
                                b, wr = back[xb:xb + c_in], w[wo + gb:wo + gb + c_in]
                                for c in range(c_in):
                                    b[c] = tb(b[c] + tb(e) * tb(wr[c]))
