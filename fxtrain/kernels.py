"""Numba kernels: multiply-accumulate loops, requantisation and the integer softmax.

The MAC kernels are type-generic: the dtype of the output array decides the
arithmetic (int32 accumulators for the integer engine, float32 for the reference),
so one loop serves both and they cannot drift apart. Every kernel writes into an
array the caller allocated; none allocates, so an epoch runs allocation-free.

Shapes: activations are ``[n][features]`` for dense layers and ``[n][h][w][c]``
(HWC) for conv and pool; dense weights ``[out][in]``, conv weights
``[out][ky][kx][in]``, as CMSIS-NN q7 expects.
"""
import numpy as np
from numba import njit

from .fixedpoint import (
    EXP2_FRAC_BITS, EXP2_NEG_Q15, INT8_MAX, INT8_MIN, LOG2E_Q15,
    bitlen, round_shift, sat, sr_shift, xorshift32,
)

# ---------------------------------------------------------------- dense


@njit(cache=True)
def dense_fwd(x, w, out):
    """out[n, o] = sum_i x[n, i] * w[o, i]; the reduction axis is contiguous."""
    for n in range(x.shape[0]):
        for o in range(w.shape[0]):
            s = out.dtype.type(0)
            for i in range(w.shape[1]):
                s += x[n, i] * w[o, i]
            out[n, o] = s


@njit(cache=True)
def dense_bwd_input(err, w, out):
    """out[n, i] = sum_o err[n, o] * w[o, i]: the error sent to the layer below."""
    out[:] = 0
    for n in range(err.shape[0]):
        for o in range(w.shape[0]):
            e = err[n, o]
            if e != 0:  # ReLU zeroes most errors; skipping them is the cheap win
                for i in range(w.shape[1]):
                    out[n, i] += e * w[o, i]


@njit(cache=True)
def dense_grad(err, x, grad):
    """grad[o, i] = sum_n err[n, o] * x[n, i] (summed, not averaged, over the batch)."""
    grad[:] = 0
    for n in range(err.shape[0]):
        for o in range(err.shape[1]):
            e = err[n, o]
            if e != 0:
                for i in range(x.shape[1]):
                    grad[o, i] += e * x[n, i]


# ---------------------------------------------------------------- conv (stride 1)


@njit(cache=True)
def conv_fwd(x, w, pad, out):
    """HWC convolution: out[n, y, x, o] = sum w[o, ky, kx, c] * x[n, y+ky-pad, x+kx-pad, c].

    Each output pixel's zero-padded patch is gathered once, then dotted with every
    filter: the reduction runs over one contiguous vector instead of a branchy nest.
    """
    t = out.dtype.type
    k, c_in, n_out = w.shape[1], w.shape[3], w.shape[0]
    h, wd = x.shape[1], x.shape[2]
    kk = k * k * c_in
    w2 = w.reshape((n_out, kk))
    patch = np.zeros(kk, dtype=out.dtype)
    for n in range(x.shape[0]):
        for oy in range(out.shape[1]):
            for ox in range(out.shape[2]):
                j = 0
                for ky in range(k):
                    iy = oy + ky - pad
                    for kx in range(k):
                        ix = ox + kx - pad
                        inside = 0 <= iy < h and 0 <= ix < wd
                        for c in range(c_in):
                            patch[j] = t(x[n, iy, ix, c]) if inside else t(0)
                            j += 1
                for o in range(n_out):
                    acc = t(0)
                    for j in range(kk):
                        acc = t(acc + patch[j] * t(w2[o, j]))
                    out[n, oy, ox, o] = acc


@njit(cache=True)
def conv_backward(err, x, w, pad, grad, back, want_back):
    """One sweep over the output errors for both backward products.

    grad[o, ky, kx, c] = sum over n, y, x of err[n, y, x, o] * x[n, y+ky-pad, x+kx-pad, c];
    if ``want_back``, back[n, iy, ix, c] = sum of err * w scattered through the kernel.
    """
    grad[:] = 0
    if want_back:
        back[:] = 0
    k = grad.shape[1]
    h, wd = x.shape[1], x.shape[2]
    for n in range(err.shape[0]):
        for oy in range(err.shape[1]):
            for ox in range(err.shape[2]):
                for o in range(err.shape[3]):
                    e = err[n, oy, ox, o]
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
                            for c in range(grad.shape[3]):
                                grad[o, ky, kx, c] += e * x[n, iy, ix, c]
                                if want_back:
                                    back[n, iy, ix, c] += e * w[o, ky, kx, c]


# ---------------------------------------------------------------- max pool (stride = size)


@njit(cache=True)
def pool_fwd(x, p, out):
    """Max over disjoint p x p windows, per channel."""
    for n in range(out.shape[0]):
        for py in range(out.shape[1]):
            for px in range(out.shape[2]):
                for c in range(out.shape[3]):
                    m = x[n, py * p, px * p, c]
                    for ky in range(p):
                        for kx in range(p):
                            v = x[n, py * p + ky, px * p + kx, c]
                            if v > m:
                                m = v
                    out[n, py, px, c] = m


