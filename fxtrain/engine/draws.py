"""The generator's next m values in one call, as fast as the CPU's vector lanes allow.

The stream is :func:`fxtrain.engine.fixedpoint.xorshift32`'s, value for value, and
the state is left where m single draws would leave it. One draw depends on the one
before, so drawing one at a time is bound by that chain (about 1.6 ns a draw here).
xorshift32 is linear over GF(2), so the state STEPS draws ahead is a fixed linear map
of the current one, applied byte by byte from four 256-entry tables
(:data:`JUMP`). :func:`fill_draws` jumps to the start of up to LANES blocks of STEPS
draws, then advances all of them together, one step per lane in a vector register; a
full chunk goes through :func:`fxtrain.engine.draw_block.step_lanes`, which also
stores each lane's draws in order. The tables are derived from the generator itself at
import; the C runtime does not need them, as it draws one value at a time.
"""
import numpy as np
from numba import njit

from .draw_block import BLOCK, step_lanes

LANES, STEPS = BLOCK, 64
CHUNK = LANES * STEPS  # draws a consumer takes per fill; a draw buffer holds CHUNK + LANES values


def _xorshift_np(x):
    x = x ^ (x << np.uint32(13))
    x = x ^ (x >> np.uint32(17))
    return x ^ (x << np.uint32(5))


def _jump_tables(steps):
    """``T[b, v]`` = the state ``steps`` draws after state ``v << 8b``; the jump of any state is
    the XOR of its four bytes' entries, because each draw is linear over GF(2)."""
    v = np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
    for _ in range(steps):
        v = _xorshift_np(v)
    return np.ascontiguousarray(v, dtype=np.uint32)


JUMP = _jump_tables(STEPS)


@njit(cache=True, inline='always')
def _step(x):
    x = np.uint32(x ^ np.uint32(x << 13))
    x = np.uint32(x ^ (x >> 17))
    return np.uint32(x ^ np.uint32(x << 5))


@njit(cache=True, inline='always')
def _jump(x):
    return np.uint32(JUMP[0, x & 255] ^ JUMP[1, (x >> 8) & 255] ^ JUMP[2, (x >> 16) & 255] ^ JUMP[3, x >> 24])


@njit(cache=True)
def fill_draws(rng, out, m, buf):
    """out[i] = the (i+1)-th next draw of ``rng`` (uint32[1]) for i < m; advances ``rng`` by m draws.

    ``buf`` (uint32, at least LANES) holds the lanes' states.
    """
    x = np.uint32(rng[0])
    done = 0
    while m - done >= STEPS:
        lanes = min(LANES, (m - done) // STEPS)
        buf[0] = x
        for k in range(1, lanes):
            buf[k] = _jump(buf[k - 1])
        o = out[done:done + lanes * STEPS]
        if lanes == LANES:
            step_lanes(buf[:LANES], o, np.int64(STEPS))
        else:
            for t in range(STEPS):
                for k in range(lanes):  # one step of every lane: a vector of independent draws
                    v = _step(buf[k])
                    buf[k] = v
                    o[k * STEPS + t] = v
        x = buf[lanes - 1]
        done += lanes * STEPS
    for i in range(done, m):
        x = _step(x)
        out[i] = x
    rng[0] = x


def draw_buffer():
    """A zeroed uint32 buffer for the consumers of :func:`fill_draws`: CHUNK draws, then the lanes."""
    return np.zeros(CHUNK + LANES, np.uint32)
