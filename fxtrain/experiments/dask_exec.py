"""Dask distributed for sweeps: a LocalCluster or a running scheduler, kernel warm-up, dispatch.

Workers share the numba cache: a LocalCluster's worker processes get this
process's ``NUMBA_CACHE_DIR`` (fxtrain sets it on import, keyed by a hash of its
sources), and the client compiles every kernel the cells need before the first
cell is sent, so each worker loads kernels from disk instead of compiling its own.
Workers started by hand (``dask worker``) import the same fxtrain and so compute
the same folder.
"""
import contextlib
import importlib.util
import logging
import os
import time
from functools import partial

from ..errors import ConfigError, MissingExtraError
from .sweep import cell_key, run_cell

CONNECT_TIMEOUT = "5s"
PIP_HINT = "pip install 'fxtrain[sweep]' (or pip install 'dask[distributed]')"


def dask_available():
    return importlib.util.find_spec("distributed") is not None


def resolve(scheduler):
    """``auto`` becomes ``local`` when Dask is installed and ``serial`` otherwise."""
    if scheduler == "auto":
        return "local" if dask_available() else "serial"
    return scheduler


def _distributed(scheduler):
    if not dask_available():
        raise MissingExtraError(f"the '{scheduler}' scheduler needs Dask distributed: {PIP_HINT}")
    import distributed
    return distributed


def local_cluster(workers=None):
    """A LocalCluster: ``workers`` single-threaded worker processes sharing this numba cache."""
    distributed = _distributed("local")
    env = {"NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"]}
    return distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                    processes=True, dashboard_address=None, env=env,
                                    silence_logs=logging.ERROR)


def connect(address):
    """A Client of the scheduler at ``address``, or one ConfigError line if it cannot be reached."""
    distributed = _distributed(address)
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"cannot reach a Dask scheduler at {address} within {CONNECT_TIMEOUT} "
                          f"({type(exc).__name__}); start one with 'dask scheduler' and 'dask worker ADDRESS', "
                          "or use --scheduler local or serial") from None


@contextlib.contextmanager
def executor(scheduler, workers=None):
    """Yield None for ``serial``, else a function running cells on Dask and yielding results."""
    scheduler = resolve(scheduler)
    if scheduler == "serial":
        yield None
        return
    cluster = local_cluster(workers) if scheduler == "local" else None
    try:
        client = _distributed(scheduler).Client(cluster) if cluster else connect(scheduler)
        try:
            yield partial(_dispatch, client)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _dispatch(client, todo, progress, on_progress):
    """Submit every cell, then yield results as they finish (a lost worker is a failed cell)."""
    from distributed import as_completed
    futures = {client.submit(run_cell, c, pure=False, key=f"cell-{cell_key(c)}"): c for c in todo}
    threads = max(sum(client.nthreads().values()), 1)
    remaining = len(todo)
    progress.running = min(remaining, threads)
    on_progress(progress)
    try:
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:  # the worker died or the task could not run there
                cell = futures[fut]
                result = {"record": {"key": cell_key(cell), "cell": cell, "status": "failed",
                                     "error": f"on the worker: {type(exc).__name__}: {exc}"}, "npz": None}
            remaining -= 1
            progress.running = min(remaining, threads)
            yield result
    finally:
        client.cancel(list(futures))


def cell_kind(cell):
    """What decides a cell's kernels and roughly its speed: method, arch, data, wide weights, momentum,
    optimizer (a convex cell: its problem)."""
    if cell["kind"] != "train":
        return (cell["kind"], cell.get("problem"))
    return (cell["method"], cell["arch"], cell["data"], cell["bits"] > 8, cell["momentum"] != "0", cell["optimizer"])


def warm_kernels(cells):
    """Compile (or load) in this process each kernel the cells need, and time each kind once.

    A training kind runs two epochs (the second, warm, is the one timed); a convex kind
    runs one whole cell. The results are thrown away; a cell that cannot run is left to
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
            else:
                t0 = time.perf_counter()
                run_convex_cell(cell)
                timed[kind] = time.perf_counter() - t0
    return timed


def estimate_seconds(cells, timed, scheduler, workers=None):
    """Seconds the ``cells`` should take from ``timed`` (:func:`warm_kernels`), spread over the workers
    (one for an address, whose workers this process cannot count before it connects)."""
    total = sum(t * (c["epochs"] if c["kind"] == "train" else 1)
                for c in cells if (t := timed.get(cell_kind(c))) is not None)
    slots = {"serial": 1, "local": workers or os.cpu_count() or 1}.get(resolve(scheduler), 1)
    return total / min(slots, max(len(cells), 1))


def compiles_during(cell):
    """Run ``cell`` here and report whether numba compiled anything meanwhile: ``(compiled, result)``.

    Sent to a worker, it shows whether that worker loaded its kernels from the
    shared cache (False) or compiled them itself (True).
    """
    from ..engine.jit import on_first_compile
    seen = []
    on_first_compile(lambda: seen.append(True))
    result = run_cell(cell)
    return bool(seen), result
