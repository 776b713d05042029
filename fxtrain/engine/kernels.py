"""Multiply-accumulate loops over flat buffers: dense, conv (stride 1) and max pool.

Every tensor is a flat 1-D array, as the C runtime declares it: activations of
sample ``n`` start at ``n * values_per_sample``, images are HWC, dense weights
``[out][in]`` and conv weights ``[out][ky][kx][in]`` from offset ``w_off`` of the
network's flat weight array. A layer's geometry comes from its row ``d`` of the
desc table (:mod:`fxtrain.engine.network`).

The loops are type-generic: the dtype of the output array decides the
arithmetic (int32 or int64 accumulators for the integer engine, float32 for the
reference), so one loop serves both and they cannot drift apart. Each partial sum
is cast back to that dtype (``t(...)``), which pins an int32 accumulator to int32
instead of letting numba widen it. Every kernel writes into arrays the caller
allocated; the sums are sized at configuration time so that none can wrap.
"""
import numpy as np
from numba import njit

from .network import IN_C, IN_H, IN_W, KSIZE, N_IN, N_OUT, OUT_C, OUT_H, OUT_W, PAD, W_OFF

# ---------------------------------------------------------------- dense


@njit(cache=True)
def dense_forward(d, x, w, nb, out):
    """out[n, o] = sum_i x[n, i] * w[o, i]; the reduction axis is contiguous."""
    t = out.dtype.type
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    for n in range(nb):
        xb = n * n_in
        for o in range(n_out):
            wb = wo + o * n_in
            s = t(0)
            for i in range(n_in):
                s = t(s + t(x[xb + i]) * t(w[wb + i]))
            out[n * n_out + o] = s


@njit(cache=True)
def dense_backward(d, x, err, w, nb, grad, back, want_back):
    """grad[o, i] = sum_n err[n, o] x[n, i] (summed over the batch, not averaged) and,
    if ``want_back``, back[n, i] = sum_o err[n, o] w[o, i], the error for the layer below."""
    t = grad.dtype.type
    n_in, n_out, wo = d[N_IN], d[N_OUT], d[W_OFF]
    grad[:n_in * n_out] = 0
    for n in range(nb):
        for o in range(n_out):
            e = t(err[n * n_out + o])
            if e != 0:  # ReLU zeroes most errors; skipping them is the cheap win
                gb, xb = o * n_in, n * n_in
                for i in range(n_in):
                    grad[gb + i] = t(grad[gb + i] + e * t(x[xb + i]))
    if not want_back:
        return
    tb = back.dtype.type
    back[:nb * n_in] = 0
    for n in range(nb):
        for o in range(n_out):
            e = tb(err[n * n_out + o])
            if e != 0:
                bb, wb = n * n_in, wo + o * n_in
                for i in range(n_in):
                    back[bb + i] = tb(back[bb + i] + e * tb(w[wb + i]))


# ---------------------------------------------------------------- conv (stride 1)


@njit(cache=True)
def conv_forward(d, x, w, nb, out):
    """HWC convolution: out[n, y, x, o] = sum w[o, ky, kx, c] * x[n, y+ky-pad, x+kx-pad, c].

    Each output pixel's zero-padded patch is gathered once, then dotted with every
    filter: the reduction runs over one contiguous vector instead of a branchy nest.
    """
    t = out.dtype.type
    h, wd, c_in, k, pad = d[IN_H], d[IN_W], d[IN_C], d[KSIZE], d[PAD]
    oh, ow, c_out, wo = d[OUT_H], d[OUT_W], d[OUT_C], d[W_OFF]
    kk = k * k * c_in
    patch = np.zeros(kk, dtype=out.dtype)
    for n in range(nb):
        for oy in range(oh):
            for ox in range(ow):
                j = 0
                for ky in range(k):
                    iy = oy + ky - pad
                    for kx in range(k):
                        ix = ox + kx - pad
                        inside = 0 <= iy < h and 0 <= ix < wd
                        base = ((n * h + iy) * wd + ix) * c_in
                        for c in range(c_in):
                            patch[j] = t(x[base + c]) if inside else t(0)
                            j += 1
                ob = ((n * oh + oy) * ow + ox) * c_out
                for o in range(c_out):
                    wb = wo + o * kk
                    s = t(0)
                    for j in range(kk):
                        s = t(s + patch[j] * t(w[wb + j]))
                    out[ob + o] = s


@njit(cache=True)
def conv_backward(d, x, err, w, nb, grad, back, want_back):
    """One sweep over the output errors for both backward products.

    grad[o, ky, kx, c] = sum over n, y, x of err[n, y, x, o] * x[n, y+ky-pad, x+kx-pad, c];
    if ``want_back``, back[n, iy, ix, c] = sum of err * w scattered through the kernel.
    """
    t, tb = grad.dtype.type, back.dtype.type
    h, wd, c_in, k, pad = d[IN_H], d[IN_W], d[IN_C], d[KSIZE], d[PAD]
    oh, ow, c_out, wo = d[OUT_H], d[OUT_W], d[OUT_C], d[W_OFF]
    grad[:c_out * k * k * c_in] = 0
    if want_back:
        back[:nb * h * wd * c_in] = 0
    for n in range(nb):
        for oy in range(oh):
            for ox in range(ow):
                for o in range(c_out):
                    e = err[((n * oh + oy) * ow + ox) * c_out + o]
                    if e == 0:
                        continue
                    for ky in range(k):
                        iy = oy + ky - pad
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(k):
                            ix = ox + kx - pad
                            if ix < 0 or ix >= wd:
                                continue
                            gb = ((o * k + ky) * k + kx) * c_in
                            xb = ((n * h + iy) * wd + ix) * c_in
                            for c in range(c_in):
                                grad[gb + c] = t(grad[gb + c] + t(e) * t(x[xb + c]))
                                if want_back:
                                    back[xb + c] = tb(back[xb + c] + tb(e) * tb(w[wo + gb + c]))


# ---------------------------------------------------------------- max pool (stride = size)


@njit(cache=True)
def pool_forward(d, x, nb, out):
    """Max over disjoint p x p windows, per channel; a ragged last row or column is dropped."""
    h, wd, c, p = d[IN_H], d[IN_W], d[IN_C], d[KSIZE]
    oh, ow = d[OUT_H], d[OUT_W]
    for n in range(nb):
        for py in range(oh):
            for px in range(ow):
                for ch in range(c):
                    m = x[((n * h + py * p) * wd + px * p) * c + ch]
                    for ky in range(p):
                        for kx in range(p):
                            v = x[((n * h + py * p + ky) * wd + px * p + kx) * c + ch]
                            if v > m:
                                m = v
                    out[((n * oh + py) * ow + px) * c + ch] = m


@njit(cache=True)
def pool_backward(d, x, err, nb, out):
    """Route each window's error to its first maximum (row-major), zero elsewhere."""
    h, wd, c, p = d[IN_H], d[IN_W], d[IN_C], d[KSIZE]
    oh, ow = d[OUT_H], d[OUT_W]
    out[:nb * h * wd * c] = 0
    for n in range(nb):
        for py in range(oh):
            for px in range(ow):
                for ch in range(c):
                    best = ((n * h + py * p) * wd + px * p) * c + ch
                    for ky in range(p):
                        for kx in range(p):
                            j = ((n * h + py * p + ky) * wd + px * p + kx) * c + ch
                            if x[j] > x[best]:
                                best = j
                    out[best] = err[((n * oh + py) * ow + px) * c + ch]
