"""What decides a run: :class:`TrainConfig`, and the exact learning-rate and momentum formats.

An integer device applies a learning rate only as ``m * 2**-k`` with a 16-bit
integer ``m``, and momentum only as ``beta = 1 - 2**-j``; both are read exactly
from their decimal text, and refused with usable suggestions otherwise.
"""
from dataclasses import dataclass
from fractions import Fraction

from ..engine.numbers import WEIGHT_BITS
from ..errors import ConfigError

METHODS = ("sr", "r", "bc", "float")
METHOD_HELP = {
    "sr": "integer weights, stochastic rounding onto the b-bit grid (no float state)",
    "r": "integer weights, deterministic round-to-nearest onto the grid",
    "bc": "BinaryConnect: integer passes, float32 shadow weights re-quantised each step",
    "float": "float32 everywhere: the accuracy ceiling",
}
LR_MANTISSA_BITS = 16
# alpha / batch keeps this many significant bits when batch is not a power of two.
STEP_MANTISSA_BITS = 24
MAX_MOMENTUM_J = 15


def parse_lr(text):
    """Exact ``(m, k)`` with ``lr = m * 2**-k`` and ``m`` below 2**16, or a ConfigError.

    The decimal text is read exactly, so 0.1 is refused (it has no finite binary form)
    and the message suggests the nearest values that are representable.
    """
    try:
        q = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"learning rate '{text}' is not a number; try 0.0625 (= 2^-4)") from None
    if q <= 0:
        raise ConfigError(f"learning rate must be positive, got {text}")
    den = q.denominator
    if den & (den - 1) == 0 and q.numerator < 2**LR_MANTISSA_BITS:
        return q.numerator, den.bit_length() - 1
    k = max(0, LR_MANTISSA_BITS - 1 - int(q).bit_length())
    lo = Fraction(int(q * 2**k), 2**k)
    near = [v for v in (lo, lo + Fraction(1, 2**k)) if v > 0]
    hint = " or ".join(f"{float(v):.10g}" for v in near)
    raise ConfigError(f"learning rate {text} is not m*2^-k with a 16-bit integer m, so an integer "
                      f"device cannot use it exactly; nearest usable: {hint} (or a power of two like 0.0625)")


def parse_momentum(text):
    """``j`` with momentum ``beta = 1 - 2**-j`` (0 = off), read exactly; else a ConfigError.

    An integer device applies beta as ``v - (v >> j)``, so only these values are exact.
    """
    try:
        q = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"momentum '{text}' is not a number; try 0.875 (= 1 - 2^-3)") from None
    if q == 0:
        return 0
    rest = 1 - q
    if 0 < rest < 1 and rest.numerator == 1 and rest.denominator & (rest.denominator - 1) == 0 \
            and rest.denominator <= 2**MAX_MOMENTUM_J:
        return rest.denominator.bit_length() - 1
    raise ConfigError(f"momentum {text} is not 1 - 2^-j (j = 1..{MAX_MOMENTUM_J}); use 0 (off), 0.5, 0.75, "
                      "0.875, 0.9375 or 0.96875")


def step_fixed(m, k, batch):
    """``alpha / batch`` as ``(m', k')``: exact for a power-of-two batch, else 24 bits."""
    if batch & (batch - 1) == 0:
        return m, k + batch.bit_length() - 1
    extra = STEP_MANTISSA_BITS - m.bit_length() + batch.bit_length()
    return (m * 2**extra + batch // 2) // batch, k + extra


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's trajectory (``epochs`` only decides where it stops)."""
    arch: str = None
    method: str = "sr"
    bits: int = 8
    epochs: int = 30
    batch: int = 16
    lr: str = "0.0625"
    seed: int = 0
    data: str = "digits"
    momentum: str = "0"

    def check(self):
        """Return self, or raise ConfigError naming the first setting that is wrong."""
        if self.method not in METHODS:
            raise ConfigError(f"method '{self.method}' is unknown; choose one of {', '.join(METHODS)}")
        if self.bits not in WEIGHT_BITS:
            raise ConfigError(f"bits must be one of {', '.join(map(str, WEIGHT_BITS))}, got {self.bits}")
        for name in ("epochs", "batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in 0 .. {2**32 - 1}, got {self.seed}")
        parse_lr(self.lr)
        parse_momentum(self.momentum)
        return self
