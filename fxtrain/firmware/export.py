"""A saved run to C (``export_run``) and C back to bit equality (``verify_export``), as plain data."""
from ..device.profiles import load_target
from ..engine.numbers import EXPORT_MAX_BITS
from ..errors import TargetError
from ..training.artifacts import load_run_dir
from .calibration import deployed_accuracy, from_run_dir
from .codegen import export_model, flash_bytes, scratch_bytes
from .train_export import check_fits, export_training, load_training_run
from .verify import verify_host, verify_qemu


def _check_target(model, pack, target_name):
    """Refuse, before anything is written, an export that exceeds the profile."""
    t = load_target(target_name)
    flash = flash_bytes(model, pack)
    n_in = 1
    for d in model.input_shape:
        n_in *= d
    sram = scratch_bytes(model) + n_in + model.n_classes
    if flash > t.flash_bytes:
        raise TargetError(f"the exported weights need {flash:,} bytes of flash but {t.name} has {t.flash_bytes:,}"
                          + ("" if pack else "; try --pack"))
    if sram > t.usable_sram_bytes:
        raise TargetError(f"inference needs {sram:,} bytes of SRAM (scratch, input, output) but {t.name} has "
                          f"{t.usable_sram_bytes:,} usable")
    return t


def export_run(run_dir, out, prefix="fx", target=None, pack=False, n_vectors=32, train_step=False):
    """Calibrate the run in ``run_dir`` and export it to ``out``; with ``train_step``, also the
    training runtime that continues the run on the device (:mod:`train_export`).

    Returns the summary of :func:`codegen.export_model` plus ``deployed_test_accuracy``
    and the run's ``test_accuracy`` in training arithmetic (with ``train_step``, also
    ``train_files``; a run of more than 8 bits then exports the training runtime only).
    """
    run = load_training_run(run_dir) if train_step else None
    if run is not None and target:
        check_fits(run, target)
    if run is not None and run.cfg.bits > EXPORT_MAX_BITS:
        return _training_only(run_dir, out, prefix, target, run)
    model, data = from_run_dir(run_dir)
    _, report, _ = load_run_dir(run_dir)
    if target:
        _check_target(model, pack, target)
    X = data.X_test[:n_vectors].reshape(-1, *model.input_shape)
    summary = export_model(model, out, prefix=prefix, pack=pack, vectors=X if len(X) else None)
    summary.update(deployed_test_accuracy=deployed_accuracy(model, data), test_accuracy=report["test_accuracy"],
                   packed=pack, train_files=[])
    if run is not None:
        summary["train_files"] = export_training(run_dir, out, prefix, run=run)["files"]
    return summary


def _training_only(run_dir, out, prefix, target, run):
    """The training export of a run whose weights are too wide for the q7 inference export."""
    files = export_training(run_dir, out, prefix, target, run)["files"]
    return {"files": files, "hash": "-", "flash_bytes": 0, "flash_bytes_unpacked": 0, "flash_bytes_packed": 0,
            "scratch_bytes": 0, "n_vectors": 0, "packed": False, "deployed_test_accuracy": None,
            "test_accuracy": run.state.history[-1]["test_accuracy"] if run.state.history else None,
            "train_files": files}


def verify_export(export_dir, target=None, host_only=False):
    """Host check, then (with a QEMU-capable target) the Cortex-M check.

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
    if t and not host_only:
        q = results[-1][1]
        ok = ok and q["text"] + q["data"] <= t.flash_bytes and q["data"] + q["bss"] <= t.usable_sram_bytes
    return {"results": results, "target": t, "ok": ok}
