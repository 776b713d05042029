"""Run a list of cells, each once: records on disk, resume, and the serial loop.

A cell and its key are described in :mod:`running`. A finished cell is
written as ``DIR/cells/KEY.json`` (status, error, seconds, the whole report with
its history) after ``DIR/cells/KEY.npz`` (the final model), both atomically; a
rerun skips every cell whose record says ``ok`` and runs the rest (failed ones
again, since a failure may have been the machine's). Where the cells run is the
caller's choice: here, one after another, or on whatever executor it passes in
(:func:`fxtrain.experiments.dask_exec.executor`).
"""
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from .._files import ensure_dir, read_input, write_bytes_atomic, write_json_atomic
from ..errors import InputError
from ..limits import RECORD_BYTES
from .running import cell_key, estimate_seconds, run_cell, warm_kernels

CELLS_DIR = "cells"


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


def _serial(todo, progress, on_progress):
    for cell in todo:
        progress.running = 1
        on_progress(progress)
        yield run_cell(cell)
    progress.running = 0


def run_sweep(cells, out, executor=None, on_progress=None, slots=1):
    """Run every cell of ``cells`` not already finished in ``out``; return all their records.

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
    ensure_dir(Path(out) / CELLS_DIR, "sweep folder")
    on_progress = on_progress or (lambda p: None)
    unique = list({cell_key(c): c for c in cells}.values())
    todo = [c for c in unique if not is_done(out, c)]
    progress = Progress(total=len(unique), skipped=len(unique) - len(todo))
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
    return [load_record(out, c) for c in cells]
