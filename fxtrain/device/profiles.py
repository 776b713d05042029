"""Hardware profiles: one TOML file per board or chip, loaded into a frozen ``Target``.

Every check fails with one line that names the file and the field, so a typo in a
profile stops the run instead of silently changing a memory or time budget.
No numpy or numba here: ``fxtrain targets`` imports this module and must start fast.
"""
import difflib
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .._files import data_dir, read_text_input
from ..errors import TargetError
from ..limits import PROFILE_BYTES

FPU_KINDS = ("none", "sp", "dp")

# field -> (kind, required). The kinds are checked by ``_check`` below.
_FIELDS = {
    "name": ("text", True),
    "description": ("text", True),
    "core": ("text", True),
    "isa": ("text", True),
    "clock_hz": ("size", True),
    "sram_bytes": ("size", True),
    "flash_bytes": ("size", True),
    "reserved_sram_bytes": ("count", True),
    "fpu": ("text", True),
    "budget_seconds_per_epoch": ("number", True),
    "qemu_machine": ("text", False),
    "cflags": ("textlist", False),
    "cycles": ("table", True),
    "instruction_cycles": ("table", False),
    "unit_cycles": ("table", False),
    "unit_ops": ("table", False),
    "source": ("table", False),
}
_CYCLES = ("int_mac", "int_op", "load_store", "fadd", "fmul", "fdiv", "int_mac_wide", "mul_wide")
# Cycles per executed instruction, by class (fxtrain.measuring.classify names them): what
# `fxtrain measure` weighs its instruction counts with. A class the core lacks may be left out.
INSTRUCTION_CLASSES = ("alu", "mul", "mac", "mul_long", "mac_long", "div", "sat", "load", "store", "multiple",
                       "registers", "branch", "branch_not_taken", "call", "pc_load", "fpu_add", "fpu_mul",
                       "fpu_mac", "fpu_div", "fpu_cvt", "fpu_move", "other")
# The classes each core kind executes, so a profile that is measured must price every one of them.
_ARMV6M_CLASSES = ("alu", "mul", "load", "store", "multiple", "registers", "branch", "branch_not_taken", "call",
                   "pc_load", "other")
_ARMV7M_CLASSES = ("mac", "mul_long", "mac_long", "div", "sat")
_FPU_CLASSES = ("fpu_add", "fpu_mul", "fpu_mac", "fpu_div", "fpu_cvt", "fpu_move")
# Cycles per unit of work of the training step (fxtrain.device.work.UNITS names them), fitted to
# measured instructions; a unit left out is priced through its proxy, or from [unit_ops].
UNIT_NAMES = ("mac", "conv_tap", "pool", "scan", "act", "softmax", "relu", "err", "back_mac", "back_tap",
              "pool_back", "grad_mac", "grad_tap", "update_sr", "update_r", "update_bc", "bias", "unpack", "repack",
              "copy", "step_loop", "shuffle", "dsp_tap", "dsp_mac", "dsp_scan", "dsp_act", "pool_word", "pool_back_word",
              "pool_back_2x2", "gap_add", "gap_err")
# A unit a profile does not price is priced as the unit whose loop it stands in for: the DSP
# paths (counted on DSP cores only) as the portable loops they replace, gap's sums as pooling's.
UNIT_PROXY = {"back_tap": "grad_tap", "dsp_tap": "conv_tap", "dsp_mac": "mac", "dsp_scan": "scan", "dsp_act": "act",
              "pool_word": "pool", "pool_back_word": "pool_back", "pool_back_2x2": "pool_back", "gap_add": "pool",
              "gap_err": "err"}


def priced_as(unit, table):
    """The unit of ``table`` (a {unit: price} mapping) that prices ``unit``: itself or its proxy; None if neither."""
    while unit is not None and unit not in table:
        unit = UNIT_PROXY.get(unit)
    return unit
# [unit_ops]: a unit's instructions by kind, each kind priced at the [cycles] field of the same name.
UNIT_OPS = ("int_mac", "load_store", "int_op")
# A shipped profile must say where its headline numbers come from; a user file need not.
_SHIPPED_SOURCES = ("clock_hz", "sram_bytes", "flash_bytes", "cycles")


def _is_int(v):
    # bool is a subclass of int, but `sram_bytes = true` is a typo, never a size.
    return isinstance(v, int) and not isinstance(v, bool)


_KINDS = {  # kind: (test, what the error message says the value must be)
    "text": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
    "size": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "count": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "number": (lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v) and v > 0,
               "a positive finite number"),
    "price": (lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v) and v >= 0,
              "a non-negative finite number"),
    "textlist": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                 "a list of strings"),
    "table": (lambda v: isinstance(v, dict), "a table"),
}


