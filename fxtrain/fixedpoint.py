"""Fixed-point numbers shared bit for bit with the C runtime.

Everything the simulator and ``firmware_export/fx_runtime.h`` must agree on lives
here, once: the generator constants, the exp2 table and the shift-rounding rules.
``tests/test_c_constants.py`` compiles the C copy and compares it with this one.

A tensor is an integer array ``q`` with an integer exponent ``e``; its value is
``q * 2**e``. Scalar helpers are numba-jitted so kernels inline them, and they stay
callable from Python for the property tests.
"""
import math

import numpy as np
from numba import njit

MASK32 = 0xFFFFFFFF
SPLITMIX_GAMMA = 0x9E3779B9
SPLITMIX_MUL1 = 0x85EBCA6B
SPLITMIX_MUL2 = 0xC2B2AE35
# xorshift32 has an all-zero fixed point; a seed that maps to 0 takes this instead.
XORSHIFT_ZERO_FALLBACK = 0x6D2B79F5
# One 32-bit draw feeds one stochastic rounding, so SR resolves at most 32 bits.
SR_MAX_BITS = 32

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_BITS = (1, 2, 3, 4, 6, 8, 12, 16)

# exp2 table for the integer softmax: EXP2_NEG_Q15[f] = round(2**(-f/256) * 2**15).
EXP2_FRAC_BITS = 8
EXP2_Q = 15
EXP2_NEG_Q15 = np.array(
    [int(round(2.0 ** (-f / 2**EXP2_FRAC_BITS) * 2**EXP2_Q)) for f in range(2**EXP2_FRAC_BITS)],
    dtype=np.int32,
)
# log2(e) in Q15: turns a natural-log logit difference into a base-2 exponent.
LOG2E_Q15 = int(round(math.log2(math.e) * 2**15))


def splitmix32_seed(seed):
    """Map a user seed (any int, taken mod 2**32) to a non-zero xorshift32 state.

    Returns
    -------
    int in [1, 2**32).
    """
    z = (int(seed) + SPLITMIX_GAMMA) & MASK32
    z = ((z ^ (z >> 16)) * SPLITMIX_MUL1) & MASK32
    z = ((z ^ (z >> 13)) * SPLITMIX_MUL2) & MASK32
    z ^= z >> 16
    return z if z != 0 else XORSHIFT_ZERO_FALLBACK


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
def sat(x, lo, hi):
    """Clamp ``x`` to ``[lo, hi]``."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def qmax(bits):
    """Largest weight code for ``bits``: 2**(bits-1) - 1, and 1 for binary weights."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"bits must be one of {WEIGHT_BITS}, got {bits}")
    return 1 if bits == 1 else 2 ** (bits - 1) - 1


def weight_dtype(bits):
    """int8 for b <= 8, int16 otherwise (DESIGN.md, Numbers)."""
    return np.int8 if bits <= 8 else np.int16
