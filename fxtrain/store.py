"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash or a bad input never leaves a half-written file where a good one stood.
"""
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz_atomic(path, arrays):
    """Save a dict of arrays as an uncompressed .npz, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