@dataclass(frozen=True)
class Cycles:
    """Cycles per operation on one core; every value is an int or float > 0.

    ``int_mac`` is one 8x8 or 16x16 multiply into a 32-bit accumulator, ``int_op`` any
    other integer op (add, shift, compare, saturate), ``load_store`` one memory access.
    ``fadd``/``fmul``/``fdiv`` are float32 ops: FPU prices, or soft-float prices on a
    core without an FPU. ``int_mac_wide`` is a multiply into a 64-bit accumulator
    (SMLAL), for sums whose bound exceeds int32; ``mul_wide`` a 32x32 -> 64 multiply
    (SMULL, or a libgcc helper), for weight updates whose product can exceed int32.
    """

    int_mac: float
    int_op: float
    load_store: float
    fadd: float
    fmul: float
    fdiv: float
    int_mac_wide: float
    mul_wide: float


@dataclass(frozen=True)
class Target:
    """One hardware profile, as read from ``targets/NAME.toml``.

    ``source`` is a tuple of ``(field, citation)`` pairs in file order, not a dict, so
    that a Target stays immutable, hashable and picklable; use ``dict(t.source)`` to
    look a citation up (``instruction_cycles``, ``unit_cycles`` and ``unit_ops`` are pairs too;
    a ``unit_ops`` value is its ``(int_mac, load_store, int_op)`` counts).
    ``path`` is the file the profile came from.
    """

    name: str
    description: str
    core: str
    isa: str
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    reserved_sram_bytes: int
    fpu: str
    budget_seconds_per_epoch: float
    cycles: Cycles
    cflags: tuple[str, ...]
    qemu_machine: str | None
    source: tuple[tuple[str, str], ...]
    path: str
    instruction_cycles: tuple[tuple[str, float], ...] = ()
    unit_cycles: tuple[tuple[str, float], ...] = ()
    unit_ops: tuple[tuple[str, tuple[float, float, float]], ...] = ()

    @property
    def usable_sram_bytes(self):
        """SRAM left for training buffers once stack and RTOS headroom are set aside."""
        return self.sram_bytes - self.reserved_sram_bytes

    @property
    def has_dsp(self):
        """True on an ARMv7E-M core: its DSP extension (SMLAD, SXTB16, SSUB8, SEL) is what the C
        training runtime's DSP paths take (``__ARM_FEATURE_DSP``), so the cost model counts them."""
        return self.isa.startswith("ARMv7E-M")

    @property
    def has_fpu(self):
        """True when float32 ops run in hardware (``fpu`` is ``"sp"`` or ``"dp"``)."""
        return self.fpu != "none"


def _fail(path, field, why):
    raise TargetError(f"{path}: field '{field}' {why}")


def _check(path, field, value, kind):
    test, rule = _KINDS[kind]
    if not test(value):
        _fail(path, field, f"must be {rule}, got {value!r}")


def _reject_unknown(path, table, allowed, prefix=""):
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise TargetError(f"{path}: unknown field '{prefix}{key}'{hint}; "
                              f"allowed: {', '.join(allowed)}")


def _read(path):
    try:
        text = read_text_input(path, "target profile", PROFILE_BYTES, TargetError)
    except FileNotFoundError:
        raise TargetError(f"{path}: no such target profile file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{path}: invalid TOML: {e}") from None


def _check_prices(path, raw):
    """The price tables: [cycles] complete, the optional ones with known keys only, every unit priced."""
    cycles = raw["cycles"]
    _reject_unknown(path, cycles, list(_CYCLES), "cycles.")
    for key in _CYCLES:
        if key not in cycles:
            raise TargetError(f"{path}: missing required field 'cycles.{key}'")
        _check(path, f"cycles.{key}", cycles[key], "number")
    # a fitted unit may cost nothing beyond the units it runs with (a DSP conv's scan rides with its sums)
    for table, allowed, kind in (("instruction_cycles", INSTRUCTION_CLASSES, "number"),
                                 ("unit_cycles", UNIT_NAMES, "price")):
        _reject_unknown(path, raw.get(table, {}), list(allowed), f"{table}.")
        for key, value in raw.get(table, {}).items():
            _check(path, f"{table}.{key}", value, kind)
    _check_unit_ops(path, raw.get("unit_ops", {}))
    _check_units_priced(path, raw)


def _is_op_count(v):
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v) and v >= 0


def _check_unit_ops(path, table):
    _reject_unknown(path, table, list(UNIT_NAMES), "unit_ops.")
    for unit, ops in table.items():
        if not (isinstance(ops, list) and len(ops) == len(UNIT_OPS) and all(map(_is_op_count, ops))):
            _fail(path, f"unit_ops.{unit}", f"must be {len(UNIT_OPS)} non-negative numbers "
                                            f"[{', '.join(UNIT_OPS)}], got {ops!r}")


def _check_units_priced(path, raw):
    """Every unit needs a fitted price, its proxy's, or its operations: the cost model has no other."""
    fitted, ops = raw.get("unit_cycles", {}), raw.get("unit_ops", {})
    # a unit with a proxy is priced once the unit it stands in for is: only those without one can be missing
    missing = [u for u in UNIT_NAMES if u not in UNIT_PROXY and u not in fitted and u not in ops]
    if missing:
        raise TargetError(f"{path}: missing field 'unit_ops.{missing[0]}'"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                          + "; a unit [unit_cycles] does not price is priced from its operations "
                            f"[{', '.join(UNIT_OPS)}] at [cycles]: copy the [unit_ops] table of a shipped profile "
                            "such as esp32 (the Cortex-M4's mix), or fit [unit_cycles] to fxtrain measure's counts (benchmarks/calibrate_cost.py)")


