"""The public Python API: the same jobs as the CLI, with the same names and defaults.

    import fxtrain
    res = fxtrain.train(method="sr", bits=4, epochs=10)
    fxtrain.measure("runs/sr4", "cortex-m0plus").phases["update"]["cycles"]
    res.test_accuracy, res.history[-1]
    sim = fxtrain.simulate("cortex-m4", bits=4)
    sim.memory["total_bytes"], sim.compute["est_seconds_per_epoch"]

Each function returns a plain result object and raises the project's own errors
(:class:`fxtrain.errors.FxtrainError` and its subclasses) for bad input. The
``fxtrain`` command is a thin shell over these functions.
"""
from pathlib import Path

from .arguments import check_arguments
# the result objects live in results.py; they are imported here so fxtrain.api.TrainResult and friends stay
from .results import (CompareResult, ExportResult, ImportResult, MeasureResult, SimulateResult, TrainResult,
                      TrainVerifyResult, VerifyResult)
from .training.config import TRAIN_DEFAULTS as DEFAULTS  # the signatures below repeat them for help()


def _config(kw):
    from .training.config import TrainConfig
    return TrainConfig(**{k: kw[k] for k in DEFAULTS if k in kw})  # simulate has no init: the default


def train(arch=None, method="sr", bits=8, epochs=30, batch=16, lr="0.0625", seed=0, data="digits", momentum="0",
          optimizer="sgd", train_layers=None, init=None, out=None, resume=None, on_epoch=None):
    """Train a network; with ``out``, write checkpoints, ``model.npz`` and ``report.json`` there.

    ``train_layers``: only the last N weight layers train, the rest are frozen.
    ``resume`` continues the checkpoint in that folder bit for bit (every setting but
    ``epochs`` must match); ``on_epoch(record)`` is called after each epoch. ``init`` starts
    from the weights of another run folder (a float run, or another method or bit width, of
    the same arch and data shape) instead of the generator's, quantized as :func:`import_model`
    does, and keeps that run's input scale.
    """
    check_arguments("train", **locals())  # first: locals() is the arguments alone
    from .firmware.calibration import add_deployed_accuracy
    from .training.job import output_folder, prepare, train_job
    cfg = _config(locals())
    run = prepare(cfg, resume=resume)
    with output_folder(out or resume, run) as folder:
        report = add_deployed_accuracy(run, train_job(run, out=folder, on_epoch=on_epoch), folder)
    return TrainResult(report, run, folder)


def import_model(model, data, bits, method="sr", batch=16, lr="0.0625", seed=0, train_layers=None, out=None):
    """Import the ONNX model ``model`` (a path) to train on ``data`` at ``bits`` bits: a run at epoch 0,
    written into ``out`` as ``train`` writes one, so ``train(resume=out, ...)``, ``export``, ``verify`` and
    ``measure`` take it. Needs ``pip install 'fxtrain[onnx]'``.

    The model reads the data as the file holds it; the data's input scale is folded into its first
    layer, BatchNormalization into the layer before it, and NCHW becomes fxtrain's HWC. Its float
    forward pass is checked against ONNX's reference evaluator, then its weights are fitted to the
    b-bit grid (docs/design.md, "Imported models").
    """
    check_arguments("import_model", **locals())  # first: locals() is the arguments alone
    from .firmware.calibration import add_deployed_accuracy
    from .importing.job import import_model as run_import
    res = run_import(model, data, bits, method, batch, lr, seed, out, train_layers)
    report = add_deployed_accuracy(res.run, res.report, res.out)
    return ImportResult(res.float_check_max_diff, res.float_test_accuracy, res.test_accuracy, res.clipped_biases,
                        report, res.run, res.out)


