"""Parameter types and the error-handling group of the ``fxtrain`` command.

No numba here: ``fxtrain --help`` must start fast, so library imports happen
inside ``convert`` only when a value is checked.
"""
import sys

import click

from .errors import FxtrainError

WEIGHT_BITS = (1, 2, 3, 4, 6, 8, 12, 16)  # mirrors fixedpoint.WEIGHT_BITS without importing numba


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


class PositiveInt(click.ParamType):
    name = "N"

    def convert(self, value, param, ctx):
        try:
            v = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if v <= 0:
            self.fail(f"must be a positive integer, got {v}", param, ctx)
        return v


class LearningRate(click.ParamType):
    """``m * 2**-k`` with a 16-bit m, read exactly from the decimal text."""
    name = "LR"

    def convert(self, value, param, ctx):
        from .train import parse_lr
        try:
            parse_lr(value)
        except FxtrainError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class Group(click.Group):
    """Turns bad input, usage or domain errors alike, into one clear line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FxtrainError as exc:
            click.echo(f"Error: {exc}", err=True)
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


class TargetName(click.ParamType):
    """A shipped profile name or a path to a .toml profile (checked when loaded)."""
    name = "TARGET"


class BitsList(click.ParamType):
    """Comma-separated bit widths, e.g. 1,2,4,8."""
    name = "B1,B2,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        return tuple(Bits().convert(v.strip(), param, ctx) for v in str(value).split(","))
