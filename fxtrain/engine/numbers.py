"""Number formats shared bit for bit with the C runtimes, in pure Python (no numpy, no numba).

Everything here has one twin in ``firmware_export/fx_runtime.h``;
``tests/test_c_constants.py`` compiles the C copy and compares the two.
The CLI reads ``WEIGHT_BITS`` from here without loading numba.
"""
import math

MASK32 = 0xFFFFFFFF
SPLITMIX_GAMMA = 0x9E3779B9
SPLITMIX_MUL1 = 0x85EBCA6B
SPLITMIX_MUL2 = 0xC2B2AE35
# xorshift32 has an all-zero fixed point; a seed that maps to 0 takes this instead.
XORSHIFT_ZERO_FALLBACK = 0x6D2B79F5
# One 32-bit draw feeds one stochastic rounding, so SR resolves at most 32 bits.
SR_MAX_BITS = 32

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

WEIGHT_BITS = (1, 2, 3, 4, 6, 8, 12, 16)
# Weights the exported C (CMSIS-NN q7 layout) can hold.
EXPORT_MAX_BITS = 8

# FNV-1a over 32-bit words: the per-tensor checksums a device prints while it trains.
FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
# Deployment rounding rules of the requantisation; the index is the C code
# (FX_ROUNDING_CMSIS = 0, FX_ROUNDING_TFLM = 1). Training never uses "tflm".
ROUNDING_MODES = ("cmsis", "tflm")
# What `fxtrain export --to` writes: C headers for fx_runtime.h, or a .tflite for TFLM.
EXPORT_FORMATS = ("c", "tflite")

# exp2 table for the integer softmax: EXP2_NEG_Q15[f] = round(2**(-f/256) * 2**15).
EXP2_FRAC_BITS = 8
EXP2_Q = 15
EXP2_NEG_Q15 = tuple(int(round(2.0 ** (-f / 2**EXP2_FRAC_BITS) * 2**EXP2_Q)) for f in range(2**EXP2_FRAC_BITS))
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


def qmax(bits):
    """Largest weight code for ``bits``: 2**(bits-1) - 1, and 1 for binary weights."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"bits must be one of {WEIGHT_BITS}, got {bits}")
    return 1 if bits == 1 else 2 ** (bits - 1) - 1


def storage_bits(bits):
    """Bits of the slot that stores one weight on the device: the smallest of 1, 2, 4, 8, 16 >= bits."""
    for slot in (1, 2, 4, 8, 16):
        if slot >= bits:
            return slot
    raise ValueError(f"bits must be one of {WEIGHT_BITS}, got {bits}")


def fnv_words(values, h=FNV_OFFSET):
    """FNV-1a over 32-bit words: each value taken mod 2**32 (two's complement), as fx_fnv in C."""
    for v in values:
        h = ((h ^ (int(v) & MASK32)) * FNV_PRIME) & MASK32
    return h
