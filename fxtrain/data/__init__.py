"""Data sets: load, validate, split and quantise to int8 with a power-of-two exponent.

Sources: ``digits`` (the 8x8 handwritten digits, shipped inside the package; see
``docs/data.md``), ``basicmotions`` (smartwatch IMU windows from the UEA archive,
shipped, with the archive's own train/test split), the synthetic ``moons`` and
``spirals`` (generated from the seed), or a user file: CSV with the label in the last
column, or NPZ with arrays ``X`` and ``y`` or a fixed split (see :mod:`.files`).
Sensor windows (``X`` [n, T, C]) are standardised per channel (:mod:`.windows`).
"""
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import check_input
from ..errors import DataError
from ..limits import ARRAY_BYTES
from .files import check_samples, read_file
from .synthetic import make_moons, make_spirals
from .windows import channel_stats, check_stats, standardise as standardised

INPUT_EXPONENT = -7  # inputs are scaled into [-1, 1) and stored as Q7
BUILTIN = ("digits", "moons", "spirals", "basicmotions")
TEST_FRACTION = 0.2
DIGITS_FILE = Path(__file__).resolve().parent / "digits.npz"
BASICMOTIONS_FILE = Path(__file__).resolve().parent / "basicmotions.npz"


@dataclass(frozen=True)
class Dataset:
    """Quantised train/test split. ``X_*`` int8 [n, *input_shape] with exponent ``e_x``; a code ``q``
    stands for the raw value ``q * scale / 127`` (see :attr:`raw_per_unit`). ``saturated`` counts the raw
    values (train and test) beyond ``scale``, clipped: only a scale given from outside can cause any.
    For sensor windows, ``mean`` and ``std`` (float64 [C]) are the per-channel constants the raw values
    were standardised with first, ``(sensor value - mean) / std``; None for any other data."""
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    e_x: int
    input_shape: tuple
    n_classes: int
    scale: float = 1.0
    saturated: int = 0
    mean: np.ndarray = None
    std: np.ndarray = None

    @property
    def raw_per_unit(self):
        """The raw value one unit of the engine's input stands for: the engine reads ``q * 2**e_x``,
        the file held about ``q * scale / 127``, so raw = engine value * ``scale * 2**-e_x / 127``. For
        windows, "raw" is the standardised value; the sensor's is that times ``std`` plus ``mean``."""
        return self.scale * 2.0 ** -self.e_x / 127.0


def load_digits():
    """The 1,797 8x8 digits: X float64 [n, 8, 8, 1] with pixels 0..16, y float64 [n]."""
    with np.load(DIGITS_FILE) as z:
        return z["X"].astype(np.float64).reshape(-1, 8, 8, 1), z["y"].astype(np.float64)


def is_builtin(source):
    return source in BUILTIN


def data_digest(source):
    """What decides the data's content: the sha256 of a data file (read in chunks), or the name of a
    built-in set (those ship with, and change only with, the fxtrain version). Cached per file state
    (inode, size, mtime), so a sweep hashes each file once however many cells read it."""
    if is_builtin(source):
        return f"builtin:{source}"
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise DataError(f"data '{source}' is neither a file nor one of {', '.join(BUILTIN)}") from None
    except OSError as exc:
        raise DataError(f"data file {source} cannot be read: {exc.strerror}") from None
    check_input(source, "data file", ARRAY_BYTES, DataError)
    return _file_digest(os.path.realpath(source), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_digest(path, inode, size, mtime_ns):
    try:
        with open(path, "rb") as f:
            return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise DataError(f"data file {path} cannot be read: {exc.strerror}") from None


def _read(source, seed):
    """(X float64 as read, y float64, input_shape, n_train): windows stay [n, T, C]; ``n_train`` is None,
    or for a source with its own split the size of its training half, which comes first."""
    if source == "digits":
        X, y = load_digits()
        return X, y, (8, 8, 1), None
    if source in ("moons", "spirals"):
        X, y = make_moons(seed=seed) if source == "moons" else make_spirals(seed=seed)
        return X, y.astype(np.float64), (2,), None
    if source == "basicmotions":
        return read_file(BASICMOTIONS_FILE)
    if not Path(source).exists():
        raise DataError(f"data '{source}' is neither a file nor one of {', '.join(BUILTIN)}")
    return read_file(source)


def load_raw(source, seed):
    """(X float64 [n, *input_shape], y float64 [n], input_shape) from a built-in name or a file path,
    unstandardised. A source with its own split gives its training samples first, then its test samples."""
    X, y, shape, _ = _read(source, seed)
    return X.reshape(len(X), *shape), y, shape


def stratified_split(y, seed, test_fraction=TEST_FRACTION):
    """Indices (train, test), each sorted: every class is split on its own.

    For each class in increasing order, its sample indices are permuted by one
    ``numpy.random.default_rng(seed)`` stream and the first
    ``round(count * test_fraction)`` go to the test set, so each class keeps its
    share in both sets and the same seed always gives the same split.
    """
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


def saturated_inputs(X, scale):
    """How many values of ``X`` :func:`quantize_inputs` clips at +-127 with this ``scale``."""
    return int(np.count_nonzero(np.abs(np.round(X / scale * 127.0)) > 127))


def load_dataset(source, seed, scale=None, standardise=None):
    """Load, validate, split and quantise a data set.

    The split is the source's own when it has one (``basicmotions``, an NPZ with ``X_train``..., used
    as given, in order), else stratified by the seed (:func:`stratified_split`). Sensor windows are
    first standardised per channel with constants from the training windows (:mod:`.windows`). The
    scale is then max|X_train|, one number for all features, so zero stays zero and every method sees
    the same int8 inputs. A run that starts from weights made for other data (an imported model,
    ``--init``) or resumes passes that data's ``scale``, and for windows its ``standardise`` = (mean,
    std), instead: its first layer was built for them, and values beyond the scale saturate
    (``Dataset.saturated``).
    """
    X, y, shape, n_train = _read(source, seed)
    y, n_classes = check_samples(X, y, source)
    if n_train is None:
        tr, te = stratified_split(y, seed)
        if len(tr) == 0 or len(te) == 0:
            raise DataError(f"{source}: {X.shape[0]} samples are too few for an 80/20 split")
    else:
        tr, te = np.arange(n_train), np.arange(n_train, len(y))
    mean = std = None
    if X.ndim == 3:
        mean, std = channel_stats(X[tr]) if standardise is None else check_stats(standardise, X.shape[2], source)
        X = standardised(X, mean, std)
    elif standardise is not None:
        raise DataError(f"{source}: an input standardisation was given (the run this one continues or starts "
                        "from was trained on sensor windows), but this data is not windows [n, steps, channels]")
    X = X.reshape(len(X), *shape)
    if scale is None:
        scale = float(np.max(np.abs(X[tr]))) or 1.0
    q = quantize_inputs(X, scale)
    return Dataset(str(source), q[tr], y[tr], q[te], y[te], INPUT_EXPONENT, tuple(shape), n_classes, float(scale),
                   saturated_inputs(X, scale), mean, std)
