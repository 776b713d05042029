"""What decides a run: :class:`TrainConfig`, and the exact learning-rate and momentum formats.

An integer device applies a learning rate only as ``m * 2**-k`` with a 16-bit
integer ``m``, and momentum only as ``beta = 1 - 2**-j``; both are read exactly
from their decimal text, and refused with usable suggestions otherwise.
"""
import re
from dataclasses import dataclass, fields
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
OPTIMIZERS = ("sgd", "momentum", "adam")
OPTIMIZER_HELP = {
    "sgd": "plain SGD",
    "momentum": "heavy-ball momentum with --momentum BETA (int16 velocity for sr/r, float32 for bc/float)",
    "adam": "Adam on the float weights (bc's shadow, float): two float32 moments per weight",
}
LR_MANTISSA_BITS = 16
# alpha / batch keeps this many significant bits when batch is not a power of two.
STEP_MANTISSA_BITS = 24
MAX_MOMENTUM_J = 15


_POW2_FORM = re.compile(r"^\s*(?:(\d+)\s*\*\s*)?2\s*\^\s*(-?\d+)\s*$")


def _exact_value(text):
    """The exact rational value of a decimal, a fraction, or ``m*2^-k`` / ``2^-k`` text (None if none)."""
    m = _POW2_FORM.match(str(text))
    if m:
        return Fraction(int(m.group(1) or 1)) * Fraction(2) ** int(m.group(2))
    try:
        return Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        return None


def _as_m_k(q):
    """(m, k) with q = m * 2**-k and 0 < m < 2**16 (k may be negative), or None."""
    if q.denominator & (q.denominator - 1):
        return None
    m, k = q.numerator, q.denominator.bit_length() - 1
    while m >= 2**LR_MANTISSA_BITS and m % 2 == 0:
        m, k = m // 2, k - 1
    return (m, k) if m < 2**LR_MANTISSA_BITS else None


def lr_text(m, k):
    """``m * 2**-k`` as text that :func:`parse_lr` reads back exactly: a short exact decimal, else ``m*2^-k``."""
    q = Fraction(m) / Fraction(2) ** k
    if q.denominator == 1:
        return str(q.numerator)
    digits = q.denominator.bit_length() - 1  # m / 2**k has exactly k decimal places
    if digits <= 20:
        whole, frac = divmod(q.numerator * 10**digits // q.denominator, 10**digits)
        return f"{whole}.{frac:0{digits}d}".rstrip("0")
    return f"{m}*2^-{k}"


def parse_lr(text):
    """Exact ``(m, k)`` with ``lr = m * 2**-k`` and ``0 < m < 2**16``, or a ConfigError.

    The text is read exactly (a decimal, a fraction, or ``m*2^-k``), so 0.1 is refused
    (it has no finite binary form) and the message suggests the two nearest values
    that are representable, written so that they are accepted as printed.
    """
    q = _exact_value(text)
    if q is None:
        raise ConfigError(f"learning rate '{text}' is not a number; try 0.0625 (= 2^-4)")
    if q <= 0:
        raise ConfigError(f"learning rate must be positive, got {text}")
    exact = _as_m_k(q)
    if exact:
        return exact
    # the k that puts q * 2**k in [2**15, 2**16): the grid of 16-bit mantissas around q
    k = LR_MANTISSA_BITS - 1 - (q.numerator.bit_length() - q.denominator.bit_length())
    while q * Fraction(2) ** k >= 2**LR_MANTISSA_BITS:
        k -= 1
    while q * Fraction(2) ** k < 2**(LR_MANTISSA_BITS - 1):
        k += 1
    lo = int(q * Fraction(2) ** k)
    near = " or ".join(lr_text(m, k) for m in (lo, lo + 1))
    raise ConfigError(f"learning rate {text} is not m*2^-k with a 16-bit integer m, so an integer "
                      f"device cannot use it exactly; nearest usable: {near}")


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


def canonical_lr(text):
    """One text per learning rate, however it was written ("2^-4", 0.0625, "0.06250" all give "0.0625")."""
    return lr_text(*parse_lr(text))


def canonical_momentum(text):
    """One text per momentum value: "0", or ``1 - 2**-j`` as its exact decimal."""
    j = parse_momentum(text)
    return lr_text(2**j - 1, j) if j else "0"


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
    optimizer: str = "sgd"
    train_layers: int = None  # the last N weight layers train, the rest are frozen; None: all
    init: str = None  # a run folder whose weights this run starts from (training.start), instead of the generator

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
        self._check_optimizer(parse_momentum(self.momentum))
        if self.train_layers is not None and (type(self.train_layers) is not int or self.train_layers < 1):
            raise ConfigError(f"train_layers (--train-layers) must be a whole number of weight layers, 1 (the last "
                              f"one) or more, "
                              f"got {self.train_layers!r}; leave it out to train every layer")
        return self

    def _check_optimizer(self, j):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer '{self.optimizer}' is unknown; choose one of {', '.join(OPTIMIZERS)}")
        if self.optimizer == "momentum" and not j:
            raise ConfigError("optimizer momentum needs its beta: pass --momentum, e.g. 0.875")
        if self.optimizer != "momentum" and j:
            raise ConfigError(f"momentum {self.momentum} is the momentum optimizer's beta: pass --optimizer momentum "
                              f"with it (the optimizer is {self.optimizer})")
        if self.optimizer == "adam" and self.method not in ("bc", "float"):
            raise ConfigError(f"optimizer adam keeps float32 moments, so it exists for bc and float only, "
                              f"not for {self.method}")


# The training defaults, from the one place that states them: the API, the CLI options and the sweep
# spec take theirs from here (tests/test_defaults.py checks the API's signatures against it).
TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
