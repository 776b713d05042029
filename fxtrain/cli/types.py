"""Parameter types and the error-handling group of the ``fxtrain`` command.

No numba here: ``fxtrain --help`` must start fast. Each type checks its value with
the library's own rule, so the CLI and the Python API refuse the same inputs.
"""
import errno
import signal
import sys
import threading

import click

from .. import arguments
from ..errors import FxtrainError


class _Argument(click.ParamType):
    """A value checked from its text by one of :mod:`fxtrain.arguments`' checks, the API's own."""
    check = None

    def convert(self, value, param, ctx):
        try:
            return self.check(value, text=True)
        except FxtrainError as exc:  # ArgumentError, or a library check's own error
            self.fail(str(exc), param, ctx)


class Bits(_Argument):
    """A weight bit width from the supported set."""
    name = "BITS"
    check = staticmethod(arguments.bits)


class PositiveInt(_Argument):
    name = "N"
    check = staticmethod(arguments.whole)


class Count(_Argument):
    """A whole number from 1 to ``hi`` (one of the bounds in :mod:`fxtrain.limits`)."""
    name = "N"

    def __init__(self, hi):
        self.check = arguments.count(hi)


class Seed(_Argument):
    """A seed in [0, 2**32): the generator takes 32 bits, and numpy's split needs a non-negative one."""
    name = "SEED"
    check = staticmethod(arguments.seed)


class NonNegative(_Argument):
    name = "N"
    check = staticmethod(arguments.non_negative)


def _as_text(library_check):
    """A check for :class:`_Argument` from a library function that raises FxtrainError: the value is
    kept as text (the library reads it exactly later)."""
    def check(value, text=False):
        library_check(value)
        return str(value)
    return staticmethod(check)


def _lr(value):
    from ..training.config import parse_lr
    parse_lr(value)


def _momentum(value):
    from ..training.config import parse_momentum
    parse_momentum(value)


def _target(value):
    from ..device.profiles import load_target
    load_target(value)


class LearningRate(_Argument):
    """``m * 2**-k`` with a 16-bit m, read exactly from the decimal text."""
    name = "LR"
    check = _as_text(_lr)


class Momentum(_Argument):
    """``1 - 2**-j`` (0.5, 0.75, 0.875, ...) or 0 for off, read exactly."""
    name = "BETA"
    check = _as_text(_momentum)


class TargetName(_Argument):
    """A shipped profile name (see ``fxtrain targets``) or a path to a .toml profile."""
    name = "TARGET"
    check = _as_text(_target)


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


_TERMINATED = []  # SIGTERMs received during this command


def _interrupt(signum, frame):
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


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
        # SIGTERM unwinds like Ctrl-C, so temporary folders (a measure's build) are removed on the way out
        if threading.current_thread() is not threading.main_thread():  # a test's runner: no signals there
            return self._main(args, prog_name, standalone_mode, **extra)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        _TERMINATED.clear()
        try:
            rv = self._main(args, prog_name, standalone_mode=False, **extra)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if _TERMINATED and rv != 1:
            # a library caught the KeyboardInterrupt (broad except clauses exist, in compilers and caches)
            # and the command ran on: it was still told to stop, so it fails as an aborted one does
            click.echo("Aborted.", err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def _main(self, args, prog_name, standalone_mode, **extra):
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


class BitsList(_Argument):
    """Comma-separated bit widths, e.g. 1,2,4,8."""
    name = "B1,B2,..."
    check = staticmethod(arguments.bits_list)
