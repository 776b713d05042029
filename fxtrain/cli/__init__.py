"""The ``fxtrain`` command: a thin click shell over :mod:`fxtrain.api`.

Library modules are imported inside each command, so ``fxtrain --help`` starts
without importing numba. Domain errors (:class:`FxtrainError`) become one line on
stderr and exit code 1; only bugs show a traceback.
"""
import click

from .experiments import experiment, sweep
from ..engine.numbers import EXPORT_FORMATS, ROUNDING_MODES
from .options import train_options
from ..limits import MEASURE_STEPS, VERIFY_EPOCHS, VERIFY_STEPS
from .progress import Bar, EpochBar, Ticker, about, note
from .types import Bits, BitsList, Count, Group, NonNegative, TargetName


def _compile_notice():
    """One stderr line at the first kernel compilation (a cold cache), never on later runs."""
    from ..engine.jit import cache_dir, on_first_compile
    on_first_compile(lambda: note(
        f"compiling fxtrain's kernels once (about 10 s); later runs load them from {cache_dir()}"))


def _with_bar(kw, job):
    bar = EpochBar(kw["epochs"], f"{kw['method']} {kw['bits']}-bit")
    try:
        return job(on_epoch=bar)
    finally:
        bar.close()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fxtrain")
def cli():
    """Simulate integer-only neural-network training on microcontrollers.

    Weights live on a b-bit fixed-point grid and are updated with stochastic
    rounding (sr), compared with BinaryConnect's float shadow weights (bc),
    round-to-nearest (r) and float32. Start with:

        fxtrain simulate --target cortex-m4

    Every command has --help with examples. The same jobs are a Python API:
    fxtrain.train(), simulate(), compare(), export(), verify(), measure(), sweep()
    and experiment().
    """


@cli.command()
@train_options(resume=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for checkpoint.*, model.npz and report.json (each written atomically).")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the checkpoint in this folder, bit-identically; settings must match.")
@click.option("--init", type=click.Path(), default=None, metavar="RUN",
              help="Start from the weights of this run folder (a float run, or another method or bit width; same "
                   "arch and data shape) instead of random ones, and keep its input scale.")
def train(**kw):
    """Train a network and print a per-epoch table.

    The table shows the mean training loss, train and test accuracy, and the
    share of weights that changed in each epoch. With --out, a checkpoint is
    saved after every epoch, so --resume continues bit for bit.

    \b
    Examples:
      fxtrain train --method sr --bits 8 --seed 0
      fxtrain train --method bc --bits 1 --epochs 50 --out runs/bc1
      fxtrain train --epochs 80 --resume runs/bc1 --method bc --bits 1
      fxtrain train --init runs/float --method sr --bits 4 --out runs/sr4
    """
    from .. import api
    from .render import train_text
    _compile_notice()
    click.echo(train_text(_with_bar(kw, lambda on_epoch: api.train(**kw, on_epoch=on_epoch))))


@cli.command("import")
@click.argument("model", type=click.Path())
@click.option("--data", required=True, metavar="DATA",
              help="The data the model reads as the file holds it: digits, moons, spirals, basicmotions, or a CSV or "
                   "NPZ file.")
@click.option("--bits", type=Bits(), required=True, help="Weight bit width: 1, 2, 3, 4, 6, 8, 12 or 16.")
@train_options("method", "batch", "lr", "seed", "train_layers")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the run at epoch 0: checkpoint.npz, model.npz and report.json.")
def import_cmd(model, **kw):
    """Import a pre-trained ONNX model as a run at epoch 0 (needs pip install 'fxtrain[onnx]').

    Conv, Gemm or MatMul(+Add), Relu, MaxPool, Flatten, BatchNormalization (folded), as
    torch.onnx.export writes them; the data's input scale is folded into the first layer.
    Prints the float check against ONNX's reference evaluator and the float and quantized
    test accuracy. Then 'train --resume', 'export', 'verify' and 'measure' take the folder.

    \b
    Examples:
      fxtrain import net.onnx --data digits --bits 8 --out runs/net8
      fxtrain train --resume runs/net8 --arch ARCH --epochs 5 --bits 8
    """
    from .. import api
    from .render import import_text
    _compile_notice()
    click.echo(import_text(api.import_model(model, **kw)))


@cli.command()
@click.option("--target", type=TargetName(), required=True,
              help="A profile from 'fxtrain targets' (e.g. cortex-m4) or a path to your own .toml.")
@train_options()
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for model.npz, report.json (with a 'target' section) and checkpoints.")
@click.option("--measured", is_flag=True,
              help="Then measure the trained run's training step under Unicorn ('fxtrain measure') and report "
                   "its measured seconds per epoch (needs fxtrain[measure] and arm-none-eabi-gcc).")
def simulate(target, measured, **kw):
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
    from .. import api
    from .render import simulate_text
    _compile_notice()
    click.echo(simulate_text(_with_bar(kw, lambda on_epoch: api.simulate(target, **kw, on_epoch=on_epoch,
                                                                         measured=measured))))