def simulate(target, arch=None, method="sr", bits=8, epochs=30, batch=16, lr="0.0625", seed=0, data="digits",
             momentum="0", optimizer="sgd", train_layers=None, out=None, on_epoch=None, measured=False):
    """Check that a run fits ``target`` (a profile name or .toml path), then train it.

    Raises TargetError, naming what overflowed and what would fit, before any training.
    With ``measured``, the trained run is then measured (:func:`measure`, 4 steps) and
    its measured seconds per epoch stand beside the estimate, if arm-none-eabi-gcc is
    installed (else ``measured_note`` says so and the estimate stands).
    """
    check_arguments("simulate", **locals())  # first: locals() is the arguments alone
    import tempfile

    from .device.simulate import plan, run_simulation
    from .firmware.calibration import add_deployed_accuracy
    from .training.job import output_folder
    cfg = _config(locals())
    if measured and method == "float":  # refused before any epoch is trained
        from .errors import ConfigError
        raise ConfigError("measured=True (--measured) counts the device's integer training step, and a float run "
                          "has none: use method sr, r or bc, or leave out --measured")
    note = _measurable(target) if measured else None
    run, fit = plan(cfg, target)
    if measured and not note:  # measure would refuse the net after training it: refuse it first
        from .layers import check_export
        check_export(run.layers, "train-step")
    with tempfile.TemporaryDirectory(prefix="fxtrain-simulate-") as tmp:
        keep = out if (out or not measured or note) else Path(tmp) / "run"
        with output_folder(keep, run) as folder:
            report = add_deployed_accuracy(run, run_simulation(run, fit, out=folder, on_epoch=on_epoch), folder)
        rep = None if (note or not measured) else measure(folder, fit.target).report
    if rep:
        report["target"]["measured"] = {k: rep[k] for k in ("steps", "opt", "per_step", "seconds_per_epoch")}
        if out:
            from ._files import write_json_atomic
            from .training.artifacts import REPORT_FILE
            write_json_atomic(Path(out) / REPORT_FILE, report)
    return SimulateResult(report, run, Path(out) if out else None, fit, rep, note)


def _measurable(target):
    """None if ``target`` can be measured here; a note if no cross compiler is installed. Raises for a
    core Unicorn cannot run, and for missing extras."""
    import shutil

    from .measuring.measure import measurable, require_extras
    measurable(target)
    require_extras()
    if shutil.which("arm-none-eabi-gcc") is None:
        return "arm-none-eabi-gcc is not installed, so the estimate stands (apt-get install gcc-arm-none-eabi)"
    return None


def compare(target, arch=None, bits=(1, 2, 4, 8), batch=16, data="digits", train=False, epochs=30, lr="0.0625",
            seed=0, train_layers=None, plot=None, on_run=None):
    """SR against BC (and R and float) on ``target``: bytes, float ops, time, widest net that fits.

    With ``train``, each row is also trained once and gets its test accuracy
    (``on_run()`` is called per row); ``plot`` writes a PNG of memory against bits.
    """
    bits = check_arguments("compare", **locals())["bits"]  # first: locals() is the arguments alone
    from ._files import check_output, ensure_dir
    from .device.compare import compare as build
    cfg = _config(dict(DEFAULTS, arch=arch, batch=batch, data=data, epochs=epochs, lr=lr, seed=seed,
                       train_layers=train_layers))
    if plot:  # refuse a bad path before any training
        ensure_dir(Path(plot).parent, "plot folder")
        check_output(plot, "--plot file", inputs=[(target, "profile"), (data, "data file")])
    res = build(target, cfg.check(), tuple(bits), do_train=train, on_run=on_run)
    if plot:
        from .plots import plot_memory
        plot_memory(res["rows"], res["target"], plot)
    return CompareResult(res["target"], res["arch"], res["batch"], res["rows"], res["widths"],
                         Path(plot) if plot else None)


def export(run_dir, out, prefix="fx", target=None, pack=False, vectors=32, to="c", rounding=None,
           train_step=False):
    """Export the run saved in ``run_dir`` into ``out``.

    ``to="c"``: C headers plus the C99 runtime, requantised with ``rounding`` "cmsis"
    (CMSIS-NN's NN_ROUND, the default) or "tflm". ``to="tflite"``: model.tflite and
    model_data.cc/.h for TensorFlow Lite Micro, which always rounds "tflm" (the default
    None picks it; "cmsis" is refused), and needs ``pip install 'fxtrain[tflite]'``.
    With ``train_step`` (C only), also the on-device training runtime and the run's
    current state, so a device continues the run bit for bit (``PREFIX_train.h``).
    """
    check_arguments("export", **locals())  # first: locals() is the arguments alone
    from .firmware.export import export_settings
    to, rounding = export_settings(to, rounding, pack, train_step)
    if to == "tflite":  # the one place that picks the format: the C stage knows nothing of TFLite
        from .tflite.export import export_run as export_tflite
        s = export_tflite(run_dir, out, prefix, target, vectors)
    else:
        from .firmware.export import export_run
        s = export_run(run_dir, out, prefix, target, pack, vectors, rounding, train_step)
    res = ExportResult(out=Path(out), arena_bytes=s.get("arena_bytes"), **{k: s[k] for k in (
        "files", "hash", "flash_bytes", "flash_bytes_unpacked", "flash_bytes_packed", "scratch_bytes",
        "n_vectors", "packed", "test_accuracy", "deployed_test_accuracy", "to", "rounding", "train_files")})
    if target and res.n_vectors and res.to == "c":
        res.inference, res.inference_note = _inference_cycles(out, target)
    return res