def _validate(path, raw, shipped):
    _reject_unknown(path, raw, list(_FIELDS))
    for field, (kind, required) in _FIELDS.items():
        if field in raw:
            _check(path, field, raw[field], kind)
        elif required:
            raise TargetError(f"{path}: missing required field '{field}'")
    if raw["reserved_sram_bytes"] >= raw["sram_bytes"]:
        _fail(path, "reserved_sram_bytes",
              f"must be less than sram_bytes ({raw['sram_bytes']}), "
              f"got {raw['reserved_sram_bytes']}")
    if raw["fpu"] not in FPU_KINDS:
        _fail(path, "fpu", f"must be one of {', '.join(map(repr, FPU_KINDS))}, "
                           f"got {raw['fpu']!r}")
    _check_prices(path, raw)
    source = raw.get("source", {})
    # Citations may be keyed by any field, or by 'cycles' for the whole table.
    _reject_unknown(path, source, [f for f in _FIELDS if f != "source"], "source.")
    for key, text in source.items():
        _check(path, f"source.{key}", text, "text")
    if shipped:
        stem = Path(path).stem
        if raw["name"] != stem:
            _fail(path, "name", f"must equal the file stem '{stem}' in a shipped "
                                f"profile, got {raw['name']!r}")
        tables = [t for t in ("instruction_cycles", "unit_cycles", "unit_ops") if raw.get(t)]
        for key in (*_SHIPPED_SOURCES, *tables):
            if key not in source:
                raise TargetError(f"{path}: missing field 'source.{key}', "
                                  "required in a shipped profile")


def _load_file(path, shipped):
    raw = _read(path)
    _validate(path, raw, shipped)
    tables = ("cycles", "source", "cflags", "instruction_cycles", "unit_cycles", "unit_ops")
    fields = {f: raw[f] for f in _FIELDS if f in raw and f not in tables}
    return Target(
        **{"qemu_machine": None, **fields},
        cycles=Cycles(**raw["cycles"]),
        cflags=tuple(raw.get("cflags", ())),
        source=tuple(raw.get("source", {}).items()),
        path=str(path),
        instruction_cycles=tuple(raw.get("instruction_cycles", {}).items()),
        unit_cycles=tuple(raw.get("unit_cycles", {}).items()),
        unit_ops=tuple((unit, tuple(ops)) for unit, ops in raw.get("unit_ops", {}).items()),
    )


def check_instruction_cycles(t):
    """Raise TargetError, naming the file and the field, if ``t`` lacks the price of a class its core executes.

    Checked before a measurement (and before ``simulate --measured`` trains), so a
    profile with a hole fails at once instead of after the work.
    """
    need = list(_ARMV6M_CLASSES) + (list(_ARMV7M_CLASSES) if t.isa.startswith("ARMv7") else [])
    if any(f.startswith("-mfpu=") for f in t.cflags) and "-mfloat-abi=soft" not in t.cflags:
        need += _FPU_CLASSES
    have = dict(t.instruction_cycles)
    missing = [c for c in need if c not in have]
    if missing:
        raise TargetError(f"{t.path}: missing field 'instruction_cycles.{missing[0]}'"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                          + f"; a {t.core} executes {', '.join(missing)} instructions, so measuring needs their cycles")
    return t


def _shipped_dir():
    return Path(data_dir("targets")).resolve()


def load_target(name_or_path):
    """Load a hardware profile by shipped name or by path.

    Parameters
    ----------
    name_or_path : str
        A shipped profile name such as ``"cortex-m4"``, or a path to a ``.toml``
        file (anything ending in ``.toml`` or containing a path separator).

    Returns
    -------
    Target
        The validated, frozen profile.

    Raises
    ------
    TargetError
        Unknown name, missing or unreadable file, bad TOML, or an invalid field;
        the message is one line naming the file and the field.
    """
    arg = str(name_or_path)
    seps = [s for s in (os.sep, os.altsep) if s]
    if arg.endswith(".toml") or any(s in arg for s in seps):
        path = Path(arg)
        shipped = path.resolve().parent == _shipped_dir()
        return _load_file(path, shipped)
    path = _shipped_dir() / f"{arg}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in _shipped_dir().glob("*.toml"))
        near = difflib.get_close_matches(arg, names, n=3)
        hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
        raise TargetError(f"unknown target {arg!r}{hint}; run `fxtrain targets` to list "
                          "them, or pass a path to a .toml profile")
    return _load_file(path, shipped=True)


def list_targets():
    """Every shipped profile, validated, as a list of ``Target`` sorted by name."""
    targets = [_load_file(p, shipped=True) for p in _shipped_dir().glob("*.toml")]
    return sorted(targets, key=lambda t: t.name)
