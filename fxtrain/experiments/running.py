"""One cell: its key, running it without raising, and warming the kernels it needs.

Each cell is a dict (``kind`` "train", "convex" or "adapt" plus its settings, and for a
training cell the content digest of its data). Its key is the first 16 hex digits
of the sha256 of the cell and the fxtrain version, so a changed setting, a
rewritten data file or a new version never reuses an old result. The sweep's serial
loop (:mod:`sweep`) and the Dask workers (:mod:`dask_exec`) both run cells through
:func:`run_cell`; it lives here so that neither of those modules imports the other.
"""
import contextlib
import hashlib
import json
import time
import traceback

from .._version import __version__
from ..errors import FxtrainError


def cell_key(cell):
    """16 hex digits naming ``cell`` (every setting) under this fxtrain version."""
    text = json.dumps({"cell": cell, "fxtrain": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _runner(kind):
    if kind == "convex":
        from .convex import run_convex_cell
        return run_convex_cell
    if kind == "adapt":
        from .adapt import run_adapt_cell
        return run_adapt_cell
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
        _check_inputs(cell)
        report, npz = _runner(cell["kind"])(cell)
    except FxtrainError as exc:
        return {"record": {**record, "status": "failed", "error": str(exc)}, "npz": None}
    except Exception as exc:  # a bug: keep its traceback in the record for the report
        return {"record": {**record, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                           "traceback": traceback.format_exc()}, "npz": None}
    record.update(status="ok", error=None, seconds=time.perf_counter() - t0, report=report)
    return {"record": record, "npz": npz}


def _check_inputs(cell):
    """Refuse to run a cell whose data file changed since its key was made: its result would be
    filed under the old content."""
    if "inputs" in cell:
        from ..data import data_digest
        if data_digest(cell["data"]) != cell["inputs"]["data"]:
            raise FxtrainError(f"data file {cell['data']} changed while the sweep ran; run the sweep again "
                               "to key its cells by the new content")


def cell_kind(cell):
    """What decides a cell's kernels and roughly its speed: method, arch, data, wide weights, momentum,
    optimizer (a convex cell: its problem)."""
    if cell["kind"] != "train":
        return (cell["kind"], cell.get("problem"))
    return (cell["method"], cell["arch"], cell["data"], cell["bits"] > 8, cell["momentum"] != "0", cell["optimizer"])


def warm_kernels(cells):
    """Compile (or load) in this process each kernel the cells need, and time each kind once.

    A training kind runs two epochs (the second, warm, is the one timed); a convex kind
    runs one whole cell; an adapt cell (minutes, with its measurements) is not run twice and gives
    no estimate. The results are thrown away; a cell that cannot run is left to
    fail in the sweep. Returns {kind: seconds per epoch (train) or per cell (convex)}.
    """
    from .cells import run_train_cell
    from .convex import run_convex_cell
    timed = {}
    for cell in cells:
        kind = cell_kind(cell)
        if kind in timed:
            continue
        timed[kind] = None
        with contextlib.suppress(Exception):
            if cell["kind"] == "train":
                timed[kind] = run_train_cell({**cell, "epochs": 2})[0]["history"][-1]["seconds"]
            elif cell["kind"] == "convex":
                t0 = time.perf_counter()
                run_convex_cell(cell)
                timed[kind] = time.perf_counter() - t0
    return timed


def estimate_seconds(cells, timed, slots=1):
    """Seconds the ``cells`` should take from ``timed`` (:func:`warm_kernels`), spread over ``slots``
    cells at a time (:func:`fxtrain.experiments.dask_exec.slots` for a scheduler); None when a cell's kind
    has no timing (it failed to warm, or is an adapt cell)."""
    times = [timed.get(cell_kind(c)) for c in cells]
    if None in times:  # a cell that was not timed: no estimate rather than a wrong one
        return None
    total = sum(t * (c["epochs"] if c["kind"] == "train" else 1) for c, t in zip(cells, times))
    return total / min(max(slots, 1), max(len(cells), 1))