def _inference_cycles(out, target):
    """(measured cycles per inference, None), or (None, why not): a missing tool is a note, not an error."""
    import shutil

    from .errors import FxtrainError, TargetError
    from .measuring.measure import measure_inference
    if shutil.which("arm-none-eabi-gcc") is None:
        return None, "not measured: arm-none-eabi-gcc is not installed"
    try:
        return measure_inference(out, target), None
    except TargetError:
        return None, "not measured: only a Cortex-M core can be measured"
    except FxtrainError as exc:
        return None, f"not measured: {exc}"


def verify(export_dir, target=None, host_only=False, train_step=False, steps=None, epochs=None, dump=None,
           on_estimate=None, on_step=None):
    """Compile an export with gcc (and, for a QEMU target, arm-none-eabi-gcc under QEMU) and
    require every output byte to equal the simulator's. A TFLite export runs in tflite-micro
    instead, on its vectors and on the test set.

    With ``train_step``, run ``steps`` training steps (default 20; or ``epochs`` whole
    epochs) of an export made with ``train_step`` and require the device's state to equal
    the simulator's after every step; ``dump`` writes the device's final state as .npz (creating
    missing folders). ``on_estimate(steps, seconds)`` hears how long that should take, timed on the
    simulator's first steps, and ``on_step()`` follows each simulated step.
    """
    check_arguments("verify", **locals())  # first: locals() is the arguments alone
    if not train_step:
        from .firmware.export import export_format, verify_export
        if export_format(export_dir) == "tflite":
            from .tflite.tflm import verify_tflite
            res = verify_tflite(export_dir, target)
        else:
            res = verify_export(export_dir, target, host_only)
        return VerifyResult(res["results"], res["target"], res["ok"], res.get("image"))
    from .firmware.train_verify import check_dump, dump_state, steps_for, verify_training
    if dump:
        check_dump(dump, export_dir)
    k = steps_for(export_dir, steps, epochs)
    res = verify_training(export_dir, k, target, host_only, on_estimate, on_step)
    if dump:
        dump_state(res["device_state"], dump)
    return TrainVerifyResult(k, **res)


def measure(run_dir, target, steps=4, on_estimate=None):
    """Count the instructions the exported training step executes on ``target``'s core, phase by phase.

    Exports the run in ``run_dir``, links ``train_main.c`` with the profile's cflags
    at -O2, runs ``steps`` steps (1 to ``fxtrain.limits.MEASURE_STEPS``) under Unicorn
    and checks the final state against the simulator's; ``on_estimate(seconds)`` hears
    how long that should take, first. Needs ``pip install 'fxtrain[measure]'`` and arm-none-eabi-gcc.
    """
    check_arguments("measure", **locals())  # first: locals() is the arguments alone
    from .measuring.measure import measurable, measure as run
    if on_estimate:
        from .firmware.estimates import measure_seconds
        from .firmware.train_export import load_training_run
        on_estimate(measure_seconds(load_training_run(run_dir), measurable(target), steps))
    return MeasureResult(run(run_dir, target, steps))


def sweep(spec, out, scheduler="auto", workers=None, on_progress=None):
    """Run every cell of the TOML spec ``spec`` into ``out`` and write ``out/summary.csv``.

    ``scheduler`` is "auto", "serial", "local" (a Dask LocalCluster of ``workers`` processes) or a
    ``tcp://`` address; ``on_progress(p)`` hears the counts. Returns a
    :class:`fxtrain.experiments.spec_sweep.SweepResult` (cells, records, summary rows, failures).
    A finished cell is never run again; a damaged record is set aside and its cell rerun.
    """
    check_arguments("sweep", **locals())  # first: locals() is the arguments alone
    from .experiments.spec_sweep import run_spec
    return run_spec(spec, out, scheduler, workers, on_progress)


def experiment(name, quick=False, out=None, scheduler="auto", workers=None, on_progress=None, plot=True):
    """Run one of the paper's experiments (``fxtrain experiment --help`` lists them): its sweep, its
    tables, ``NAME.csv``, ``NAME.json`` and, with ``plot`` and matplotlib, ``NAME.png``.

    Returns a :class:`fxtrain.experiments.report.Result`; ``files`` names what was written and
    ``plot_note`` says why no figure was drawn, when none was.
    """
    check_arguments("experiment", **locals())  # first: locals() is the arguments alone
    from .errors import MissingExtraError
    from .experiments.dask_exec import check_scheduler
    from .experiments.report import run_experiment
    check_scheduler(scheduler)
    res = run_experiment(name, quick, out, scheduler, workers, on_progress=on_progress)
    if not plot:
        res.files["png"] = None
        return res
    try:
        from .plots import plot_panels
        plot_panels(res.panels, res.files["png"])
    except MissingExtraError as exc:
        res.files["png"], res.plot_note = None, str(exc)
    return res
