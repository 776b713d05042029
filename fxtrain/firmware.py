"""``fxtrain export`` and ``fxtrain verify``: a saved run to C, and C back to equality."""
from pathlib import Path

from tabulate import tabulate

from .deployment import deployed_accuracy, from_run_dir, load_run_dir
from .errors import TargetError
from .export import export_model, flash_bytes, scratch_bytes
from .targets import load_target
from .verify import verify_host, verify_qemu


def _check_target(model, pack, target_name, n_vectors):
    """Refuse, before anything is written, an export that exceeds the profile."""
    t = load_target(target_name)
    flash = flash_bytes(model, pack)
    n_in = 1
    for d in model.input_shape:
        n_in *= d
    sram = scratch_bytes(model) + n_in + model.n_classes
    if flash > t.flash_bytes:
        raise TargetError(f"the exported weights need {flash:,} bytes of flash but {t.name} has {t.flash_bytes:,}"
                          + ("" if pack else "; try --pack") )
    if sram > t.usable_sram_bytes:
        raise TargetError(f"inference needs {sram:,} bytes of SRAM (scratch, input, output) but {t.name} has "
                          f"{t.usable_sram_bytes:,} usable")
    return t


def export_run(run_dir, out, prefix="fx", target=None, pack=False, n_vectors=32):
    """Calibrate the run in ``run_dir``, export it to ``out`` and return a summary text."""
    model, data = from_run_dir(run_dir)
    _, report, _ = load_run_dir(run_dir)
    if target:
        _check_target(model, pack, target, n_vectors)
    X = data.X_test[:n_vectors].reshape(-1, *model.input_shape)
    summary = export_model(model, out, prefix=prefix, pack=pack, vectors=X if len(X) else None)
    dep = deployed_accuracy(model, data)
    saved = summary["flash_bytes_unpacked"] - summary["flash_bytes"]
    rows = [["files", ", ".join(Path(f).name for f in summary["files"])],
            ["content hash", summary["hash"]],
            ["weights + biases in flash", f"{summary['flash_bytes']:,} bytes"
             + (f" (packed; {saved:,} fewer than int8's {summary['flash_bytes_unpacked']:,})" if pack else
                f" (--pack would make it {summary['flash_bytes_packed']:,})")],
            ["scratch buffer", f"{summary['scratch_bytes']:,} bytes"],
            ["test vectors", summary["n_vectors"]],
            ["test accuracy", f"{dep:.4f} deployed (static shifts) vs {report['test_accuracy']:.4f} in training"]]
    return f"exported {run_dir} to {out}\n" + tabulate(rows, tablefmt="simple", disable_numparse=True)


def _result_row(where, r):
    ok = r["n_mismatch"] == 0 and r.get("complete", True)
    return [where, r["n_vectors"], r["n_mismatch"], "bit-exact" if ok else "MISMATCH", f"{r['seconds']:.2f}"], ok


def verify_export(export_dir, target=None, host_only=False):
    """Host check, then (with a QEMU-capable target) the Cortex-M check. Returns (text, ok)."""
    t = load_target(target) if target else None
    if t and not host_only and not t.qemu_machine:
        raise TargetError(f"target {t.name} has no QEMU board; use cortex-m3, cortex-m4 or cortex-m7, "
                          "or pass --host-only")
    host = verify_host(export_dir)
    row, ok = _result_row("host gcc", host)
    rows, notes = [row], []
    if t and not host_only:
        q = verify_qemu(export_dir, t.qemu_machine, list(t.cflags))
        row, q_ok = _result_row(f"{t.name} (qemu {t.qemu_machine})", q)
        rows.append(row)
        ok = ok and q_ok
        flash, ram = q["text"] + q["data"], q["data"] + q["bss"]
        notes.append(f"{t.name} image: text {q['text']:,}, data {q['data']:,}, bss {q['bss']:,} bytes "
                     f"-> flash {flash:,} of {t.flash_bytes:,} ({100 * flash / t.flash_bytes:.1f}%), "
                     f"static RAM {ram:,} of {t.sram_bytes:,} ({100 * ram / t.sram_bytes:.1f}%); "
                     f"QEMU ran {q['qemu_seconds']:.2f} s")
        ok = ok and flash <= t.flash_bytes and ram <= t.usable_sram_bytes
    table = tabulate(rows, headers=["where", "vectors", "mismatches", "result", "seconds"], tablefmt="simple")
    return "\n".join([table, *notes]), ok