@cli.group(invoke_without_command=True)
@click.pass_context
def targets(ctx):
    """List the shipped hardware profiles; 'fxtrain targets show NAME' shows one."""
    if ctx.invoked_subcommand is None:
        from ..device.profiles import list_targets
        from .render import targets_table
        click.echo(targets_table(list_targets()))


@targets.command("show")
@click.argument("name", type=TargetName())
def targets_show(name):
    """Show every field of one profile and where its numbers come from."""
    from ..device.profiles import load_target
    from .render import target_table
    click.echo(target_table(load_target(name)))


@cli.command()
@click.option("--target", type=TargetName(), required=True, help="Profile name or .toml path.")
@click.option("--bits", "bits_list", type=BitsList(), default="1,2,4,8", show_default=True,
              help="Bit widths to compare, comma-separated.")
@train_options("arch", "batch", "data", "epochs", "lr", "seed", "train_layers")
@click.option("--train", "do_train", is_flag=True, help="Also train every row once and report test accuracy.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG of memory against bits.")
def compare(target, bits_list, do_train, fmt, plot, **kw):
    """Set SR against BinaryConnect (and R and float) on one target.

    For each bit width and method: weight, shadow and other bytes, the share of
    SRAM, float ops per step and estimated seconds per epoch; with --train, the
    test accuracy of one run each (--epochs, --lr and --seed apply to those runs).
    Then the largest hidden width that fits for SR and for BC, and their ratio:
    what BC's float shadow costs you.

    \b
    Examples:
      fxtrain compare --target cortex-m0plus
      fxtrain compare --target stm32f103c8 --bits 1,4,8 --train --plot runs/mem.png
    """
    from .. import api
    from .render import compare_text
    bar = Bar("training", len(bits_list) * 4)
    if do_train:
        _compile_notice()
    try:
        res = api.compare(target, bits=bits_list, train=do_train, plot=plot,
                          on_run=bar.update if do_train else None, **kw)
    finally:
        bar.close()
    click.echo(compare_text(res, fmt))


@cli.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the exported files (C sources, or model.tflite and model_data.cc/.h).")
@click.option("--prefix", default="fx", show_default=True, help="C identifier prefix for generated names.")
@click.option("--target", type=TargetName(), default=None, help="Refuse an export that exceeds this profile.")
@click.option("--pack", is_flag=True, help="Pack 1-, 2- and 4-bit weights 8, 4 or 2 per byte.")
@click.option("--vectors", type=NonNegative(), default=32, show_default=True,
              help="Test vectors (from the test set) with the simulator's outputs, for 'fxtrain verify'.")
@click.option("--to", "to", type=click.Choice(EXPORT_FORMATS), default="c", show_default=True,
              help="c: headers for fx_runtime.h; tflite: model.tflite and model_data.cc/.h for TFLM.")
@click.option("--rounding", type=click.Choice(ROUNDING_MODES), default=None,
              help="Requantisation: cmsis (CMSIS-NN's NN_ROUND; the default for --to c) or tflm "
                   "(TensorFlow Lite Micro's; --to tflite always uses it).")
@click.option("--train-step", is_flag=True,
              help="Also export the on-device training runtime (PREFIX_train.h) with the run's current state, "
                   "so the device continues training it bit for bit (--to c).")
def export_cmd(run_dir, out, prefix, target, pack, vectors, to, rounding, train_step):
    """Export a trained run as C headers plus the header-only C99 runtime, or as a .tflite.

    --to c (the default) writes PREFIX_model.h (int8 weights, q7 biases, static
    shifts; no float anywhere), fx_runtime.h, PREFIX_vectors.h and an example
    main.c. The arithmetic is CMSIS-NN's legacy q7 fully-connected/convolution, so
    the arrays can also go straight to arm_fully_connected_q7; --rounding tflm
    gives the C runtime TensorFlow Lite Micro's rounding instead.

    --to tflite writes model.tflite (int8 tensors, power-of-two scales), the same
    bytes as a C array in model_data.cc/.h, and vectors.npz; TFLM runs it with
    outputs byte-identical to fxtrain's deployed predictions. It needs
    pip install 'fxtrain[tflite]'.

    With --train-step it also writes PREFIX_train.h and fx_train_*.h: the integer
    training step (sr or r on weights packed at b bits, or bc with its float32
    shadow), static buffers sized for the run's batch, and the run's current state,
    plus train_main.c and the training set for 'fxtrain verify --train-step'.

    \b
    Examples:
      fxtrain train --out runs/sr8 && fxtrain export runs/sr8 --out runs/fw --target cortex-m4
      fxtrain export runs/sr8 --out runs/fw --train-step --target cortex-m4
      fxtrain export runs/sr8 --to tflite --out runs/tfl && fxtrain verify runs/tfl
    """
    from .. import api
    from .render import export_text
    click.echo(export_text(api.export(run_dir, out, prefix, target, pack, vectors, to, rounding, train_step),
                           run_dir))


