"""The ``fxtrain`` command: a thin click shell over the library.

Library modules are imported inside each command, so ``fxtrain --help`` starts
without importing numba. Domain errors (:class:`FxtrainError`) become one line on
stderr and exit code 1; only bugs show a traceback.
"""
import functools
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


def train_options(fn):
    """Options shared by ``train``, ``simulate`` and ``compare --train``."""
    opts = [
        click.option("--arch", default=None, metavar="ARCH",
                     help="Layers, e.g. 'dense:32,dense:10' (default) or 'conv:8:3,pool:2,dense:10'. "
                          "ReLU follows every hidden layer; the input shape comes from the data."),
        click.option("--method", type=click.Choice(["sr", "r", "bc", "float"]), default="sr", show_default=True,
                     help="sr: integer weights with stochastic rounding; r: round to nearest; "
                          "bc: BinaryConnect with float32 shadow weights; float: float32 reference."),
        click.option("--bits", type=Bits(), default=8, show_default=True,
                     help="Weight bit width: 1, 2, 3, 4, 6, 8, 12 or 16."),
        click.option("--epochs", type=PositiveInt(), default=30, show_default=True),
        click.option("--batch", type=PositiveInt(), default=16, show_default=True,
                     help="Mini-batch size; a power of two keeps alpha/batch an exact shift."),
        click.option("--lr", type=LearningRate(), default="0.0625", show_default=True,
                     help="Learning rate; must be m*2^-k with a 16-bit integer m (0.0625 yes, 0.1 no)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds the generator: same seed, same bits, on every machine."),
        click.option("--data", default="digits", show_default=True, metavar="DATA",
                     help="digits, moons, spirals, or a file: CSV (label in the last column) or NPZ (X, y)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def config_from(kw):
    from .train import TrainConfig
    keys = ("arch", "method", "bits", "epochs", "batch", "lr", "seed", "data")
    return TrainConfig(**{k: kw[k] for k in keys})


def run_with_progress(run, out, label):
    """Train with a progress bar on stderr; returns the report."""
    from .runner import train_job
    todo = run.cfg.epochs - run.state.epoch
    with click.progressbar(length=todo, label=label, file=sys.stderr,
                           show_pos=True, item_show_func=lambda r: r) as bar:
        def on_epoch(rec):
            bar.update(1, f"test acc {rec['test_accuracy']:.3f}")
        return train_job(run, out=out, on_epoch=on_epoch)


def history_table(history):
    from tabulate import tabulate
    rows = [[h["epoch"], h["loss"], h["train_accuracy"], h["test_accuracy"], h["changed_fraction"]]
            for h in history]
    return tabulate(rows, headers=["epoch", "loss", "train acc", "test acc", "changed"],
                    floatfmt=("d", ".4f", ".4f", ".4f", ".3f"), tablefmt="simple")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fxtrain")
def cli():
    """Simulate integer-only neural-network training on microcontrollers.

    Weights live on a b-bit fixed-point grid and are updated with stochastic
    rounding (sr), compared with BinaryConnect's float shadow weights (bc),
    round-to-nearest (r) and float32. Start with:

        fxtrain simulate --target cortex-m4
    """


@cli.command()
@train_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for checkpoint.*, model.npz and report.json (each written atomically).")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the checkpoint in this folder, bit-identically; settings must match.")
def train(out, resume, **kw):
    """Train a network and print a per-epoch table.

    \b
    Examples:
      fxtrain train --method sr --bits 8 --seed 0
      fxtrain train --method bc --bits 1 --epochs 50 --out runs/bc1
      fxtrain train --epochs 40 --resume runs/bc1 --method bc --bits 1
    """
    from .runner import prepare
    cfg = config_from(kw)
    run = prepare(cfg, resume=resume)
    out = out or resume
    report = run_with_progress(run, out, f"{cfg.method} {cfg.bits}-bit")
    click.echo(history_table(run.state.history))
    click.echo(f"{cfg.method} {cfg.bits}-bit {report['arch']}: test accuracy {report['test_accuracy']:.4f}, "
               f"{report['n_weights']} weights" + (f"; wrote {out}/model.npz and report.json" if out else ""))


def main():
    cli(prog_name="fxtrain")


if __name__ == "__main__":
    main()