@njit(cache=True)
def pool_bwd(x, err, p, out):
    """Route each window's error to its first maximum (row-major), zero elsewhere."""
    out[:] = 0
    for n in range(err.shape[0]):
        for py in range(err.shape[1]):
            for px in range(err.shape[2]):
                for c in range(err.shape[3]):
                    by, bx = py * p, px * p
                    m = x[n, by, bx, c]
                    for ky in range(p):
                        for kx in range(p):
                            if x[n, py * p + ky, px * p + kx, c] > m:
                                m = x[n, py * p + ky, px * p + kx, c]
                                by, bx = py * p + ky, px * p + kx
                    out[n, by, bx, c] = err[n, py, px, c]


# ---------------------------------------------------------------- integer requantisation


@njit(cache=True)
def add_bias_int(acc, bias, shift):
    """acc[..., o] += bias[o] re-exponented by ``shift`` (round-half-up; <0 shifts left).

    Rows outer, outputs inner: the sweep over ``acc`` stays contiguous.
    """
    o = bias.shape[0]
    flat = acc.reshape((-1, o))
    for r in range(flat.shape[0]):
        for j in range(o):
            flat[r, j] += sat(round_shift(bias[j], shift), -(2**31), 2**31 - 1)


@njit(cache=True)
def tensor_shift(acc):
    """The shift that brings max|acc| into int8: max(0, bitlen(max|acc|) - 7)."""
    a = acc.ravel()
    hi = a.dtype.type(0)
    lo = a.dtype.type(0)
    for j in range(a.shape[0]):  # max and min in the accumulator's type vectorise; abs() did not
        v = a[j]
        hi = v if v > hi else hi
        lo = v if v < lo else lo
    return max(0, bitlen(max(np.int64(hi), -np.int64(lo))) - 7)


@njit(cache=True)
def requant_round(acc, s, relu, out):
    """int8 activations: round-half-up shift by ``s``, saturate, then ReLU if asked."""
    a, q = acc.ravel(), out.ravel()
    lo = 0 if relu else INT8_MIN
    for j in range(a.shape[0]):
        q[j] = sat(round_shift(a[j], s), lo, INT8_MAX)


@njit(cache=True)
def requant_sr(acc, s, rng, out):
    """int8 errors: stochastic shift by ``s`` with one draw per value, then saturate."""
    a, q = acc.ravel(), out.ravel()
    for j in range(a.shape[0]):
        q[j] = sat(sr_shift(a[j], s, xorshift32(rng)), INT8_MIN, INT8_MAX)


@njit(cache=True)
def relu_mask(err, act):
    """Zero the error where the ReLU output was zero (its derivative is 0 there)."""
    e, a = err.ravel(), act.ravel()
    for j in range(e.shape[0]):
        if a[j] <= 0:
            e[j] = 0


# ---------------------------------------------------------------- integer softmax


@njit(cache=True)
def exp2_neg_q15(a_q8):
    """2**(-a) in Q15 for a >= 0 given in Q8: table for the fraction, shift for the rest."""
    ip = a_q8 >> EXP2_FRAC_BITS
    if ip >= 31:
        return 0
    return EXP2_NEG_Q15[a_q8 & ((1 << EXP2_FRAC_BITS) - 1)] >> ip


@njit(cache=True)
def softmax_error_int(logits, e_z, y, err, probs_q15):
    """Cross-entropy error ``p - onehot`` in Q7 (exponent -7), integers only.

    ``logits`` int8 [n, k] with exponent ``e_z``; writes int8 ``err`` and returns
    (sum of -ln p_y for reporting, number of correct argmax predictions).
    """
    loss = 0.0
    correct = 0
    to_q8 = 15 - EXP2_FRAC_BITS - e_z  # Q15 * 2**e_z -> Q8 base-2 exponent
    for n in range(logits.shape[0]):
        zmax, arg = logits[n, 0], 0
        for j in range(logits.shape[1]):
            if logits[n, j] > zmax:
                zmax, arg = logits[n, j], j
        correct += arg == y[n]
        total = np.int64(0)
        for j in range(logits.shape[1]):
            t = np.int64(logits[n, j]) - zmax
            a = -round_shift(t * LOG2E_Q15, to_q8)
            probs_q15[j] = exp2_neg_q15(a)
            total += probs_q15[j]
        for j in range(logits.shape[1]):
            p_q7 = (probs_q15[j] * 128 + total // 2) // total
            target = 128 if j == y[n] else 0
            err[n, j] = sat(p_q7 - target, INT8_MIN, INT8_MAX)
        loss += np.log(total) - np.log(max(probs_q15[y[n]], 1))
    return loss, correct


@njit(cache=True)
def softmax_error_float(logits, y, err):
    """Float32 reference of :func:`softmax_error_int`: err = softmax - onehot."""
    loss = 0.0
    correct = 0
    for n in range(logits.shape[0]):
        zmax, arg = logits[n, 0], 0
        for j in range(logits.shape[1]):
            if logits[n, j] > zmax:
                zmax, arg = logits[n, j], j
        correct += arg == y[n]
        total = 0.0
        for j in range(logits.shape[1]):
            err[n, j] = np.exp(logits[n, j] - zmax)
            total += err[n, j]
        loss += np.log(total) - (logits[n, y[n]] - zmax)
        for j in range(logits.shape[1]):
            err[n, j] = err[n, j] / total - (1.0 if j == y[n] else 0.0)
    return loss, correct
