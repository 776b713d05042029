"""From wide accumulators back to int8: bias add, per-tensor shift, rounding, ReLU, softmax error.

Activations and errors are int8 with one exponent per tensor per batch. After an
integer accumulation the tensor is shifted right by ``s = max(0, bitlen(max|acc|) - 7)``
and ``s`` is added to its exponent: round-half-up for forward activations, stochastic
rounding (one generator draw per value) for errors. All buffers are flat; ``n`` is
the number of values in use. Each function that saturates returns how many values
it saturated, so a run can report them per tensor (columns ``SAT_*`` below).
"""
import numpy as np
from numba import njit

from .bounds import BIAS_TERM_LIMIT
from .fixedpoint import EXP2_NEG_Q15, bitlen, round_shift, sat, sr_shift, xorshift32
from .numbers import EXP2_FRAC_BITS, INT8_MAX, INT8_MIN, LOG2E_Q15

# Columns of a run's saturation counters (one row per layer): forward activations,
# the error at the layer's output, bias terms and stored biases, momentum velocities,
# and weights (or bc's shadow) clipped to the grid's range.
SAT_ACT, SAT_ERR, SAT_BIAS, SAT_MOM, SAT_WEIGHT = range(5)
SAT_NAMES = ("activations", "errors", "biases", "momentum", "weights")
N_SAT = len(SAT_NAMES)


@njit(cache=True)
def bias_term(b, shift):
    """``b`` re-exponented by ``shift`` (round-half-up; < 0 shifts left) and clamped to
    +-BIAS_TERM_LIMIT without ever forming a product beyond int64. Returns (term, clamped)."""
    b = np.int64(b)
    if shift < 0:
        room = BIAS_TERM_LIMIT >> min(-shift, 62)
        if b > room or b < -room:
            return (BIAS_TERM_LIMIT if b > 0 else -BIAS_TERM_LIMIT), 1
        return b << (-shift), 0
    v = round_shift(b, shift)
    return sat(v, -BIAS_TERM_LIMIT, BIAS_TERM_LIMIT), int(v > BIAS_TERM_LIMIT or v < -BIAS_TERM_LIMIT)


@njit(cache=True)
def bias_terms(bias, b_off, n_out, shift, terms):
    """terms[o] = bias[b_off + o] as a clamped bias term (:func:`bias_term`), in terms' dtype.

    The integer kernels start their sums from these terms. Returns how many were clamped.
    """
    clamped = 0
    for j in range(n_out):
        v, c = bias_term(bias[b_off + j], shift)
        terms[j] = v
        clamped += c
    return clamped


@njit(cache=True)
def add_terms(acc, rows, n_out, terms):
    """acc[r, o] += terms[o] for r < rows."""
    t = acc.dtype.type
    for r in range(rows):  # rows outer, outputs inner: the sweep over acc stays contiguous
        for j in range(n_out):
            acc[r * n_out + j] = t(acc[r * n_out + j] + terms[j])


@njit(cache=True)
def bias_gradient(err, rows, n_out, gbias):
    """gbias[o] = sum over rows of err[r, o]: the bias gradient, exponent of the error."""
    t = gbias.dtype.type
    gbias[:n_out] = 0
    for r in range(rows):
        for j in range(n_out):
            gbias[j] = t(gbias[j] + t(err[r * n_out + j]))


@njit(cache=True)
def tensor_shift(acc, n):
    """The shift that brings max|acc[:n]| into int8: max(0, bitlen(max|acc|) - 7)."""
    hi = acc.dtype.type(0)
    lo = acc.dtype.type(0)
    for j in range(n):  # max and min in the accumulator's type vectorise; abs() did not
        v = acc[j]
        hi = v if v > hi else hi
        lo = v if v < lo else lo
    return max(0, bitlen(max(np.int64(hi), -np.int64(lo))) - 7)


