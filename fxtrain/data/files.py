"""User data files: CSV (label in the last column) or NPZ, validated.

An NPZ holds ``X`` and ``y`` (split by the seed), or ``X_train``, ``y_train``,
``X_test`` and ``y_test`` (a fixed split, used as given). ``X`` is [n, features],
[n, steps, channels] (sensor windows) or [n, h, w, c] (images). Every check raises
:class:`DataError` with one line naming the file, array, row or column at fault.
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


SHAPES = "[n, features], [n, steps, channels] or [n, h, w, c]"
PLAIN = ("X", "y")
SPLIT = ("X_train", "y_train", "X_test", "y_test")


def _npz_names(path, names):
    """The arrays to read: 'X' and 'y', or the four of a fixed split; a DataError for a mix or a gap."""
    split = [k for k in SPLIT if k in names]
    plain = [k for k in PLAIN if k in names]
    if split and plain:
        raise DataError(f"{path}: holds {plain} and {split}; keep either 'X' and 'y' (split by the seed) or "
                        "'X_train', 'y_train', 'X_test' and 'y_test' (a fixed split), not both")
    want = SPLIT if split else PLAIN
    missing = [k for k in want if k not in names]
    if missing:
        raise DataError(f"{path}: missing array(s) {missing}; expected 'X' {SHAPES} and 'y' [n], or "
                        f"'X_train', 'y_train', 'X_test', 'y_test' for a fixed split, found {names}")
    return want


def _npz_array(path, z, name):
    try:
        a = z[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        # allow_pickle=False refuses object arrays, which is what np.savez makes of ragged lists
        raise DataError(f"{path}: array '{name}' holds Python objects, not numbers (rows or windows of "
                        "different lengths?); save it as one numeric array of equal-length samples") from None
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: array '{name}' must be numeric, got {a.dtype}")
    return a.astype(np.float64)


def _read_npz(path):
    """{name: float64 array}: 'X' and 'y', or 'X_train', 'y_train', 'X_test' and 'y_test'."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: _npz_array(path, z, k) for k in _npz_names(path, z.files)}
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    except Exception as exc:  # zipfile/npy errors: one line, not a traceback
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def _at(where, name):
    return f"{where}: {name} " if name else f"{where}: "


def _position(X, index):
    """Where ``index`` lies in words: window, step and channel of windows, else row and column (flattened)."""
    if X.ndim == 3:
        return f"window {index[0] + 1}, step {index[1] + 1}, channel {index[2] + 1}"
    return f"row {index[0] + 1}, column {np.ravel_multi_index(index[1:], X.shape[1:]) + 1}"


def check_features(X, where, name=None):
    """Validate the samples ``X``, float64 [n, features], [n, steps, channels] or [n, h, w, c]: finite,
    at least one. ``name``: the array's, to name it in the message (a fixed split's halves)."""
    if X.ndim not in (2, 3, 4):
        raise DataError(f"{where}: {name or 'X'} must be {SHAPES}, got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError(f"{where}: {name} holds no samples; a fixed split needs samples in both halves"
                        if name else f"{where}: no samples")
    if X.size == 0:
        raise DataError(f"{where}: {name or 'X'} has shape {X.shape}: its samples hold no values")
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        i = tuple(bad[0])
        raise DataError(f"{_at(where, name)}{_position(X, i)} is {X[i]}; features must be finite numbers")


def check_labels(y, n, where, name=None):
    """Validate labels ``y`` [n]: integers 0, 1, ... (``name`` as in :func:`check_features`)."""
    if y.shape != (n,):
        raise DataError(f"{where}: {name or 'y'} must have shape ({n},), got {y.shape}")
    bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0)
    if np.any(bad):
        r = int(np.argmax(bad))
        raise DataError(f"{_at(where, name)}label in row {r + 1} is {y[r]}; labels must be integers 0..k-1")


def check_samples(X, y, where):
    """Validate X [n, features], [n, steps, channels] or [n, h, w, c] and integer labels y [n];
    return (y int64, n_classes)."""
    check_features(X, where)
    check_labels(y, X.shape[0], where)
    n_classes = int(y.max()) + 1
    if len(np.unique(y)) < 2:
        raise DataError(f"{where}: every label is {int(y.max())}; a classifier needs at least 2 distinct classes")
    if n_classes > 256:
        raise DataError(f"{where}: {n_classes} classes; labels must be 0..255")
    return y.astype(np.int64), n_classes


def check_split(arrays, where):
    """Validate a fixed split (``X_train``, ``y_train``, ``X_test``, ``y_test``), each half as
    :func:`check_samples` checks X and y, the halves alike in shape; return (X, y, n_train): the two
    halves joined, training samples first."""
    for x, y in (("X_train", "y_train"), ("X_test", "y_test")):
        check_features(arrays[x], where, x)
        check_labels(arrays[y], arrays[x].shape[0], where, y)
    train, test = arrays["X_train"], arrays["X_test"]
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{where}: X_train holds samples of shape {train.shape[1:]} but X_test {test.shape[1:]}; "
                        "both halves need the same shape (steps and channels, or features)")
    if len(np.unique(arrays["y_train"])) < 2:
        raise DataError(f"{where}: every label in y_train is {int(arrays['y_train'][0])}; "
                        "a classifier needs at least 2 distinct classes to train on")
    return np.concatenate([train, test]), np.concatenate([arrays["y_train"], arrays["y_test"]]), len(train)


def input_shape(X):
    """What the engine reads of one sample of ``X``: windows [n, T, C] are (1, T, C), a row of T steps
    in HWC order; anything else is ``X.shape[1:]``."""
    return (1, *X.shape[1:]) if X.ndim == 3 else X.shape[1:]


def read_file(source):
    """(X float64, y float64, input_shape, n_train) from a CSV or NPZ path, or a DataError. ``n_train`` is
    None, or for an NPZ with a fixed split the size of its training half, which comes first in X and y."""
    path = Path(source)
    if check_input(path, "data file", ARRAY_BYTES if path.suffix.lower() == ".npz" else CSV_BYTES, DataError) == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".npz":
        arrays = _read_npz(path)
        X, y, n_train = (arrays["X"], arrays["y"], None) if "X" in arrays else check_split(arrays, path)
    elif path.suffix.lower() in (".csv", ".txt"):
        (X, y), n_train = _read_csv(path), None
    else:
        raise DataError(f"{path}: unknown data format '{path.suffix}'; use .csv (label last) or .npz (X, y)")
    return X, y, input_shape(X), n_train
