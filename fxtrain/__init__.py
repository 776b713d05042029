"""fxtrain: integer-only on-device training, simulated bit for bit.

The public API (``fxtrain.train``, ``simulate``, ``compare``, ``export``,
``verify``, ``measure``, ``sweep``, ``experiment``, ``import_model``) lives in :mod:`fxtrain.api` and is imported on first use, so
``import fxtrain`` and ``fxtrain --help`` stay fast and never load numba.
"""
import hashlib
import os
from pathlib import Path

from ._version import __version__

_API = ("train", "simulate", "compare", "export", "verify", "measure", "sweep", "experiment", "import_model")
__all__ = [*_API, "__version__"]

_PACKAGE = Path(__file__).resolve().parent


def _numba_cache_dir():
    """A numba cache folder keyed by a hash of every source file of the package.

    numba invalidates a cached function when its own file changes, but not when a
    jitted function it calls (in another module) changes; a stale caller would then
    run old kernel code. Keying the whole cache on every source file, in every
    subpackage, avoids that.
    """
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fxtrain"
    return str(base / f"numba-{__version__}-{digest.hexdigest()[:16]}")


# Only a default: a user's own NUMBA_CACHE_DIR wins, and it must be set before numba loads.
os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'fxtrain' has no attribute {name!r}")
