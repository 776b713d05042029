"""Global average pooling (the ``gap`` kind) over flat HWC buffers: integer kernels and the float32 reference.

A layer's row ``d`` of the desc table gives its input (h, w, c); its output is one value
per channel. The rules (docs/design.md, "Global average pooling"):

- forward, integer: TFLite's int8 AVERAGE_POOL_2D: the channel's exact sum ``S`` over
  ``n = h*w`` positions, then ``(S + n//2) / n`` for S >= 0 and ``(S - n//2) / n`` for
  S < 0 with C's division toward zero (to nearest, ties away from zero), in the input's
  exponent;
- backward, integer: each position receives the output error ``e`` (exponent E) divided
  by n, in units of ``2**(E - t)`` with ``t = floor(log2 n)``: ``sr_div(e * 2**t, n, r)``,
  one draw per value in the order of the HWC buffer (sample, then position, then
  channel). ``|e * 2**t / n| <= |e| <= 128`` with rounding toward a whole number, so
  nothing saturates;
- float32: the mean, and the error divided by n.
"""
import numpy as np
from numba import njit

from .fixedpoint import bitlen, sr_div, xorshift32
from .network import IN_C, IN_H, IN_W


@njit(cache=True)
def gap_shift(n):
    """t = floor(log2 n): the error below is e * 2**t / n on the exponent E - t, so it fills int8 as e did."""
    return bitlen(n) - 1


@njit(cache=True)
def channel_sums(d, x, nb, out):
    """out[s, ch] = sum over the h*w positions of x[s, pos, ch], in ``out``'s dtype, positions in order
    (exact for an integer ``out``: at most 128 * h * w)."""
    t = out.dtype.type
    n_pos, c = d[IN_H] * d[IN_W], d[IN_C]
    out[:nb * c] = 0
    for s in range(nb):
        o = out[s * c:(s + 1) * c]
        for p in range(n_pos):
            v = x[(s * n_pos + p) * c:(s * n_pos + p + 1) * c]
            for ch in range(c):
                o[ch] = t(o[ch] + t(v[ch]))


@njit(cache=True)
def gap_forward_int(d, x, nb, sums, out):
    """int8 averages of ``x`` into ``out`` by TFLite's rule; ``sums`` (the accumulator) keeps the exact sums."""
    channel_sums(d, x, nb, sums)
    n = np.int64(d[IN_H] * d[IN_W])
    half = n // 2
    for j in range(nb * d[IN_C]):
        s = np.int64(sums[j])
        out[j] = (s + half) // n if s >= 0 else -((half - s) // n)  # C's truncating division


@njit(cache=True)
def gap_forward_float(d, x, nb, out):
    """float32 means of ``x`` into ``out``."""
    channel_sums(d, x, nb, out)
    n = np.float32(d[IN_H] * d[IN_W])
    for j in range(nb * d[IN_C]):
        out[j] = out[j] / n


@njit(cache=True)
def gap_backward_int(d, err, nb, rng, out):
    """int8 error below: out[s, pos, ch] = sr_div(err[s, ch] * 2**t, n, draw), one draw per value in
    buffer order (sample-major, then position, then channel). Returns t, which the exponent loses.

    The draws come one at a time in both kernel families: a few per input value, they would not pay
    for the bulk generator's compile time here."""
    n_pos, c = d[IN_H] * d[IN_W], d[IN_C]
    t = gap_shift(n_pos)
    j = 0
    for s in range(nb):
        e = err[s * c:(s + 1) * c]
        for p in range(n_pos):
            for ch in range(c):
                out[j] = sr_div(np.int64(e[ch]) << t, n_pos, xorshift32(rng))
                j += 1
    return t


@njit(cache=True)
def gap_backward_float(d, err, nb, out):
    """float32 error below: each position receives its channel's error divided by n."""
    n_pos, c = d[IN_H] * d[IN_W], d[IN_C]
    n = np.float32(n_pos)
    for s in range(nb):
        for p in range(n_pos):
            for ch in range(c):
                out[(s * n_pos + p) * c + ch] = err[s * c + ch] / n
