"""Weight-update rules: SR and R on the fixed grid, BinaryConnect, and float32.

With learning rate ``alpha = m * 2**-k`` and an int32 gradient ``G`` of exponent
``e_g``, the update in grid units is ``u = m * G * 2**(e_g - k - e_w)``, so every
integer method only shifts ``m * G`` right by ``s = e_w + k - e_g``:

* ``sr``: ``w <- sat_b(w - sr_shift(m G, s))``; unbiased, needs no float state.
* ``r``:  ``w <- sat_b(w - round_shift(m G, s))``; stalls once ``|u| < 1/2``.
* ``bc``: float32 shadow ``w_r -= alpha G 2**e_g``, clipped to the grid's range,
  then ``w = sat_b(floor(w_r / 2**e_w + 1/2))``.

Biases live on an int32 grid 2**8 finer than the weights; ``sr`` rounds their
updates stochastically, ``r`` and ``bc`` to nearest.

Momentum ``beta = 1 - 2**-j`` (heavy ball, weights only): ``sr``/``r`` keep an
int16 velocity ``V`` in units of 2**(e_w - 8), ``V <- V - round(V / 2**j) + Q(m G
2**-(s - 8))`` and ``w <- sat_b(w - Q(V / 2**8))`` with Q the method's rounding
(two draws per weight for ``sr``); ``bc`` and ``float`` keep a float32 velocity.
"""
import numpy as np
from numba import njit

from .fixedpoint import round_shift, sat, sr_shift, xorshift32
from .numbers import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN

SR, R, BC, FLOAT = 0, 1, 2, 3  # method codes; training/config.py names them
# Fraction bits used to form the binary weight's updated value v before its coin flip.
BINARY_FRAC_BITS = 16
MOM_FRAC_BITS = 8  # the int16 velocity resolves 1/256 of a grid step


@njit(cache=True, inline='always')
def _rounded(method, x, s, rng):
    return sr_shift(x, s, xorshift32(rng)) if method == SR else round_shift(x, s)


@njit(cache=True, inline='always')
def _binary_update(w, mg, s, method, rng):
    """b = 1: v = w - u clipped to [-1, 1]; SR picks +1 with probability (v + 1) / 2.

    Returns (new weight, 1 if v was clipped).
    """
    one = np.int64(1) << BINARY_FRAC_BITS
    v = (np.int64(w) << BINARY_FRAC_BITS) - round_shift(mg, s - BINARY_FRAC_BITS)
    clipped = int(v > one or v < -one)
    v = sat(v, -one, one)
    if method == SR:
        return 2 * sr_shift(v + one, BINARY_FRAC_BITS + 1, xorshift32(rng)) - 1, clipped
    return (1 if v >= 0 else -1), clipped


@njit(cache=True, inline='always')
def _grid_step(method, bits, qm, w, x, s, rng):
    """``w - Q(x / 2**s)`` on the b-bit grid with the method's rounding; returns (new w, clipped)."""
    if bits == 1:
        return _binary_update(w, x, s, method, rng)
    v = w - _rounded(method, x, s, rng)
    return sat(v, -qm, qm), int(v > qm or v < -qm)


@njit(cache=True)
def update_weights_int(method, bits, qm, w, g, m, s, rng):
    """SR or R update of the weight slice ``w`` by gradient ``g``; one draw per weight for SR.

    Returns how many weights were clipped to the grid's range.
    """
    clipped = 0
    for j in range(w.shape[0]):
        nw, c = _grid_step(method, bits, qm, w[j], m * np.int64(g[j]), s, rng)
        w[j] = nw
        clipped += c
    return clipped


@njit(cache=True)
def update_weights_momentum(method, bits, qm, w, vel, g, m, s, j, rng):
    """SR or R update through the int16 velocity ``vel`` (see the module docstring).

    Returns (velocities saturated at the int16 range, weights clipped to the grid's range).
    """
    mom_clipped = w_clipped = 0
    for i in range(w.shape[0]):
        v = vel[i] - round_shift(vel[i], j) + _rounded(method, m * np.int64(g[i]), s - MOM_FRAC_BITS, rng)
        mom_clipped += v > INT16_MAX or v < INT16_MIN
        v = sat(v, INT16_MIN, INT16_MAX)
        vel[i] = v
        nw, c = _grid_step(method, bits, qm, w[i], v, np.int64(MOM_FRAC_BITS), rng)
        w[i] = nw
        w_clipped += c
    return mom_clipped, w_clipped


@njit(cache=True)
def update_bias_int(method, b, g, m, s, rng):
    """Bias update on the fine int32 grid: SR for ``sr`` (one draw per bias), else nearest.

    Returns how many biases saturated at the int32 range.
    """
    clipped = 0
    for j in range(b.shape[0]):
        v = b[j] - _rounded(method, m * np.int64(g[j]), s, rng)
        clipped += v > INT32_MAX or v < INT32_MIN
        b[j] = sat(v, INT32_MIN, INT32_MAX)
    return clipped


@njit(cache=True)
def update_bc(bits, qm, w, shadow, g, step, e_w, vel, beta):
    """BinaryConnect: float32 shadow step, clip, re-quantise. ``step`` is alpha * 2**e_g.

    Float ops per weight: 1 mul, 1 sub, 2 compares (clip), 1 mul, 1 add, 1 floor;
    momentum (``vel`` non-empty) adds 2 mul and 1 add. Returns how many shadow
    weights were clipped to the grid's range.
    """
    inv, lim = bc_limits(qm, e_w)
    clipped = 0
    for j in range(w.shape[0]):
        d = step * np.float32(g[j])
        if vel.shape[0]:
            vel[j] = beta * vel[j] + d
            d = vel[j]
        clipped += bc_store(bits, qm, w, shadow, j, shadow[j] - d, inv, lim)
    return clipped


@njit(cache=True, inline='always')
def bc_limits(qm, e_w):
    """(1 / grid step, the shadow's clip limit) of a layer with weight exponent ``e_w``, as float32."""
    return np.float32(2.0 ** -e_w), np.float32(qm) * np.float32(2.0 ** e_w)


@njit(cache=True, inline='always')
def bc_store(bits, qm, w, shadow, j, v, inv, lim):
    """Clip the new shadow value ``v`` of weight ``j``, keep it, and re-quantise it into ``w[j]``;
    1 if it was clipped. Shared by SGD and Adam (:mod:`fxtrain.engine.adam`), so both round alike."""
    clipped = v > lim or v < -lim
    v = min(max(v, -lim), lim)
    shadow[j] = v
    if bits == 1:
        w[j] = 1 if v >= 0 else -1
    else:
        w[j] = sat(np.int64(np.floor(v * inv + np.float32(0.5))), -qm, qm)
    return clipped


@njit(cache=True)
def update_float(w, g, step, vel, beta):
    """SGD in float32: ``w -= step * g`` with ``step = alpha / batch``; heavy-ball if ``vel``."""
    for j in range(w.shape[0]):
        d = step * g[j]
        if vel.shape[0]:
            vel[j] = beta * vel[j] + d
            d = vel[j]
        w[j] -= d
