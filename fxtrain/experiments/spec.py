"""Sweep specs: a TOML file with a ``[grid]`` of lists and ``[fixed]`` single values.

    [grid]                       # every combination is one cell
    method = ["sr", "bc"]
    bits = [2, 8]
    seed = [0, 1, 2]

    [fixed]                      # the same for every cell
    epochs = 10
    lr = "0.0625"

Every key is a training setting; a key not named in either table takes
``fxtrain train``'s default. Anything else (an unknown key or table, an empty
list, a value of the wrong type, a setting the device cannot apply) is one
:class:`ConfigError` line, raised before any cell runs.
"""
import itertools
import json
import math
import os
import tomllib

from .._files import read_text_input
from ..data import data_digest, is_builtin, load_dataset
from ..errors import ConfigError, FxtrainError
from ..limits import MAX_CELLS, SPEC_BYTES
from ..training.config import TRAIN_DEFAULTS, TrainConfig, canonical_lr, canonical_momentum

# key: (accepted Python types, what the message calls it, default); the training settings' defaults are
# TrainConfig's ("default" stands for its arch None), the rest are the sweep's own
_D = {**TRAIN_DEFAULTS, "arch": "default"}
SETTINGS = {
    "method": ((str,), "a string such as \"sr\"", _D["method"]),
    "bits": ((int,), "an integer such as 8", _D["bits"]),
    "seed": ((int,), "an integer such as 0", _D["seed"]),
    "lr": ((str, float, int), "a number or string such as \"0.0625\"", _D["lr"]),
    "batch": ((int,), "an integer such as 16", _D["batch"]),
    "epochs": ((int,), "an integer such as 30", _D["epochs"]),
    "arch": ((str,), "a string such as \"dense:32,dense:10\" (or \"default\")", _D["arch"]),
    "data": ((str,), "a string such as \"digits\"", _D["data"]),
    "momentum": ((str, float, int), "a number or string such as \"0.875\"", _D["momentum"]),
    "lr_decay_tau": ((int,), "an integer number of epochs (0: constant rate)", 0),
    "optimizer": ((str,), "\"sgd\", \"momentum\" or \"adam\"", _D["optimizer"]),
    "train_layers": ((int,), "a whole number of weight layers such as 1 (the last one)", _D["train_layers"]),
}
TABLES = ("grid", "fixed")


def _check_type(where, key, value):
    """The value normalised (numbers as exact text), or a ConfigError naming the expected type."""
    types, expected, _ = SETTINGS[key]
    # TOML booleans are Python ints' subclass; a bool is never a setting here
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(f"{where}: '{key}' must be {expected}, got {value!r}")
    if key in ("lr", "momentum") and not isinstance(value, str):
        return repr(value)
    return value


def _read(path):
    try:
        text = read_text_input(path, "sweep spec", SPEC_BYTES, ConfigError)
    except FileNotFoundError:
        raise ConfigError(f"sweep spec '{path}' does not exist") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep spec '{path}' is not valid TOML: {exc}") from None


def parse_spec(doc, where="spec"):
    """``(grid, fixed)``: grid maps each key to a non-empty list, fixed to one value.

    Parameters
    ----------
    doc : dict
        The parsed TOML document.
    where : str
        Names the spec in messages.
    """
    unknown = sorted(set(doc) - set(TABLES))
    if unknown:
        raise ConfigError(f"{where}: unknown table or key '{unknown[0]}'; a spec has only [grid] and [fixed]")
    grid, fixed = {}, {}
    for table, target in (("grid", grid), ("fixed", fixed)):
        body = doc.get(table, {})
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: '{table}' must be a table ([{table}])")
        for key, value in body.items():
            if key not in SETTINGS:
                raise ConfigError(f"{where}: unknown key '{key}' in [{table}]; known keys: {', '.join(SETTINGS)}")
            target[key] = value
    if not grid:
        raise ConfigError(f"{where}: the [grid] is empty, so the sweep has no cells; list at least one key, "
                          "e.g. seed = [0, 1, 2]")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ConfigError(f"{where}: '{both[0]}' is in both [grid] and [fixed]; keep it in one")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"{where}: [grid] '{key}' must be a list, e.g. {key} = [{values!r}]")
        if not values:
            raise ConfigError(f"{where}: [grid] '{key}' is an empty list, so the sweep has no cells")
        grid[key] = [_check_type(f"{where} [grid]", key, v) for v in values]
    for key, value in fixed.items():
        fixed[key] = _check_type(f"{where} [fixed]", key, value)
    return grid, fixed


