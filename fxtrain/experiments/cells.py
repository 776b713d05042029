"""One training cell: a run of :mod:`fxtrain.training` with an optional per-epoch rate schedule.

The Robbins-Monro rate ``alpha_t = alpha_0 / (1 + t / tau)`` changes once per
epoch, and each value is rounded to the nearest ``m * 2**-k`` (16-bit ``m``), the
only rates an integer device applies exactly; the rounded values go in the report.
"""
import time
from fractions import Fraction

from .._files import npz_bytes
from ..training.artifacts import build_report, model_arrays
from ..training.config import LR_MANTISSA_BITS, parse_lr
from ..training.job import prepare
from .spec import train_config


def nearest_lr(value):
    """``(m, k)``: the ``m * 2**-k`` with ``2**15 <= m < 2**16`` nearest to the positive Fraction ``value``."""
    k = LR_MANTISSA_BITS - value.numerator.bit_length() + value.denominator.bit_length()
    while value * 2**k >= 2**LR_MANTISSA_BITS:
        k -= 1
    while value * 2**k < 2**(LR_MANTISSA_BITS - 1):
        k += 1
    m = round(value * 2**k)
    if m == 2**LR_MANTISSA_BITS:  # rounding up crossed into the next binade
        m, k = m // 2, k - 1
    while m % 2 == 0 and k > 0:  # the shortest equal form, so the text stays short
        m, k = m // 2, k - 1
    return m, k


def lr_text(m, k):
    """``m * 2**-k`` as exact decimal text (``parse_lr`` reads it back to the same ``(m, k)``)."""
    if k <= 0:
        return str(m * 2**-k)
    digits = str(m * 5**k).rjust(k + 1, "0")
    return (digits[:-k] + "." + digits[-k:]).rstrip("0").rstrip(".")


def robbins_monro(lr, epoch, tau):
    """The rate of ``epoch`` (0-based): ``lr / (1 + epoch / tau)`` rounded to ``m * 2**-k``, as text."""
    m, k = parse_lr(lr)
    if not tau:
        return lr_text(m, k)
    exact = Fraction(m, 2**k) / (1 + Fraction(epoch, tau))
    return lr_text(*nearest_lr(exact))


def run_train_cell(cell):
    """Train one cell; returns ``(report, npz bytes of the final model)``.

    The report is :func:`build_report`'s (with the per-epoch history), plus each
    epoch's rate and wall seconds.
    """
    run = prepare(train_config(cell))
    while run.state.epoch < run.cfg.epochs:
        lr = robbins_monro(run.cfg.lr, run.state.epoch, cell["lr_decay_tau"])
        if cell["lr_decay_tau"]:
            run.set_lr(lr)
        t0 = time.perf_counter()
        record = run.step_epoch()
        record["seconds"] = time.perf_counter() - t0
        record["lr"] = lr
    return build_report(run), npz_bytes(model_arrays(run))
