"""User data files: CSV (label in the last column) or NPZ (arrays ``X`` and ``y``), validated.

Every check raises :class:`DataError` with one line naming the file, row or
column at fault.
"""
import csv
from pathlib import Path

import numpy as np

from .._files import check_input, read_input
from ..errors import DataError
from ..limits import ARRAY_BYTES, CSV_BYTES


DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}


def _read_text(path):
    """The file as text: UTF-8, with or without a byte-order mark; else a DataError saying so."""
    try:
        raw = read_input(path, "data file", CSV_BYTES, DataError)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save it as a UTF-8 CSV") from None


def _delimiter(text):
    """Commas, unless the first line has none but has semicolons or tabs (a spreadsheet export)."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return next((d for d in DELIMITERS if d in first), ",")


def _read_csv(path):
    text = _read_text(path)
    delim = _delimiter(text)
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delim) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the file is empty; expected rows of features with the label last")
    # A header row is allowed: skip the first row if none of its cells is a number.
    if not any(_is_number(c) for c in rows[0]):
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path}: row 1 has {width} column; expected features then a label, separated by "
                        "commas, semicolons or tabs")
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DataError(f"{path}: row {i} has {len(row)} columns, expected {width} like row 1 "
                            f"(read as separated by {DELIMITERS[delim]})")
        for j, cell in enumerate(row, start=1):
            try:
                values[i - 1, j - 1] = float(cell)
            except ValueError:
                raise DataError(f"{path}: row {i}, column {j}: '{cell.strip()}' is not a number") from None
    return values[:, :-1], values[:, -1]


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; expected 'X' [n, features] "
                                f"or [n, h, w, c] and 'y' [n], found {z.files}")
            X, y = z["X"], z["y"]
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    except Exception as exc:  # zipfile/pickle errors: one line, not a traceback
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError(f"{path}: X and y must be numeric arrays, got {X.dtype} and {y.dtype}")
    return X.astype(np.float64), y.astype(np.float64)


def check_samples(X, y, where):
    """Validate X [n, features] or [n, h, w, c] and integer labels y [n]; return (y int64, n_classes)."""
    if X.shape[0] == 0:
        raise DataError(f"{where}: no samples")
    if X.ndim not in (2, 4):
        raise DataError(f"{where}: X must be [n, features] or [n, h, w, c], got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise DataError(f"{where}: y must have shape ({X.shape[0]},), got {y.shape}")
    bad = np.argwhere(~np.isfinite(X.reshape(X.shape[0], -1)))
    if bad.size:
        r, c = bad[0]
        raise DataError(f"{where}: row {r + 1}, column {c + 1} is {X.reshape(X.shape[0], -1)[r, c]}; "
                        "features must be finite numbers")
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or np.any(y < 0):
        r = int(np.argmax(~np.isfinite(y) | (y != np.round(y)) | (y < 0)))
        raise DataError(f"{where}: label in row {r + 1} is {y[r]}; labels must be integers 0..k-1")
    n_classes = int(y.max()) + 1
    if len(np.unique(y)) < 2:
        raise DataError(f"{where}: every label is {int(y.max())}; a classifier needs at least 2 distinct classes")
    if n_classes > 256:
        raise DataError(f"{where}: {n_classes} classes; labels must be 0..255")
    return y.astype(np.int64), n_classes


def read_file(source):
    """(X float64, y float64, input_shape) from a CSV or NPZ path, or a DataError."""
    path = Path(source)
    if check_input(path, "data file", ARRAY_BYTES if path.suffix.lower() == ".npz" else CSV_BYTES, DataError) == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".npz":
        X, y = _read_npz(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        X, y = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown data format '{path.suffix}'; use .csv (label last) or .npz (X, y)")
    return X, y, X.shape[1:]
