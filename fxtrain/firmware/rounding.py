"""Deployment rounding rules: CMSIS-NN's ``NN_ROUND`` and TFLM's two-step requantisation.

A deployed layer turns its int32 accumulator ``x`` into int8 with a static right
shift ``s`` (the scale ``2**-s``). Two rules are offered (``numbers.ROUNDING_MODES``):

- ``cmsis``: ``(x + NN_ROUND(s)) >> s`` with ``NN_ROUND(s) = (1 << s) >> 1``, one
  rounding, half up (CMSIS-NN's legacy q7 kernels);
- ``tflm``: what TensorFlow Lite Micro computes for the scale ``2**-s``, written as
  one rounding: ``(x + NN_ROUND(s) + d) >> s`` with ``d = +1`` for ``x >= 0`` and
  ``-1`` for ``x < 0`` when ``s >= 2``, and ``d = 0`` when ``s <= 1``.

:func:`tflm_requant_reference` is TFLM's own integer path, written from its
definition (``QuantizeMultiplier`` of ``2**-s``, ``SaturatingRoundingDoublingHighMul``,
``RoundingDivideByPOT``); ``docs/design.md`` shows why the one-line rule equals it,
``tests/test_rounding.py`` checks every boundary class, and
``benchmarks/bench_tflm_rounding.py`` sweeps every int32 accumulator at every shift.
Both rules here work on int64 numpy arrays (or Python ints) and return the rounded
value before saturation.
"""
import numpy as np

from ..engine.numbers import INT32_MAX, INT32_MIN, ROUNDING_MODES
from ..errors import ConfigError

# TFLM's QuantizeMultiplier(2**-s): frexp gives 0.5 * 2**(1-s), so the Q31 multiplier is
# round(0.5 * 2**31) = 2**30 and the shift is 1 - s, whatever s is (for s <= 32).
TFLM_POT_MULTIPLIER = 1 << 30
# TFLM shifts left before the multiply when s = 0, in int32; beyond this it would wrap.
TFLM_S0_LIMIT = 1 << 30


def check_rounding(rounding):
    """Return ``rounding`` if it names a rule, else raise ConfigError listing the rules."""
    if rounding not in ROUNDING_MODES:
        raise ConfigError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
    return rounding


def round_shift_cmsis(x, s):
    """``(x + NN_ROUND(s)) >> s``: int64 in, int64 out (floor shift), exponent +s."""
    return (np.asarray(x, np.int64) + ((1 << s) >> 1)) >> s


def round_shift_tflm(x, s):
    """TFLM's requantisation by ``2**-s`` as one rounding: int64 in, int64 out, exponent +s.

    ``(x + NN_ROUND(s) + d) >> s``, ``d = (s >= 2) * (x >= 0 ? 1 : -1)``. For ``s = 0``
    it is ``x``; TFLM agrees only while ``|x| < 2**30`` (see :data:`TFLM_S0_LIMIT`).
    """
    x = np.asarray(x, np.int64)
    d = np.where(x >= 0, 1, -1) if s >= 2 else 0
    return (x + ((1 << s) >> 1) + d) >> s


def round_shift(x, s, rounding):
    """The rule named ``rounding`` (``"cmsis"`` or ``"tflm"``), before saturation."""
    return round_shift_tflm(x, s) if rounding == "tflm" else round_shift_cmsis(x, s)


def _srdhm(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays."""
    ab = a * b  # |a*b| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C++ '/' truncates toward zero; numpy's '//' floors, so divide magnitudes.
    high = np.sign(num) * (np.abs(num) // (1 << 31))
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, high)


def _rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: ``x / 2**exponent``, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def tflm_requant_reference(x, s):
    """TFLM's MultiplyByQuantizedMultiplier(x, 2**30, 1 - s), step by step, from its definition.

    Parameters
    ----------
    x : int64 ndarray of int32 values (accumulators at exponent ``e_in + e_w``).
    s : int in 0..31, the right shift (scale ``2**-s``).

    Returns
    -------
    int64 ndarray, before the zero point, clamp and ReLU. For ``s = 0`` TFLM first
    computes ``x * 2`` in int32: values with ``|x| >= 2**30`` raise ValueError.
    """
    x = np.asarray(x, np.int64)
    shift = 1 - s
    left, right = max(shift, 0), max(-shift, 0)
    if left and np.any(np.abs(x) >= TFLM_S0_LIMIT):
        raise ValueError("TFLM computes x * 2 in int32 for s = 0; |x| must stay below 2**30")
    return _rounding_divide_by_pot(_srdhm(x << left, np.int64(TFLM_POT_MULTIPLIER)), right)
