"""Argument checks shared by the CLI's parameter types and the Python API, so both refuse the same values
with the same words.

Each check takes a value and returns it normalised, or raises :class:`ArgumentError`
with the *core* of the message ("must be a positive integer, got 0"). The click types
(:mod:`fxtrain.cli.types`) prefix it with "Invalid value for '--epochs': "; the API
(:func:`check_arguments`) with "Invalid value for 'epochs': ". From the command line
a number arrives as text and is parsed (``text=True``); from Python an integer must
be an ``int`` (not a bool, a float or a string). No numpy here: the CLI imports it.
"""
import os

from .engine.numbers import EXPORT_FORMATS, ROUNDING_MODES, WEIGHT_BITS
from .errors import ConfigError
from .limits import MEASURE_STEPS, VERIFY_EPOCHS, VERIFY_STEPS
from .experiments.registry import EXPERIMENTS
from .training.config import METHODS, OPTIMIZERS


class ArgumentError(ConfigError):
    """An argument of the wrong type or out of range; the message is the part after "Invalid value for X: "."""


def _shown(value, text):
    """The value as the message shows it: command-line text that reads as a number bare (2.5), as
    Python's repr otherwise, so the CLI's "--epochs 2.5" and the API's ``epochs=2.5`` read alike."""
    if text and isinstance(value, str):
        try:
            float(value)
            return value
        except ValueError:
            pass
    return repr(value)


def whole(value, lo=1, hi=None, rule="must be a positive integer", text=False):
    """``value`` as an int in [lo, hi]; ``rule`` words the range in the message."""
    shown = _shown(value, text)
    if text and isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{shown} is not a whole number")
    if value < lo or (hi is not None and value > hi):
        raise ArgumentError(f"{rule}, got {value}")
    return value


def count(hi):
    """A check for a whole number from 1 to ``hi`` (one of the bounds in :mod:`fxtrain.limits`)."""
    return lambda value, text=False: whole(value, 1, hi, f"must be from 1 to {hi:,}", text)


def seed(value, text=False):
    """A seed in [0, 2**32): the generator takes 32 bits, and numpy's split needs a non-negative one."""
    return whole(value, 0, 2**32 - 1, "seed must be in 0 .. 4294967295", text)


def non_negative(value, text=False):
    return whole(value, 0, None, "must be 0 or more", text)


def bits(value, text=False):
    """A weight bit width from the supported set."""
    b = whole(value, float("-inf"), None, "", text)  # a whole number first, then one of the widths
    if b not in WEIGHT_BITS:
        raise ArgumentError(f"{b} is not a supported bit width; choose one of {', '.join(map(str, WEIGHT_BITS))}")
    return b


def bits_list(value, text=False):
    """Bit widths: "1,2,4,8" from the command line, a tuple or list of ints from Python; at least one."""
    items = str(value).split(",") if text and isinstance(value, str) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, (tuple, list)):
        raise ArgumentError(f"{value!r} is not a list of bit widths; pass e.g. (1, 2, 4, 8)")
    if not items:
        raise ArgumentError("no bit width given; pass at least one, e.g. (8,)")
    return tuple(bits(v.strip() if isinstance(v, str) and text else v, text) for v in items)


def exact_number(value, text=False):
    """A learning rate or momentum as text (the library reads it exactly): a string or a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ArgumentError(f"{value!r} is not a number; pass text such as '0.0625'")
    return str(value)


def choice(options):
    """A check for one of ``options`` (the message lists them as click's Choice does)."""
    def check(value, text=False):
        if value not in options:
            raise ArgumentError(f"{value!r} is not one of {', '.join(map(repr, options))}.")
        return value
    return check


def optional(check):
    """``check``, letting None through (the parameter's default)."""
    return lambda value, text=False: None if value is None else check(value, text)


def path(value, text=False):
    """A file or folder path: a string or an ``os.PathLike``."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ArgumentError(f"{value!r} is not a path; pass a string or a pathlib.Path")
    return value


def target(value, text=False):
    """A profile: its shipped name, a .toml path, or a loaded ``Target``."""
    from .device.profiles import Target  # the API's check only: the CLI passes text
    return value if isinstance(value, Target) else path(value, text)


def text_value(value, text=False):
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"{value!r} is not text; pass a string")
    return value


def flag(value, text=False):
    if not isinstance(value, bool):
        raise ArgumentError(f"{value!r} is not True or False")
    return value


def callback(value, text=False):
    if value is not None and not callable(value):
        raise ArgumentError(f"{value!r} is not callable; pass a function or None")
    return value


# Every API parameter and its check; a parameter whose bound differs by function is
# named with the function ("verify.steps").
CHECKS = {
    "arch": optional(text_value), "method": choice(METHODS), "bits": bits, "epochs": whole, "batch": whole,
    "lr": exact_number, "seed": seed, "optimizer": choice(OPTIMIZERS), "train_layers": optional(whole), "data": path, "momentum": exact_number, "out": path,
    "resume": optional(path), "target": target, "measured": flag, "train": flag, "plot": optional(path),
    "run_dir": path, "export_dir": path, "prefix": text_value, "pack": flag, "vectors": non_negative,
    "to": choice(EXPORT_FORMATS), "rounding": optional(choice(ROUNDING_MODES)), "train_step": flag,
    "host_only": flag, "dump": optional(path), "compare.bits": bits_list, "compare.out": optional(path),
    "train.out": optional(path), "simulate.out": optional(path),
    "verify.steps": optional(count(VERIFY_STEPS)), "verify.epochs": optional(count(VERIFY_EPOCHS)),
    "spec": path, "scheduler": text_value, "workers": optional(whole), "quick": flag,
    "experiment.name": choice(tuple(EXPERIMENTS)), "experiment.out": optional(path), "experiment.plot": flag,
    "measure.steps": count(MEASURE_STEPS), "verify.target": optional(target), "export.target": optional(target),
    "init": optional(path), "model": path, "import_model.out": optional(path),
}


def check_arguments(function, **values):
    """Check each of ``function``'s named arguments (callbacks ``on_*`` must be callable); returns them
    normalised as a dict, or raises ArgumentError "Invalid value for 'NAME': ..."."""
    checked = {}
    for name, value in values.items():
        check = CHECKS.get(f"{function}.{name}") or CHECKS.get(name) or (callback if name.startswith("on_") else None)
        if check is None:
            raise KeyError(f"no check for {function}'s argument {name}")  # a bug: every argument has one
        try:
            checked[name] = check(value)
        except ArgumentError as exc:
            raise ArgumentError(f"Invalid value for '{name}': {exc}") from None
    return checked
