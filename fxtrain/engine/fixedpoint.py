"""Fixed-point rules as numba-jitted scalars: the generator, shift rounding, saturation.

The constants live in :mod:`fxtrain.engine.numbers`; these are the operations on
them that ``firmware_export/fx_runtime.h`` repeats. A tensor is an integer array
``q`` with an integer exponent ``e``; its value is ``q * 2**e``. Each helper is
inlined by the kernels and stays callable from Python for the property tests.
"""
import numpy as np
from numba import njit

from .numbers import EXP2_NEG_Q15 as _EXP2
from .numbers import MASK32, SR_MAX_BITS, splitmix32_seed

EXP2_NEG_Q15 = np.array(_EXP2, dtype=np.int32)


def new_rng(seed):
    """Generator state for ``seed``: a uint32 array of length 1, passed to kernels."""
    return np.array([splitmix32_seed(seed)], dtype=np.uint32)


@njit(cache=True)
def xorshift32(rng):
    """Advance the state in ``rng`` (uint32[1]) and return the new 32-bit value."""
    x = np.int64(rng[0])
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    rng[0] = x
    return x


@njit(cache=True)
def bitlen(x):
    """Number of bits of ``|x|``: 0 for 0, 7 for 127, 8 for 128."""
    x = abs(np.int64(x))
    n = 0
    while x > 0:
        x >>= 1
        n += 1
    return n


@njit(cache=True)
def floor_shift(x, s):
    """``floor(x / 2**s)``; a negative ``s`` shifts left."""
    x = np.int64(x)
    if s <= 0:
        return x << (-s)
    return x >> s


@njit(cache=True)
def round_shift(x, s):
    """Round-half-up ``x / 2**s``, as CMSIS-NN's ``NN_ROUND``: ``(x + 2**(s-1)) >> s``."""
    x = np.int64(x)
    if s <= 0:
        return x << (-s)
    return (x + (np.int64(1) << (s - 1))) >> s


@njit(cache=True)
def sr_shift(x, s, r):
    """Stochastic rounding of ``x / 2**s`` with the 32-bit draw ``r``.

    ``(x + (r & (2**s - 1))) >> s`` rounds up with probability equal to the dropped
    fraction, so the mean is exact. Past 32 bits the excess is floor-shifted first.
    """
    x = np.int64(x)
    if s <= 0:
        return x << (-s)
    if s > SR_MAX_BITS:
        x >>= s - SR_MAX_BITS
        s = SR_MAX_BITS
    mask = (np.int64(1) << s) - 1
    return (x + (np.int64(r) & mask)) >> s


@njit(cache=True)
def sr_div(x, n, r):
    """Stochastic rounding of ``x / n`` (``n >= 1``, not only a power of two) with the 32-bit draw ``r``:
    ``floor(x/n + r/2**32)``, in integers.

    With ``q = floor(x/n)`` and ``rem = x - q*n`` in [0, n), that floor is ``q + 1`` exactly when
    ``floor(r*n / 2**32) >= n - rem``, else ``q``: the probability of rounding up is rem/n to within
    2**-32 (exactly, for n a power of two), so the mean is x/n to that precision. Needs
    ``|x| < 2**62`` and ``n < 2**31`` (``r*n`` stays below 2**63).
    """
    x, n = np.int64(x), np.int64(n)
    q = x // n  # floor division, also for negative x
    return q + ((np.int64(r) * n) >> 32 >= n - (x - q * n))


@njit(cache=True)
def sat(x, lo, hi):
    """Clamp ``x`` to ``[lo, hi]``."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
