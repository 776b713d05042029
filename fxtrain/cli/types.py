"""Parameter types and the error-handling group of the ``fxtrain`` command.

No numba here: ``fxtrain --help`` must start fast. Each type checks its value with
the library's own rule, so the CLI and the Python API refuse the same inputs.
"""
import errno
import sys

import click

from ..engine.numbers import WEIGHT_BITS
from ..errors import FxtrainError


class Bits(click.ParamType):
    """A weight bit width from the supported set."""
    name = "BITS"

    def convert(self, value, param, ctx):
        try:
            b = int(value)
        except (TypeError, ValueError):
            b = None
        if b not in WEIGHT_BITS:
            self.fail(f"{value!r} is not a supported bit width; choose one of "
                      f"{', '.join(map(str, WEIGHT_BITS))}", param, ctx)
        return b


class _BoundedInt(click.ParamType):
    """A whole number in [lo, hi]; ``rule`` says which in the error message."""
    lo, hi, rule = 1, None, "must be a positive integer"

    def convert(self, value, param, ctx):
        try:
            v = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if v < self.lo or (self.hi is not None and v > self.hi):
            self.fail(f"{self.rule}, got {v}", param, ctx)
        return v


class PositiveInt(_BoundedInt):
    name = "N"


class Count(_BoundedInt):
    """A whole number from 1 to ``hi`` (one of the bounds in :mod:`fxtrain.limits`)."""
    name = "N"

    def __init__(self, hi):
        self.hi, self.rule = hi, f"must be from 1 to {hi:,}"


class Seed(_BoundedInt):
    """A seed in [0, 2**32): the generator takes 32 bits, and numpy's split needs a non-negative one."""
    name = "SEED"
    lo, hi, rule = 0, 2**32 - 1, "seed must be in 0 .. 4294967295"


class _Checked(click.ParamType):
    """A text value checked by a library function that raises FxtrainError; kept as text."""
    check = None

    def convert(self, value, param, ctx):
        try:
            type(self).check(value)
        except FxtrainError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def _lr(value):
    from ..training.config import parse_lr
    parse_lr(value)


def _momentum(value):
    from ..training.config import parse_momentum
    parse_momentum(value)


def _target(value):
    from ..device.profiles import load_target
    load_target(value)


class LearningRate(_Checked):
    """``m * 2**-k`` with a 16-bit m, read exactly from the decimal text."""
    name = "LR"
    check = staticmethod(_lr)


class Momentum(_Checked):
    """``1 - 2**-j`` (0.5, 0.75, 0.875, ...) or 0 for off, read exactly."""
    name = "BETA"
    check = staticmethod(_momentum)


class TargetName(_Checked):
    """A shipped profile name (see ``fxtrain targets``) or a path to a .toml profile."""
    name = "TARGET"
    check = staticmethod(_target)


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class Group(click.Group):
    """Turns bad input, usage or domain errors alike, into one clear line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FxtrainError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:
            # the writers turn these into OutputError; a temporary folder or a third-party
            # writer may still meet a full disk or a read-only place, which is no bug either
            if exc.errno not in _ENVIRONMENT_ERRNOS:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror}", err=True)
            ctx.exit(1)

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            rv = 1
        except click.ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


class BitsList(click.ParamType):
    """Comma-separated bit widths, e.g. 1,2,4,8."""
    name = "B1,B2,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        return tuple(Bits().convert(v.strip(), param, ctx) for v in str(value).split(","))
