"""The ``fxtrain`` command: a thin click shell over the library.

Library modules are imported inside each command, so ``fxtrain --help`` starts
without importing numba. Domain errors (:class:`FxtrainError`) become one line on
stderr and exit code 1; only bugs show a traceback.
"""
import sys

import click

from .cli_types import Bits, BitsList, Group, LearningRate, PositiveInt, TargetName

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
        click.option("--momentum", default="0", show_default=True, metavar="BETA",
                     help="Heavy-ball momentum 1-2^-j (0.5, 0.75, 0.875, ...); int16 velocity for sr/r, "
                          "float32 for bc/float. 0 turns it off."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def config_from(kw):
    from .train import TrainConfig
    keys = ("arch", "method", "bits", "epochs", "batch", "lr", "seed", "data", "momentum")
    return TrainConfig(**{k: kw[k] for k in keys})


def with_progress(run, job, **kw):
    """Run ``job(run, on_epoch=..., **kw)`` under an epoch progress bar on stderr."""
    with click.progressbar(length=run.cfg.epochs - run.state.epoch, file=sys.stderr, show_pos=True,
                           label=f"{run.cfg.method} {run.cfg.bits}-bit", item_show_func=lambda r: r) as bar:
        return job(run, on_epoch=lambda rec: bar.update(1, f"test acc {rec['test_accuracy']:.3f}"), **kw)


def history_table(history):
    from tabulate import tabulate
    rows = [[h["epoch"], h["loss"], h["train_accuracy"], h["test_accuracy"], h["changed_fraction"]]
            for h in history]
    return tabulate(rows, headers=["epoch", "loss", "train acc", "test acc", "changed"],
                    floatfmt=("d", ".4f", ".4f", ".4f", ".3f"), tablefmt="simple")


def _finish(run, report, out):
    from .deployment import add_deployed_accuracy
    return add_deployed_accuracy(run, report, out)


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
    from .runner import train_job
    report = _finish(run, with_progress(run, train_job, out=out), out)
    click.echo(history_table(run.state.history))
    click.echo(f"{cfg.method} {cfg.bits}-bit {report['arch']}: test accuracy {report['test_accuracy']:.4f}, "
               f"{report['n_weights']} weights" + (f"; wrote {out}/model.npz and report.json" if out else ""))


@cli.command()
@click.option("--target", type=TargetName(), required=True,
              help="A profile from 'fxtrain targets' (e.g. cortex-m4) or a path to your own .toml.")
@train_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for model.npz, report.json (with a 'target' section) and checkpoints.")
def simulate(target, out, **kw):
    """Check that a training run fits a chip, then train it and report the device costs.

    Before training, the run's buffers are held against the target's usable SRAM and
    its estimated time per epoch against the target's budget; a run that does not
    fit is refused with what overflowed and the largest batch or width that fits.

    \b
    Examples:
      fxtrain simulate --target cortex-m4
      fxtrain simulate --target stm32f103c8 --bits 4 --arch dense:16,dense:10
      fxtrain simulate --target my_board.toml --method bc --out runs/bc
    """
    from .simulate import compute_table, memory_table, plan, run_simulation
    cfg = config_from(kw)
    run, fit = plan(cfg, target)
    t = fit.target
    click.echo(f"{t.name}: {t.description}")
    click.echo(f"fits: {fit.cost.total_bytes:,} of {t.usable_sram_bytes:,} usable SRAM bytes "
               f"({fit.sram_percent:.1f}% of {t.sram_bytes:,}), est. {fit.seconds_per_epoch:.3f} s per epoch "
               f"(budget {t.budget_seconds_per_epoch:g} s)")
    report = _finish(run, with_progress(run, run_simulation, fit=fit, out=out), out)
    click.echo(history_table(run.state.history))
    dep = report.get("deployed_test_accuracy")
    click.echo(f"\ntest accuracy {report['test_accuracy']:.4f} (training arithmetic)"
               + (f", {dep:.4f} deployed (static shifts, as exported)" if dep is not None else ""))
    click.echo(f"\nMemory on {t.name} ({cfg.method}, {cfg.bits}-bit, batch {cfg.batch}):")
    click.echo(memory_table(fit))
    click.echo(f"\nCompute on {t.name} ({t.clock_hz / 1e6:g} MHz, fpu {t.fpu}):")
    click.echo(compute_table(fit))
    click.echo(f"\nfits: {str(fit.sram_fits and fit.time_fits).lower()}" + (f"; wrote {out}/report.json" if out else ""))


@cli.group(invoke_without_command=True)
@click.pass_context
def targets(ctx):
    """List the shipped hardware profiles; 'fxtrain targets show NAME' shows one."""
    if ctx.invoked_subcommand is None:
        from tabulate import tabulate
        from .targets import list_targets
        rows = [[t.name, t.core, f"{t.clock_hz / 1e6:g}", t.sram_bytes // 1024, t.flash_bytes // 1024, t.fpu,
                 t.qemu_machine or "-"] for t in list_targets()]
        click.echo(tabulate(rows, headers=["name", "core", "MHz", "SRAM KiB", "flash KiB", "fpu", "qemu"],
                            tablefmt="simple"))


@targets.command("show")
@click.argument("name", type=TargetName())
def targets_show(name):
    """Show every field of one profile and where its numbers come from."""
    from tabulate import tabulate
    from .targets import load_target
    t = load_target(name)
    rows = [[k, getattr(t, k)] for k in ("name", "description", "core", "isa", "clock_hz", "sram_bytes",
                                         "reserved_sram_bytes", "flash_bytes", "fpu",
                                         "budget_seconds_per_epoch", "qemu_machine")]
    rows += [["cflags", " ".join(t.cflags) or "-"]]
    rows += [[f"cycles.{k}", v] for k, v in vars(t.cycles).items()]
    rows += [[f"source.{k}", v] for k, v in t.source]
    click.echo(tabulate(rows, tablefmt="simple", colalign=("left", "left"), maxcolwidths=[None, 88],
                        disable_numparse=True))


@cli.command()
@click.option("--target", type=TargetName(), required=True, help="Profile name or .toml path.")
@click.option("--arch", default=None, metavar="ARCH", help="Layers (default dense:32,dense:10).")
@click.option("--bits", "bits_list", type=BitsList(), default="1,2,4,8", show_default=True)
@click.option("--batch", type=PositiveInt(), default=16, show_default=True)
@click.option("--data", default="digits", show_default=True, metavar="DATA")
@click.option("--train", "do_train", is_flag=True, help="Also train every row once and report test accuracy.")
@click.option("--epochs", type=PositiveInt(), default=30, show_default=True, help="Epochs per row with --train.")
@click.option("--lr", type=LearningRate(), default="0.0625", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG of memory against bits.")
def compare(target, arch, bits_list, batch, data, do_train, epochs, lr, seed, fmt, plot):
    """Set SR against BinaryConnect (and R and float) on one target.

    For each bit width and method: weight, shadow and other bytes, the share of
    SRAM, float ops per step and estimated seconds per epoch; with --train, the
    test accuracy of one run each. Then the largest hidden width that fits for
    SR and for BC, and their ratio: what BC's float shadow costs you.

    \b
    Examples:
      fxtrain compare --target cortex-m0plus
      fxtrain compare --target stm32f103c8 --bits 1,4,8 --train --plot mem.png
    """
    from .compare_view import render_compare
    click.echo(render_compare(target, arch, bits_list, batch, data, do_train, epochs, lr, seed, fmt, plot,
                              progress=lambda n, label: click.progressbar(length=n, label=label, file=sys.stderr)))


@cli.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the C sources.")
@click.option("--prefix", default="fx", show_default=True, help="C identifier prefix for generated names.")
@click.option("--target", type=TargetName(), default=None, help="Refuse an export that exceeds this profile.")
@click.option("--pack", is_flag=True, help="Pack 1-, 2- and 4-bit weights 8, 4 or 2 per byte.")
@click.option("--vectors", type=click.IntRange(min=0), default=32, show_default=True,
              help="Test vectors (from the test set) with the simulator's outputs, for 'fxtrain verify'.")
def export_cmd(run_dir, out, prefix, target, pack, vectors):
    """Export a trained run as C headers plus the header-only C99 runtime.

    Writes PREFIX_model.h (int8 weights, q7 biases, static shifts; no float
    anywhere), fx_runtime.h, PREFIX_vectors.h and an example main.c. The
    arithmetic is CMSIS-NN's legacy q7 fully-connected/convolution, so the arrays
    can also go straight to arm_fully_connected_q7.

    \b
    Example:
      fxtrain train --out runs/sr8 && fxtrain export runs/sr8 --out fw --target cortex-m4
    """
    from .firmware import export_run
    click.echo(export_run(run_dir, out, prefix, target, pack, vectors))


@cli.command()
@click.argument("export_dir", type=click.Path())
@click.option("--target", type=TargetName(), default=None,
              help="Also cross-compile for this profile and run it under QEMU (cortex-m3, cortex-m4, cortex-m7).")
@click.option("--host-only", is_flag=True, help="Only compile and run on the host with gcc.")
def verify(export_dir, target, host_only):
    """Compile the exported C and require bit-for-bit equality with the simulator.

    The host check builds with gcc -std=c99 -Wall -Wextra -Werror -pedantic; the
    target check cross-compiles with arm-none-eabi-gcc and the profile's cflags,
    runs under qemu-system-arm with semihosting, and reports text/data/bss
    against the profile's flash and SRAM.
    """
    from .firmware import verify_export
    text, ok = verify_export(export_dir, target, host_only)
    click.echo(text)
    if not ok:
        raise click.exceptions.Exit(1)


def main():
    cli(prog_name="fxtrain")


if __name__ == "__main__":
    main()
