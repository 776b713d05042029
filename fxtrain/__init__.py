"""fxtrain: integer-only on-device training, simulated bit for bit."""
import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


def _numba_cache_dir():
    """A numba cache folder keyed by a hash of this package's sources.

    numba invalidates a cached function when its own file changes, but not when a
    jitted function it calls (in another module) changes; a stale caller would then
    run old kernel code. Keying the whole cache on every source file avoids that.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fxtrain"
    return str(base / f"numba-{__version__}-{digest.hexdigest()[:16]}")


# Only a default: a user's own NUMBA_CACHE_DIR wins, and it must be set before numba loads.
os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())