@njit(cache=True)
def requant_round(acc, n, s, relu, out):
    """int8 activations: round-half-up shift by ``s`` (>= 0), saturate, then ReLU if asked.

    Returns how many values saturated at 127 (round-half-up can reach 128).
    """
    lo = 0 if relu else INT8_MIN
    half = (np.int64(1) << (s - 1)) if s > 0 else np.int64(0)  # round_shift, its case chosen once
    clipped = 0
    for j in range(n):
        v = (np.int64(acc[j]) + half) >> s
        clipped += v > INT8_MAX
        out[j] = min(max(v, lo), INT8_MAX)
    return clipped


@njit(cache=True)
def requant_sr(acc, n, s, rng, out):
    """int8 errors: stochastic shift by ``s`` with one draw per value, then saturate.

    Returns how many values saturated (only +128 can, from a round-up of the largest).
    """
    clipped = 0
    for j in range(n):
        v = sr_shift(acc[j], s, xorshift32(rng))
        clipped += v > INT8_MAX or v < INT8_MIN
        out[j] = sat(v, INT8_MIN, INT8_MAX)
    return clipped


@njit(cache=True)
def relu_mask(err, act, n):
    """Zero the error where the ReLU output was zero (its derivative is 0 there)."""
    for j in range(n):
        if act[j] <= 0:
            err[j] = 0


@njit(cache=True)
def exp2_neg_q15(a_q8):
    """2**(-a) in Q15 for a >= 0 given in Q8: table for the fraction, shift for the rest."""
    ip = a_q8 >> EXP2_FRAC_BITS
    if ip >= 31:
        return 0
    return EXP2_NEG_Q15[a_q8 & ((1 << EXP2_FRAC_BITS) - 1)] >> ip


@njit(cache=True)
def softmax_error_int(logits, nb, n_cls, e_z, y, err, probs, terms):
    """Cross-entropy error ``p - onehot`` in Q7 (exponent -7), integers only.

    ``logits`` int8 [nb, n_cls] with exponent ``e_z``; writes int8 ``err``. For the
    reported loss, ``terms[n]`` receives (sum of the Q15 probabilities, Q15
    probability of the label): ``-ln p_y = ln(total) - ln(p_y)`` is taken outside,
    so the training step holds no float operation. Returns how many errors saturated.
    """
    to_q8 = 15 - EXP2_FRAC_BITS - e_z  # Q15 * 2**e_z -> Q8 base-2 exponent
    clipped = 0
    for n in range(nb):
        row = n * n_cls
        zmax = logits[row]
        for j in range(n_cls):
            zmax = max(zmax, logits[row + j])
        total = np.int64(0)
        for j in range(n_cls):
            t = np.int64(logits[row + j]) - zmax
            probs[j] = exp2_neg_q15(-round_shift(t * LOG2E_Q15, to_q8))
            total += probs[j]
        for j in range(n_cls):
            e = (probs[j] * 128 + total // 2) // total - (128 if j == y[n] else 0)
            clipped += e > INT8_MAX
            err[row + j] = sat(e, INT8_MIN, INT8_MAX)
        terms[n, 0] = total
        terms[n, 1] = probs[y[n]]
    return clipped


@njit(cache=True)
def softmax_error_float(logits, nb, n_cls, y, err):
    """Float32 reference of :func:`softmax_error_int`: err = softmax - onehot; returns the summed loss."""
    loss = 0.0
    for n in range(nb):
        row = n * n_cls
        zmax = logits[row]
        for j in range(n_cls):
            if logits[row + j] > zmax:
                zmax = logits[row + j]
        total = 0.0
        for j in range(n_cls):
            err[row + j] = np.exp(logits[row + j] - zmax)
            total += err[row + j]
        loss += np.log(total) - (logits[row + y[n]] - zmax)
        for j in range(n_cls):
            err[row + j] = err[row + j] / total - (1.0 if j == y[n] else 0.0)
    return loss