@cli.command()
@click.argument("export_dir", type=click.Path())
@click.option("--target", type=TargetName(), default=None,
              help="Also cross-compile for this profile and run it under QEMU (cortex-m3, cortex-m4, cortex-m7).")
@click.option("--host-only", is_flag=True, help="Only compile and run on the host with gcc.")
@click.option("--train-step", is_flag=True,
              help="Verify the training runtime of an export made with --train-step, step by step.")
@click.option("--steps", type=Count(VERIFY_STEPS), default=None,
              help=f"Training steps to run with --train-step, 1 to {VERIFY_STEPS:,} [default: 20].")
@click.option("--epochs", type=Count(VERIFY_EPOCHS), default=None,
              help=f"Or whole epochs of the exported training set, as fx_train_epoch runs them: 1 to "
                   f"{VERIFY_EPOCHS:,}, and at most {VERIFY_STEPS:,} steps in all.")
@click.option("--dump", type=click.Path(dir_okay=False), default=None,
              help="With --train-step: write the device's final state (weights, biases, ...) to this .npz; "
                   "missing folders on its path are created.")
def verify(export_dir, target, host_only, train_step, steps, epochs, dump):
    """Compile the exported C and require bit-for-bit equality with the simulator.

    The host check builds with gcc -std=c99 -Wall -Wextra -Werror -pedantic; the
    target check cross-compiles with arm-none-eabi-gcc and the profile's cflags,
    runs under qemu-system-arm with semihosting, and reports text/data/bss
    against the profile's flash and SRAM. A TFLite export (--to tflite) runs in
    tflite-micro's interpreter instead, on its vectors and on the whole test set.

    With --train-step the device continues the run for --steps steps (or --epochs
    epochs) and, after every step, a checksum of every layer's weights and biases
    and of the generator state must equal the simulator's; the first step and
    tensor that differ are named. The ELF's training buffers are held to the
    accounting, buffer by buffer. A target without a QEMU board (cortex-m0plus,
    stm32f103c8, ...) has its ELF measured and the steps checked on the host only.

    \b
    Examples:
      fxtrain verify runs/fw --target cortex-m4
      fxtrain verify runs/fw --train-step --steps 20 --target cortex-m4
      fxtrain verify runs/tfl
    """
    from .. import api
    from .render import verify_text, verify_train_text
    if not train_step and (steps or epochs or dump):
        raise click.UsageError("--steps, --epochs and --dump go with --train-step")
    bar = Bar("simulator steps")

    def estimate(k, seconds):
        note(f"verify --train-step: {k:,} steps, {about(seconds)} (from the simulator's first steps here)")
        bar.length = k
    try:
        res = api.verify(export_dir, target, host_only, train_step, steps, epochs, dump,
                         on_estimate=estimate if train_step else None, on_step=bar.update if train_step else None)
    finally:
        bar.close()
    click.echo(verify_train_text(res, dump) if train_step else verify_text(res))
    if not res.ok:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--target", type=TargetName(), required=True,
              help="A Cortex-M profile: cortex-m0plus, cortex-m3, cortex-m4, cortex-m7 (or a chip with one).")
@click.option("--steps", type=Count(MEASURE_STEPS), default=4, show_default=True,
              help=f"Training steps to run and count, 1 to {MEASURE_STEPS}.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def measure(run_dir, target, steps, fmt):
    """Count the instructions the exported training step executes on a core, phase by phase.

    Exports the run's training runtime, links it with the profile's cflags at -O2,
    runs --steps steps under the Unicorn emulator and counts every executed
    instruction by class (ALU, multiply, load/store, branch, saturate, FPU, libgcc's
    soft-float and integer helpers, counted where they are called). The profile's
    instruction cycles turn them into measured-instruction cycles, printed per phase
    beside the cost model's estimate, with seconds per epoch at the profile's clock.
    The state after the steps must equal the simulator's. Needs
    pip install 'fxtrain[measure]' and arm-none-eabi-gcc.

    \b
    Examples:
      fxtrain measure runs/sr8 --target cortex-m0plus
      fxtrain measure runs/bc8 --target cortex-m4 --steps 8 --format json
    """
    from .. import api
    from .render import measure_text
    ticker = [None]

    def estimate(seconds):
        note(f"measure: {steps} steps under Unicorn, {about(seconds)} (from the cost model's cycles)")
        ticker[0] = Ticker("measuring", seconds).__enter__()
    try:
        res = api.measure(run_dir, target, steps, on_estimate=estimate)
    finally:
        if ticker[0]:
            ticker[0].__exit__()
    click.echo(measure_text(res, fmt))
    if not res.ok:
        raise click.exceptions.Exit(1)


cli.add_command(sweep)
cli.add_command(experiment)


def main():
    cli(prog_name="fxtrain")
