"""Where a sweep's cells run: the scheduler names, and Dask distributed (a LocalCluster or a running scheduler).

The caller turns ``--scheduler`` into an executor here (:func:`executor`) and hands
it to :func:`fxtrain.experiments.sweep.run_sweep`, so the sweep itself knows nothing of Dask.

Workers share the numba cache: a LocalCluster's worker processes get this
process's ``NUMBA_CACHE_DIR`` (fxtrain sets it on import, keyed by a hash of its
sources), and the client compiles every kernel the cells need before the first
cell is sent (:func:`running.warm_kernels`), so each worker loads kernels from disk instead of compiling its own.
Workers started by hand (``dask worker``) import the same fxtrain and so compute
the same folder.
"""
import contextlib
import importlib.util
import logging
import os
from functools import partial

from ..errors import ConfigError, MissingExtraError
from .running import cell_key, run_cell

SCHEDULERS = ("auto", "serial", "local")
# tls:// needs certificates and ucx:// the ucx-py package, neither of which fxtrain sets up
PROTOCOLS = ("tcp",)
CONNECT_TIMEOUT = "5s"
PIP_HINT = "pip install 'fxtrain[sweep]' (or pip install 'dask[distributed]')"


def dask_available():
    return importlib.util.find_spec("distributed") is not None


def check_scheduler(scheduler):
    """Return ``scheduler`` if it is a name or a tcp address, else a ConfigError."""
    protocol = scheduler.partition("://")[0] if "://" in scheduler else None
    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"scheduler '{scheduler}': fxtrain reaches Dask schedulers over tcp only "
                          f"({protocol}:// needs security or transport setup it does not do); "
                          "pass tcp://HOST:PORT")
    if scheduler in SCHEDULERS or protocol or scheduler.rpartition(":")[2].isdigit():
        return scheduler
    raise ConfigError(f"scheduler '{scheduler}' is neither auto, serial, local nor an address like "
                      "tcp://host:8786")


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


def local_cluster(workers=None, cells=None):
    """A LocalCluster: ``workers`` single-threaded worker processes (default one per core, never more than
    the ``cells`` to run) sharing this numba cache."""
    distributed = _distributed("local")
    env = {"NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"]}
    n = min(workers or os.cpu_count() or 1, cells or 2**31)
    # CRITICAL: a worker closing while the cluster shuts down logs its closed connections at ERROR
    return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                    env=env, silence_logs=logging.CRITICAL)


def connect(address):
    """A Client of the scheduler at ``address``, or one ConfigError line if it cannot be reached."""
    distributed = _distributed(address)
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - Dask raises many kinds for an unreachable or odd address
        raise ConfigError(f"cannot reach a Dask scheduler at {address} within {CONNECT_TIMEOUT} "
                          f"({type(exc).__name__}); start one with 'dask scheduler' and 'dask worker ADDRESS', "
                          "or use --scheduler local or serial") from None


def slots(scheduler, workers=None):
    """How many cells ``scheduler`` runs at once, for the sweep's estimate: 1 serially, the workers of
    a LocalCluster, and 1 for an address (whose workers cannot be counted before connecting)."""
    return {"serial": 1, "local": workers or os.cpu_count() or 1}.get(resolve(check_scheduler(scheduler)), 1)


def executor(scheduler, workers=None):
    """The executor :func:`~fxtrain.experiments.sweep.run_sweep` takes for ``scheduler``.

    The name is checked now (a ConfigError); Dask is looked for, and a cluster started
    or reached, only when the sweep enters it, which it does only if a cell is left to run.
    """
    return _executor(check_scheduler(scheduler), workers)


@contextlib.contextmanager
def _executor(scheduler, workers):
    """Yield None for ``serial``, else a function running cells on Dask and yielding results."""
    scheduler = resolve(scheduler)
    if scheduler == "serial":
        yield None
        return
    with contextlib.ExitStack() as stack:
        yield partial(_start_and_dispatch, stack, scheduler, workers)


def _start_and_dispatch(stack, scheduler, workers, todo, progress, on_progress):
    """Start the cluster (or reach the scheduler) once the cells to run are known, so a LocalCluster
    never has more workers than cells; ``stack`` closes it when the sweep leaves the executor."""
    if scheduler == "local":
        cluster = stack.enter_context(contextlib.closing(local_cluster(workers, len(todo))))
        client = stack.enter_context(contextlib.closing(_distributed(scheduler).Client(cluster)))
    else:
        client = stack.enter_context(contextlib.closing(connect(scheduler)))
    return _dispatch(client, todo, progress, on_progress)


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
