"""Data sets: load, validate, split and quantise to int8 with a power-of-two exponent.

Sources: ``digits`` (scikit-learn's 8x8 digits, the default), the synthetic
``moons`` and ``spirals`` (generated from the seed), or a user file: CSV with the
label in the last column, or NPZ with arrays ``X`` and ``y``. Every check raises
:class:`DataError` with one line naming the file, row or column at fault.
"""
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

INPUT_EXPONENT = -7  # inputs are scaled into [-1, 1) and stored as Q7
BUILTIN = ("digits", "moons", "spirals")
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Quantised train/test split. ``X_*`` int8 [n, *input_shape] with exponent ``e_x``."""
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    e_x: int
    input_shape: tuple
    n_classes: int


def _read_csv(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the file is empty; expected rows of features with the label last")
    # A header row is allowed: skip the first row if none of its cells is a number.
    if not any(_is_number(c) for c in rows[0]):
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path}: row 1 has {width} column; expected features then a label")
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DataError(f"{path}: row {i} has {len(row)} columns, expected {width} like row 1")
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
    except Exception as exc:  # zipfile/pickle errors: one line, not a traceback
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError(f"{path}: X and y must be numeric arrays, got {X.dtype} and {y.dtype}")
    return X.astype(np.float64), y.astype(np.float64)


def _check(X, y, where):
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
    if n_classes < 2:
        raise DataError(f"{where}: all labels are {int(y.max())}; need at least 2 classes")
    if n_classes > 256:
        raise DataError(f"{where}: {n_classes} classes; labels must be 0..255")
    return y.astype(np.int64), n_classes


def _synthetic(name, seed, n=1000):
    rng = np.random.default_rng(seed)
    if name == "moons":
        from sklearn.datasets import make_moons
        return make_moons(n_samples=n, noise=0.15, random_state=seed)
    t = rng.uniform(0.25, 1.0, n)
    y = rng.integers(0, 2, n)
    angle = 3.0 * math.pi * t + math.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) + rng.normal(0, 0.03, (n, 2))
    return X, y


def load_raw(source, seed):
    """(X float64, y float64, input_shape) from a built-in name or a file path."""
    if source == "digits":
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.data.reshape(-1, 8, 8, 1), d.target.astype(np.float64), (8, 8, 1)
    if source in ("moons", "spirals"):
        X, y = _synthetic(source, seed)
        return X, y.astype(np.float64), (2,)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"data '{source}' is neither a file nor one of {', '.join(BUILTIN)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".npz":
        X, y = _read_npz(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        X, y = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown data format '{path.suffix}'; use .csv (label last) or .npz (X, y)")
    return X, y, X.shape[1:]


def stratified_split(y, seed, test_fraction=TEST_FRACTION):
    """Indices (train, test): each class split test_fraction/rest, fixed by the seed."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def quantize_inputs(X, scale):
    """int8 codes of ``X / scale`` in Q7 (exponent -7), saturated to [-127, 127]."""
    return np.clip(np.round(X / scale * 127.0), -127, 127).astype(np.int8)


def load_dataset(source, seed):
    """Load, validate, split (stratified, by seed) and quantise a data set.

    The scale is max|X_train|, one number for all features, so zero stays zero and
    every method sees the same int8 inputs.
    """
    X, y, shape = load_raw(source, seed)
    y, n_classes = _check(X, y, source)
    tr, te = stratified_split(y, seed)
    if len(tr) == 0 or len(te) == 0:
        raise DataError(f"{source}: {X.shape[0]} samples are too few for an 80/20 split")
    scale = float(np.max(np.abs(X[tr]))) or 1.0
    q = quantize_inputs(X, scale)
    return Dataset(str(source), q[tr], y[tr], q[te], y[te], INPUT_EXPONENT, tuple(shape), n_classes)
