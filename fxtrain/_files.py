"""Files: atomic writes (a temporary sibling, then ``os.replace``) and the package's data folders.

A crash or a bad input never leaves a half-written file where a good one stood,
and a path that cannot be written becomes one :class:`OutputError` line, not a
traceback.
"""
import io
import json
import os
import tempfile
from pathlib import Path

from .errors import OutputError

_PACKAGE = Path(__file__).resolve().parent
TMP_SUFFIX = ".tmp"


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; written files get the usual 0666 & ~umask instead.
FILE_MODE = 0o666 & ~_current_umask()


def data_dir(name):
    """Path of a shipped data folder: ``targets`` or ``firmware_export``.

    A wheel carries them in ``fxtrain/_data/``; an editable install or a checkout
    reads them from the repository root beside the package.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fxtrain data folder '{name}' is missing from the installation")


def ensure_dir(path, what="output folder"):
    """Create ``path`` (and parents) or raise OutputError saying why it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {path} is a file, not a folder; choose another path") from None
    except NotADirectoryError:
        raise OutputError(f"{what} {path} lies under a plain file; choose another path") from None
    except PermissionError:
        raise OutputError(f"{what} {path} cannot be created: permission denied") from None
    except OSError as exc:
        raise OutputError(f"{what} {path} cannot be created: {exc.strerror}") from None
    if not path.is_dir():
        raise OutputError(f"{what} {path} is not a folder; choose another path")
    return path


def write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, IsADirectoryError):
            raise OutputError(f"cannot write {path}: a folder of that name is in the way") from None
        raise


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def npz_bytes(arrays):
    """An uncompressed .npz of a dict of arrays, as bytes (numpy is imported only here)."""
    import numpy as np
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_npz_atomic(path, arrays):
    """Save a dict of arrays as an uncompressed .npz, atomically."""
    write_bytes_atomic(path, npz_bytes(arrays))
