"""A saved run to C or TFLite (``export_run``) and back to bit equality (``verify_export``), as plain data."""
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


def export_settings(to, rounding, pack):
    """``(to, rounding)`` with the defaults filled in: "cmsis" for C; a .tflite always runs "tflm".

    Raises ConfigError on an unknown format or rule, ``pack`` with "tflite", or "cmsis" with "tflite".
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
        return to, "tflm"
    return to, rounding or "cmsis"


def _check_target(flash, sram, target_name, hint=""):
    """Refuse, before anything is written, an export that exceeds the profile."""
    t = load_target(target_name)
    if flash > t.flash_bytes:
        raise TargetError(f"the exported weights need {flash:,} bytes of flash but {t.name} has {t.flash_bytes:,}"
                          + hint)
    if sram > t.usable_sram_bytes:
        raise TargetError(f"inference needs {sram:,} bytes of SRAM (scratch, input, output) but {t.name} has "
                          f"{t.usable_sram_bytes:,} usable")
    return t


def _export_tflite(model, data, out, prefix, target, n_vectors):
    from .tflite_export import tflite_files, write_files
    X = data.X_test.reshape(-1, *model.input_shape)
    files, info = tflite_files(model, prefix, X[:n_vectors], (X, data.y_test))
    if target:
        # the whole flatbuffer sits in flash; the arena holds activations and TFLM's own state
        _check_target(info["tflite_bytes"], info["arena_bytes"], target)
    paths = write_files(out, files, info, prefix)
    return {"files": paths, "hash": info["hash"], "flash_bytes": info["tflite_bytes"],
            "flash_bytes_unpacked": info["tflite_bytes"], "flash_bytes_packed": info["tflite_bytes"],
            "scratch_bytes": info["arena_bytes"], "n_vectors": info["n_vectors"], "arena_bytes": info["arena_bytes"],
            "tflite_bytes": info["tflite_bytes"]}


def export_run(run_dir, out, prefix="fx", target=None, pack=False, n_vectors=32, to="c", rounding=None,
               train_step=False):
    """Calibrate the run in ``run_dir`` with ``rounding`` and export it to ``out`` as ``to``.

    ``to`` is "c" (headers for fx_runtime.h; ``rounding`` "cmsis" by default, or "tflm")
    or "tflite" (model.tflite, model_data.cc/.h; always "tflm"). Returns the summary of
    :func:`codegen.export_model` (or its TFLite counterpart) plus ``deployed_test_accuracy``,
    the run's ``test_accuracy`` in training arithmetic, ``to`` and ``rounding``. With
    ``train_step`` (C only) also the training runtime that continues the run on the device
    (:mod:`train_export`), listed in ``train_files``; a run of more than 8 bits then exports
    the training runtime only.
    """
    to, rounding = export_settings(to, rounding, pack)
    if train_step and to != "c":
        raise ConfigError("--train-step exports the C training runtime; it goes with --to c")
    run = load_training_run(run_dir) if train_step else None
    if run is not None and target:
        check_fits(run, target)
    if run is not None and run.cfg.bits > EXPORT_MAX_BITS:
        return _training_only(run_dir, out, prefix, target, run)
    if to == "tflite":  # before any work: the writer needs flatbuffers, the arena measurement tflite-micro
        from .tflite import require_flatbuffers
        from .tflm import require_tflm
        require_flatbuffers()
        require_tflm()
    model, data = from_run_dir(run_dir, rounding)
    _, report, _ = load_run_dir(run_dir)
    if to == "tflite":
        summary = _export_tflite(model, data, out, prefix, target, n_vectors)
    else:
        if target:
            sram = scratch_bytes(model) + math.prod(model.input_shape) + model.n_classes
            _check_target(flash_bytes(model, pack), sram, target, "" if pack else "; try --pack")
        X = data.X_test[:n_vectors].reshape(-1, *model.input_shape)
        summary = export_model(model, out, prefix=prefix, pack=pack, vectors=X if len(X) else None)
    summary.update(deployed_test_accuracy=deployed_accuracy(model, data), test_accuracy=report["test_accuracy"],
                   packed=pack, to=to, rounding=rounding, train_files=[])
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


def _export_format(export_dir):
    """"tflite" or "c" from the export's manifest (exports before TFLite support are C)."""
    try:
        return json.loads(read_input(Path(export_dir) / MANIFEST, "export manifest", RECORD_BYTES)).get("format", "c")
    except (OSError, ValueError, AttributeError, InputError):
        return "c"  # verify_host reports a missing or unreadable manifest in its own words


def verify_export(export_dir, target=None, host_only=False):
    """Host check, then (with a QEMU-capable target) the Cortex-M check; a TFLite export runs in tflite-micro.

    Returns {"results": [(where, result dict)], "target": Target or None, "ok": bool}.
    """
    if _export_format(export_dir) == "tflite":
        if target:
            raise ConfigError(f"{export_dir} is a TFLite export, which tflite-micro runs on the host; "
                              "--target applies to C exports")
        from .tflm import verify_tflite
        return verify_tflite(export_dir)
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