def train_cell(settings):
    """A full training cell (every setting present) from a partial dict; checks it like ``fxtrain train``.

    Each setting gets one written form (``lr = "2^-4"`` and ``0.0625`` are one cell), and
    ``inputs`` holds the content digest of what the cell reads, data first: the cell's key
    then changes when a data file is rewritten, not only when its name does.
    """
    cell = {"kind": "train", **{k: v[2] for k, v in SETTINGS.items()}, **settings}
    cfg = train_config(cell)
    cfg.check()
    if cell["lr_decay_tau"] < 0:
        raise ConfigError(f"lr_decay_tau must be 0 (constant rate) or a positive number of epochs, "
                          f"got {cell['lr_decay_tau']}")
    cell["lr"], cell["momentum"] = canonical_lr(cell["lr"]), canonical_momentum(cell["momentum"])
    if not is_builtin(cell["data"]):
        cell["data"] = os.path.normpath(cell["data"])
    cell["inputs"] = {"data": data_digest(cell["data"])}
    return cell


def train_config(cell):
    """The :class:`TrainConfig` of a training cell."""
    return TrainConfig(arch=None if cell["arch"] == "default" else cell["arch"], method=cell["method"],
                       bits=cell["bits"], epochs=cell["epochs"], batch=cell["batch"], lr=str(cell["lr"]),
                       seed=cell["seed"], data=cell["data"], momentum=str(cell["momentum"]),
                       optimizer=cell["optimizer"], train_layers=cell["train_layers"])


def grid_size(grid, where="spec"):
    """The number of cells of ``grid``, from its list lengths alone; a ConfigError above MAX_CELLS.

    The product is taken before anything is expanded, so a grid of 10^9 cells is refused
    at once instead of filling the memory while its cells are checked.
    """
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_CELLS:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise ConfigError(f"{where}: the grid has {n:,} cells ({sizes}), over the limit of {MAX_CELLS:,} cells per "
                          "sweep; split it into several specs")
    return n


def expand(grid, fixed, where="spec"):
    """Every distinct cell of the grid, in a fixed order (grid keys as listed, last key fastest).

    The size is checked first (:func:`grid_size`); then each cell is built and checked
    as it is generated. A value listed twice, or written two ways, gives one cell, so
    it runs once and counts once. Last, each distinct arch is built on each distinct
    data set by the code ``train`` uses (:func:`check_runs`), so a cell ``train``
    would refuse stops the sweep before any cell runs.
    """
    grid_size(grid, where)
    keys = list(grid)
    cells = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        settings = {**fixed, **dict(zip(keys, combo))}
        try:
            cell = train_cell(settings)
        except FxtrainError as exc:
            raise type(exc)(f"{where}: cell {_brief(settings)}: {exc}") from None
        cells.setdefault(json.dumps(cell, sort_keys=True), cell)
    cells = list(cells.values())
    check_runs(cells, where)
    return cells


def check_runs(cells, where="spec"):
    """Build each distinct (data, arch, batch) of ``cells`` as ``train`` would, loading each data set once."""
    from ..training.run import check_plan  # numba: only once a spec has been read
    by_data = {}
    for cell in cells:
        by_data.setdefault(cell["data"], {}).setdefault((cell["arch"], cell["batch"]), cell)
    for source, plans in by_data.items():
        try:
            data = load_dataset(source, 0)
        except FxtrainError as exc:
            raise type(exc)(f"{where}: data {source}: {exc}") from None
        for (arch, batch), cell in plans.items():
            try:
                check_plan(train_config(cell), data)
            except FxtrainError as exc:
                raise type(exc)(f"{where}: cell {_brief({'arch': arch, 'batch': batch, 'data': source})}: "
                                f"{exc}") from None


def _brief(settings):
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def load_spec(path):
    """The cells of the spec file at ``path`` (a list of dicts), or a ConfigError."""
    grid, fixed = parse_spec(_read(path), where=f"spec {path}")
    return expand(grid, fixed, where=f"spec {path}")
