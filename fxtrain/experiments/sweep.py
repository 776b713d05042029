"""Run a list of cells, each once: keys, records on disk, resume, and the serial scheduler.

Each cell is a dict (``kind`` "train" or "convex" plus its settings). Its key is
the first 16 hex digits of the sha256 of the cell and the fxtrain version, so a
changed setting or a new version never reuses an old result. A finished cell is
written as ``DIR/cells/KEY.json`` (status, error, seconds, the whole report with
its history) after ``DIR/cells/KEY.npz`` (the final model), both atomically; a
rerun skips every cell whose record says ``ok`` and runs the rest (failed ones
again, since a failure may have been the machine's).
"""
import hashlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .._files import ensure_dir, read_input, write_bytes_atomic, write_json_atomic
from ..errors import ConfigError, FxtrainError, InputError
from ..limits import RECORD_BYTES

CELLS_DIR = "cells"
SCHEDULERS = ("auto", "serial", "local")


def cell_key(cell):
    """16 hex digits naming ``cell`` (every setting) under this fxtrain version."""
    text = json.dumps({"cell": cell, "fxtrain": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _runner(kind):
    if kind == "convex":
        from .convex import run_convex_cell
        return run_convex_cell
    from .cells import run_train_cell
    return run_train_cell


def run_cell(cell):
    """Run one cell and never raise: ``{"record": dict, "npz": bytes or None}``.

    A failure is part of the result (status "failed" and the error's one line), so
    one bad cell never stops a sweep.
    """
    t0 = time.perf_counter()
    record = {"key": cell_key(cell), "cell": cell, "fxtrain_version": __version__}
    try:
        report, npz = _runner(cell["kind"])(cell)
    except FxtrainError as exc:
        return {"record": {**record, "status": "failed", "error": str(exc)}, "npz": None}
    except Exception as exc:  # a bug: keep its traceback in the record for the report
        return {"record": {**record, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                           "traceback": traceback.format_exc()}, "npz": None}
    record.update(status="ok", error=None, seconds=time.perf_counter() - t0, report=report)
    return {"record": record, "npz": npz}


def record_path(out, cell):
    return Path(out) / CELLS_DIR / f"{cell_key(cell)}.json"


def load_record(out, cell):
    """The stored record of ``cell`` in ``out``, or None if it has none, or one that is not a record
    (torn, damaged, not a regular file): the cell then runs again and its record is rewritten."""
    path = record_path(out, cell)
    try:
        rec = json.loads(read_input(path, "cell record", RECORD_BYTES))
    except (FileNotFoundError, InputError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == cell_key(cell) else None


def is_done(out, cell):
    rec = load_record(out, cell)
    return rec is not None and rec.get("status") == "ok"


def save_result(out, result):
    """Write a cell's model (if any), then its record: a record on disk means the cell is complete."""
    rec = result["record"]
    cells = ensure_dir(Path(out) / CELLS_DIR, "sweep folder")
    if result.get("npz") is not None:
        write_bytes_atomic(cells / f"{rec['key']}.npz", result["npz"])
    write_json_atomic(cells / f"{rec['key']}.json", rec)


@dataclass
class Progress:
    """Counts shown while a sweep runs; ``skipped`` cells were finished by an earlier run; ``estimate``:
    seconds the cells to run should take, once each kind of cell has been timed (None before)."""
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    estimate: float = None


def check_scheduler(scheduler):
    """Return ``scheduler`` if it is a name or an address, else a ConfigError."""
    if scheduler in SCHEDULERS or "://" in scheduler or scheduler.rpartition(":")[2].isdigit():
        return scheduler
    raise ConfigError(f"scheduler '{scheduler}' is neither auto, serial, local nor an address like "
                      "tcp://host:8786")


def _serial(todo, progress, on_progress):
    for cell in todo:
        progress.running = 1
        on_progress(progress)
        yield run_cell(cell)
    progress.running = 0


def run_sweep(cells, out, scheduler="auto", workers=None, on_progress=None):
    """Run every cell of ``cells`` not already finished in ``out``; return all their records.

    Parameters
    ----------
    cells : list of dict
        Cells as built by :func:`fxtrain.experiments.spec.expand` or an experiment.
    out : path
        The sweep folder; records go in ``out/cells``.
    scheduler : str
        ``serial`` (in this process), ``local`` (a Dask LocalCluster of ``workers``
        single-threaded processes), an address of a running Dask scheduler, or
        ``auto`` (``local`` if Dask is installed, else ``serial``).
    on_progress : callable
        Called with a :class:`Progress` before the first cell and after each.
    """
    check_scheduler(scheduler)
    ensure_dir(Path(out) / CELLS_DIR, "sweep folder")
    on_progress = on_progress or (lambda p: None)
    unique = list({cell_key(c): c for c in cells}.values())
    todo = [c for c in unique if not is_done(out, c)]
    progress = Progress(total=len(unique), skipped=len(unique) - len(todo))
    on_progress(progress)
    if todo:
        from .dask_exec import estimate_seconds, executor, warm_kernels
        with executor(scheduler, workers) as run_all:
            # compile once here, so that workers load the kernels instead of each compiling them,
            # and so that no cell's epoch times include a compilation; the timings give the estimate
            progress.estimate = estimate_seconds(todo, warm_kernels(todo), scheduler, workers)
            results = _serial(todo, progress, on_progress) if run_all is None else run_all(todo, progress, on_progress)
            for result in results:
                save_result(out, result)
                progress.done += 1
                progress.failed += result["record"]["status"] != "ok"
                on_progress(progress)
    return [load_record(out, c) for c in cells]
