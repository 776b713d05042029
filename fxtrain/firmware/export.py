"""A saved run to C (``export_run``) and back to bit equality (``verify_export``), as plain data.

The export settings of both formats are checked here (``export_settings``); a TFLite
export is :mod:`fxtrain.tflite`'s, and ``fxtrain.api`` picks between the two, so the
C stage never imports the TFLite one.
"""
import json
import math
from pathlib import Path

from ..device.profiles import load_target
from ..engine.numbers import EXPORT_FORMATS, EXPORT_MAX_BITS
from .._files import read_input
from ..errors import ConfigError, InputError, TargetError
from ..limits import RECORD_BYTES
from ..training.artifacts import load_run_dir
from .calibration import deployed_accuracy, from_run_dir
from .codegen import MANIFEST, export_model, flash_bytes, scratch_bytes
from .rounding import check_rounding
from .train_export import check_fits, export_training, load_training_run
from .verify import image_fit, verify_host, verify_qemu


def standardisation(data):
    """(mean float64 [C], std float64 [C], input scale) of a sensor-window data set, else None: what the
    device applies to raw values before it quantises them (every export carries them)."""
    return None if data.mean is None else (data.mean, data.std, data.scale)


def export_settings(to, rounding, pack, train_step=False):
    """``(to, rounding)`` with the defaults filled in: "cmsis" for C; a .tflite always runs "tflm".

    Raises ConfigError on an unknown format or rule, or on ``pack``, "cmsis" or ``train_step`` with "tflite".
    """
    if to not in EXPORT_FORMATS:
        raise ConfigError(f"--to must be one of {', '.join(EXPORT_FORMATS)}, got {to!r}")
    if rounding is not None:
        check_rounding(rounding)
    if to == "tflite":
        if pack:
            raise ConfigError("--pack applies to --to c only: a .tflite holds int8 weights, since TFLM has "
                              "no sub-byte tensors")
        if rounding == "cmsis":
            raise ConfigError("--to tflite runs TFLM's own rounding (tflm); --rounding cmsis applies to --to c only")
        if train_step:
            raise ConfigError("--train-step exports the C training runtime; it goes with --to c")
        return to, "tflm"
    return to, rounding or "cmsis"


def check_target(flash, sram, target_name, hint=""):
    """Refuse, before anything is written, an export that exceeds the profile."""
    t = load_target(target_name)
    if flash > t.flash_bytes:
        raise TargetError(f"the exported weights need {flash:,} bytes of flash but {t.name} has {t.flash_bytes:,}"
                          + hint)
    if sram > t.usable_sram_bytes:
        raise TargetError(f"inference needs {sram:,} bytes of SRAM (scratch, input, output) but {t.name} has "
                          f"{t.usable_sram_bytes:,} usable")
    return t


def export_run(run_dir, out, prefix="fx", target=None, pack=False, n_vectors=32, rounding=None,
               train_step=False):
    """Calibrate the run in ``run_dir`` with ``rounding`` and export it to ``out`` as C.

    Headers for fx_runtime.h, requantised with ``rounding`` ("cmsis", the default, or
    "tflm"). Returns the summary of :func:`codegen.export_model` plus
    ``deployed_test_accuracy``, the run's ``test_accuracy`` in training arithmetic, ``to``
    and ``rounding``. With ``train_step`` also the training runtime that continues the run
    on the device (:mod:`train_export`), listed in ``train_files``; a run of more than
    8 bits then exports the training runtime only.
    """
    rounding = export_settings("c", rounding, pack)[1]
    run = load_training_run(run_dir) if train_step else None
    if run is not None and target:
        check_fits(run, target)
    if run is not None and run.cfg.bits > EXPORT_MAX_BITS:
        return _training_only(run_dir, out, prefix, target, run)
    model, data = from_run_dir(run_dir, rounding)
    _, report, _ = load_run_dir(run_dir)
    if target:
        sram = scratch_bytes(model) + math.prod(model.input_shape) + model.n_classes
        check_target(flash_bytes(model, pack), sram, target, "" if pack else "; try --pack")
    X = data.X_test[:n_vectors].reshape(-1, *model.input_shape)
    summary = export_model(model, out, prefix=prefix, pack=pack, vectors=X if len(X) else None,
                           standardisation=standardisation(data))
    summary.update(deployed_test_accuracy=deployed_accuracy(model, data), test_accuracy=report["test_accuracy"],
                   packed=pack, to="c", rounding=rounding, train_files=[])
    if run is not None:
        summary["train_files"] = export_training(run_dir, out, prefix, run=run)["files"]
    return summary


def _training_only(run_dir, out, prefix, target, run):
    """The training export of a run whose weights are too wide for the q7 inference export."""
    files = export_training(run_dir, out, prefix, target, run)["files"]
    return {"files": files, "hash": "-", "flash_bytes": 0, "flash_bytes_unpacked": 0, "flash_bytes_packed": 0,
            "scratch_bytes": 0, "n_vectors": 0, "packed": False, "deployed_test_accuracy": None,
            "test_accuracy": run.state.history[-1]["test_accuracy"] if run.state.history else None,
            "to": "c", "rounding": "cmsis", "train_files": files}


def export_format(export_dir):
    """"tflite" or "c" from the export's manifest (exports before TFLite support are C)."""
    try:
        return json.loads(read_input(Path(export_dir) / MANIFEST, "export manifest", RECORD_BYTES)).get("format", "c")
    except (OSError, ValueError, AttributeError, InputError):
        return "c"  # verify_host reports a missing or unreadable manifest in its own words


def verify_export(export_dir, target=None, host_only=False):
    """Host check, then (with a QEMU-capable target) the Cortex-M check of a C export.

    Returns {"results": [(where, result dict)], "target": Target or None, "ok": bool}.
    """
    t = load_target(target) if target else None
    if t and not host_only and not t.qemu_machine:
        raise TargetError(f"target {t.name} has no QEMU board; use cortex-m3, cortex-m4 or cortex-m7, "
                          "or pass --host-only")
    results = [("host gcc", verify_host(export_dir))]
    if t and not host_only:
        results.append((f"{t.name} (qemu {t.qemu_machine})", verify_qemu(export_dir, t)))
    ok = all(r["n_mismatch"] == 0 and r.get("complete", True) for _, r in results)
    image = None
    if t and not host_only:
        q = results[-1][1]
        image = image_fit(q["text"] + q["data"], q["data"] + q["bss"], t)
        ok = ok and image["fits"]
    return {"results": results, "target": t, "ok": ok, "image": image}
