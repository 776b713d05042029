"""The update rules and the error requantisation again, with the generator's draws taken in bulk.

:mod:`fxtrain.engine.updates` and :func:`fxtrain.engine.requant.requant_sr` draw one value
at a time inside their loops, so the loops are chained to the generator and do not
vectorise. The functions here take the same draws, in the same order, CHUNK at a time
from :func:`fxtrain.engine.draws.fill_draws`, and choose each rounding's case once per
loop, so the loops over weights and errors have no branch and vectorise. The results
are the same bytes (``tests/test_updates.py`` holds both to exact arithmetic). The
epochs of large nets use these; small nets keep the serial versions, which compile in
a fraction of the time (see :mod:`fxtrain.engine.epoch`).
"""
import numpy as np
from numba import njit

from .draws import CHUNK, fill_draws
from .numbers import INT8_MAX, INT8_MIN, INT16_MAX, INT16_MIN, SR_MAX_BITS
from .updates import BINARY_FRAC_BITS, MOM_FRAC_BITS, SR, R


@njit(cache=True, inline='always')
def _plan(method, s):
    """(pre, add, mask, post, left) with which :func:`_apply` rounds x / 2**s by the method's rule.

    Chosen once per loop, so the loop over weights has no branch: SR is ``sr_shift``
    (past 32 bits, floor first), R is ``round_shift``; a negative s shifts left exactly.
    """
    if s <= 0:
        return 0, np.int64(0), np.int64(0), 0, -s
    if method == SR:
        post = min(s, SR_MAX_BITS)
        return s - post, np.int64(0), (np.int64(1) << post) - 1, post, 0
    return 0, np.int64(1) << (s - 1), np.int64(0), s, 0


@njit(cache=True, inline='always')
def _apply(x, plan, r):
    pre, add, mask, post, left = plan
    return (((x >> pre) + add + (np.int64(r) & mask)) >> post) << left


@njit(cache=True, inline='always')
def _binary_step(w, x, plan_v, method, r):
    """b = 1: v = w - u in 16 fraction bits (u = x rounded by ``plan_v``), clipped to [-1, 1];
    SR sets +1 with probability (v + 1) / 2, decided by the draw ``r``, R takes the sign.

    Returns (new weight, 1 if v was clipped).
    """
    one = np.int64(1) << BINARY_FRAC_BITS
    v = (np.int64(w) << BINARY_FRAC_BITS) - _apply(x, plan_v, 0)
    clipped = (v > one) | (v < -one)
    v = min(max(v, -one), one)
    if method == SR:
        return 2 * _apply(v + one, _plan(SR, BINARY_FRAC_BITS + 1), r) - 1, clipped
    return (1 if v >= 0 else -1), clipped


@njit(cache=True, inline='always')
def _draws(method, rng, buf, count):
    """Fill the first ``count`` entries of ``buf`` with the next draws (SR only: R draws nothing)."""
    if method == SR:
        fill_draws(rng, buf, count, buf[CHUNK:])


@njit(cache=True)
def update_weights_bulk(method, bits, qm, w, g, m, s, rng, buf):
    """SR or R update of the weight slice ``w`` by gradient ``g``; one draw per weight for SR.

    ``buf`` is a draw buffer (``draws.draw_buffer``). Returns how many weights were
    clipped to the grid's range.
    """
    clipped = 0
    plan, plan_v = _plan(method, s), _plan(R, s - BINARY_FRAC_BITS)
    for c0 in range(0, w.shape[0], CHUNK):
        wc, gc = w[c0:c0 + CHUNK], g[c0:c0 + CHUNK]
        _draws(method, rng, buf, wc.shape[0])
        if bits == 1:
            for j in range(wc.shape[0]):
                nw, c = _binary_step(wc[j], m * np.int64(gc[j]), plan_v, method, buf[j])
                wc[j] = nw
                clipped += c
            continue
        for j in range(wc.shape[0]):  # no branch but the clip: LLVM vectorises it
            v = np.int64(wc[j]) - _apply(m * np.int64(gc[j]), plan, buf[j])
            clipped += (v > qm) | (v < -qm)
            wc[j] = min(max(v, -qm), qm)
    return clipped


@njit(cache=True)
def update_momentum_bulk(method, bits, qm, w, vel, g, m, s, j, rng, buf):
    """SR or R update through the int16 velocity ``vel`` (see the module docstring); two draws
    per weight for SR, the velocity's first.

    Returns (velocities saturated at the int16 range, weights clipped to the grid's range).
    """
    mom_clipped = w_clipped = 0
    decay, plan_g, plan_w = _plan(R, j), _plan(method, s - MOM_FRAC_BITS), _plan(method, MOM_FRAC_BITS)
    plan_v = _plan(R, MOM_FRAC_BITS - BINARY_FRAC_BITS)
    half = CHUNK // 2
    for c0 in range(0, w.shape[0], half):
        wc, vc, gc = w[c0:c0 + half], vel[c0:c0 + half], g[c0:c0 + half]
        _draws(method, rng, buf, 2 * wc.shape[0])
        for i in range(wc.shape[0]):
            v0 = np.int64(vc[i])
            v = v0 - _apply(v0, decay, 0) + _apply(m * np.int64(gc[i]), plan_g, buf[2 * i])
            mom_clipped += (v > INT16_MAX) | (v < INT16_MIN)
            v = min(max(v, INT16_MIN), INT16_MAX)
            vc[i] = v
            if bits == 1:
                nw, c = _binary_step(wc[i], v, plan_v, method, buf[2 * i + 1])
            else:
                nv = np.int64(wc[i]) - _apply(v, plan_w, buf[2 * i + 1])
                nw, c = min(max(nv, -qm), qm), (nv > qm) | (nv < -qm)
            wc[i] = nw
            w_clipped += c
    return mom_clipped, w_clipped


@njit(cache=True)
def requant_sr_bulk(acc, n, s, rng, out, buf):
    """int8 errors: stochastic shift by ``s`` (>= 0) with one draw per value, then saturate.

    The draws come CHUNK at a time into ``buf`` (``draws.draw_buffer``), so the loop
    over values is branch-free and vectorises. Returns how many values saturated
    (only +128 can, from a round-up of the largest).
    """
    post = min(s, SR_MAX_BITS)  # sr_shift: past 32 bits the excess is floor-shifted first
    pre, mask = s - post, (np.int64(1) << post) - 1
    clipped = 0
    for c0 in range(0, n, CHUNK):
        a, o = acc[c0:min(n, c0 + CHUNK)], out[c0:min(n, c0 + CHUNK)]
        fill_draws(rng, buf, a.shape[0], buf[CHUNK:])
        for j in range(a.shape[0]):
            v = ((np.int64(a[j]) >> pre) + (np.int64(buf[j]) & mask)) >> post
            clipped += (v > INT8_MAX) | (v < INT8_MIN)
            o[j] = min(max(v, INT8_MIN), INT8_MAX)
    return clipped


