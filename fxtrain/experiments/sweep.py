"""Run a list of cells, each once: records on disk, resume, and the serial loop.

A cell and its key are described in :mod:`running`. A finished cell is
written as ``DIR/cells/KEY.json`` (status, error, seconds, the whole report with
its history) after ``DIR/cells/KEY.npz`` (the final model), both atomically; a
rerun skips every cell whose record says ``ok`` and runs the rest (failed ones
again, since a failure may have been the machine's). A record is trusted only
if it names its own cell and holds a result; anything else is set aside. Where the cells run is the
caller's choice: here, one after another, or on whatever executor it passes in
(:func:`fxtrain.experiments.dask_exec.executor`).
"""
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .._files import (FolderLock, ensure_dir, read_input, remove_stale_temporaries, write_bytes_atomic,
                      write_json_atomic)
from ..errors import InputError, OutputError
from ..limits import RECORD_BYTES
from .running import cell_key, estimate_seconds, run_cell, warm_kernels

CELLS_DIR = "cells"


def record_path(out, cell):
    return Path(out) / CELLS_DIR / f"{cell_key(cell)}.json"


def record_problem(rec, cell, folder):
    """Why ``rec``, read from ``cell``'s record file in ``folder``, cannot stand for that cell (None if it can)."""
    if not isinstance(rec, dict):
        return "not-a-record"
    key = cell_key(cell)
    if rec.get("key") != key or rec.get("cell") != json.loads(json.dumps(cell)):  # as the record stores it
        return "other-cell"  # copied or renamed from another cell's file
    if rec.get("status") == "failed":
        return None
    report = rec.get("report")
    if rec.get("status") != "ok" or not isinstance(report, dict):
        return "no-result"
    if cell["kind"] == "train":
        acc, history = report.get("test_accuracy"), report.get("history")
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
            return "bad-accuracy"
        if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
            return "bad-history"
        if not (folder / f"{key}.npz").is_file():
            return "no-model"
    return None


def set_aside(path, reason):
    """Rename a damaged record (file or folder) to ``KEY.json.REASON[.N]`` beside it, so it is kept for a
    look but never read again; returns the new name."""
    target = path.with_name(f"{path.name}.{reason}")
    n = 1
    while target.exists() or target.is_symlink():
        target, n = path.with_name(f"{path.name}.{reason}.{n}"), n + 1
    try:
        path.rename(target)
    except OSError as exc:
        raise OutputError(f"cannot set aside the damaged record {path}: {exc.strerror}; move it away by hand") \
            from None
    return target.name


def load_record(out, cell, aside=None):
    """The stored record of ``cell`` in ``out``, or None if it has none.

    With ``aside`` (a list), a record that cannot stand for the cell (unreadable,
    not a record, another cell's, no result) is renamed by :func:`set_aside` and
    ``(new name, reason)`` appended; the cell then runs again.
    """
    path = record_path(out, cell)
    try:
        rec = json.loads(read_input(path, "cell record", RECORD_BYTES))
        problem = record_problem(rec, cell, path.parent)
    except FileNotFoundError:
        return None
    except InputError:
        problem = "not-a-file"
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        problem = "not-json"
    if problem is None:
        return rec
    if aside is not None:
        aside.append((set_aside(path, problem), problem))
    return None


def is_done(out, cell, aside=None):
    rec = load_record(out, cell, aside)
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
    set_aside: list = field(default_factory=list)


def _serial(todo, progress, on_progress):
    for cell in todo:
        progress.running = 1
        on_progress(progress)
        yield run_cell(cell)
    progress.running = 0


def run_sweep(cells, out, executor=None, on_progress=None, slots=1):
    """Run every cell of ``cells`` not already finished in ``out``; return the records of the distinct cells.

    The folder is locked for the whole sweep (a second sweep into it is refused), the
    temporary files a killed sweep left are removed, and a damaged record is set aside
    (``Progress.set_aside``) and its cell run again.

    Parameters
    ----------
    cells : list of dict
        Cells as built by :func:`fxtrain.experiments.spec.expand` or an experiment.
    out : path
        The sweep folder; records go in ``out/cells``.
    executor : context manager or None
        Entered only when a cell is left to run, so a finished sweep starts no cluster.
        It yields None (run the cells here, one after another) or a function running
        them elsewhere, as :func:`fxtrain.experiments.dask_exec.executor` does for a
        scheduler name. None (the default) runs them here.
    on_progress : callable
        Called with a :class:`Progress` before the first cell and after each.
    slots : int
        How many cells the executor runs at once (:func:`fxtrain.experiments.dask_exec.slots`),
        for ``Progress.estimate`` only. 1 (the default) suits the serial loop.
    """
    with FolderLock(ensure_dir(out, "sweep folder")):
        return _run_locked(cells, out, executor, on_progress or (lambda p: None), slots)


def _run_locked(cells, out, executor, on_progress, slots):
    remove_stale_temporaries(ensure_dir(Path(out) / CELLS_DIR, "sweep folder"))
    unique = list({cell_key(c): c for c in cells}.values())
    progress = Progress(total=len(unique))
    todo = [c for c in unique if not is_done(out, c, progress.set_aside)]
    progress.skipped = len(unique) - len(todo)
    on_progress(progress)
    if todo:
        with (executor or contextlib.nullcontext()) as run_all:
            # compile once here, so that workers load the kernels instead of each compiling them,
            # and so that no cell's epoch times include a compilation; the timings give the estimate
            progress.estimate = estimate_seconds(todo, warm_kernels(todo), slots)
            results = _serial(todo, progress, on_progress) if run_all is None else run_all(todo, progress, on_progress)
            for result in results:
                save_result(out, result)
                progress.done += 1
                progress.failed += result["record"]["status"] != "ok"
                on_progress(progress)
    return [load_record(out, c) for c in unique]
