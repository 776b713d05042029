"""Hardware profiles: the shipped TOML files and the validator's one-line errors."""
import pickle
import re
import shutil
import subprocess

import pytest

from fxtrain.device.profiles import UNIT_NAMES, Cycles, list_targets, load_target
from fxtrain.errors import TargetError

SHIPPED = [
    "atmega328p", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "esp32",
    "esp32-c3", "nrf52840", "rp2040", "stm32f103c8", "stm32f407", "stm32f746", "stm32h743",
]

GOOD = """\
name = "my-board"
description = "a test board"
core = "Cortex-M4F"
isa = "ARMv7E-M Thumb-2"
clock_hz = 100000000
sram_bytes = 65536
flash_bytes = 262144
reserved_sram_bytes = 4096
fpu = "sp"
budget_seconds_per_epoch = 600.0
cflags = ["-mcpu=cortex-m4", "-mthumb"]

[cycles]
int_mac = 1
int_op = 1
load_store = 2
fadd = 1
fmul = 1
fdiv = 14
int_mac_wide = 1
mul_wide = 1

[source]
clock_hz = "made up for the test"
"""
# a user profile without [unit_cycles] prices every unit from its operations
UNIT_OPS = "\n[unit_ops]\n" + "".join(f"{unit} = [1, 2, 3]\n" for unit in UNIT_NAMES)
GOOD = GOOD.replace("\n[source]\n", UNIT_OPS + "\n[source]\n")


def write(tmp_path, text, name="my-board.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_names_are_exactly_the_thirteen():
    assert [t.name for t in list_targets()] == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_cites_its_numbers(name):
    t = load_target(name)
    assert t.name == name
    assert {"clock_hz", "sram_bytes", "flash_bytes", "cycles"} <= set(dict(t.source))
    # The budget is a policy, so it must say so rather than pretend to be a datasheet value.
    assert dict(t.source)["budget_seconds_per_epoch"].startswith("Policy")
    assert 0 < t.usable_sram_bytes < t.sram_bytes


def test_atmega328p_has_2_kib_sram_and_no_fpu():
    t = load_target("atmega328p")
    assert (t.sram_bytes, t.flash_bytes, t.clock_hz) == (2048, 32768, 16_000_000)
    assert t.has_fpu is False
    assert t.cflags == () and t.qemu_machine is None


def test_soft_float_costs_over_50_times_hardware_float():
    m0 = load_target("cortex-m0plus").cycles
    m4 = load_target("cortex-m4").cycles
    assert m0.fadd > 50 * m4.fadd
    # fadd and fmul measured (libgcc's soft float per call, fxtrain measure), fdiv an estimate
    assert (m0.fadd, m0.fmul, m0.fdiv) == (62, 130, 475)
    assert m4 == Cycles(int_mac=1, int_op=1, load_store=2, fadd=1, fmul=1, fdiv=14, int_mac_wide=1, mul_wide=1)


def test_cortex_m4_exact_profile():
    t = load_target("cortex-m4")
    assert (t.clock_hz, t.sram_bytes, t.reserved_sram_bytes) == (168_000_000, 196608, 16384)
    assert t.usable_sram_bytes == 180224
    assert t.fpu == "sp" and t.has_fpu
    assert t.budget_seconds_per_epoch == 600.0


def test_cross_compile_flags_are_the_exact_strings_the_harness_expects():
    got = {t.name: (t.cflags, t.qemu_machine) for t in list_targets()}
    m0, m3 = ("-mcpu=cortex-m0plus", "-mthumb"), ("-mcpu=cortex-m3", "-mthumb")
    m4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    m7 = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")
    assert got["cortex-m0plus"] == (m0, None)
    assert got["cortex-m3"] == (m3, "mps2-an385")
    assert got["cortex-m4"] == (m4, "mps2-an386")
    assert got["cortex-m7"] == (m7, "mps2-an500")
    assert got["stm32f103c8"] == (m3, None) and got["rp2040"] == (m0, None)
    assert got["nrf52840"] == (m4, None) and got["stm32f407"] == (m4, None)
    assert got["stm32h743"] == (m7, None)
    # F746 has a single-precision FPU, so it must not be built for fpv5-d16.
    assert got["stm32f746"] == (m7[:3] + ("-mfpu=fpv5-sp-d16",), None)
    for name in ("atmega328p", "esp32", "esp32-c3"):
        assert got[name] == ((), None)


def test_fpu_matches_the_float_abi():
    for t in list_targets():
        hard = "-mfloat-abi=hard" in t.cflags
        assert hard == (t.has_fpu and t.cflags != ()), t.name
        if any(f.startswith("-mfpu=") for f in t.cflags):
            assert ("-sp-" in t.cflags[-1]) == (t.fpu == "sp"), t.name


def test_user_file_loads_with_any_name_and_is_frozen(tmp_path):
    t = load_target(str(write(tmp_path, GOOD, "other.toml")))
    assert t.name == "my-board"  # a user file's name need not match its stem
    assert t.qemu_machine is None and t.usable_sram_bytes == 61440
    assert dict(t.source) == {"clock_hz": "made up for the test"}
    assert pickle.loads(pickle.dumps(t)) == t and hash(t) == hash(load_target(t.path))
    with pytest.raises(AttributeError):
        t.sram_bytes = 1


def bad(tmp_path, old, new):
    assert old in GOOD
    return str(write(tmp_path, GOOD.replace(old, new), "bad-board.toml"))


@pytest.mark.parametrize("old, new, pattern", [
    ("sram_bytes = 65536\n", "", "missing required field 'sram_bytes'"),
    ("sram_bytes = 65536", "sram_bytes = -5",
     "field 'sram_bytes' must be a positive integer, got -5"),
    ("clock_hz = 100000000", "clock_hz = 0", "field 'clock_hz' must be a positive integer"),
    ('fpu = "sp"', 'fpu = "single"', "field 'fpu' must be one of 'none', 'sp', 'dp'"),
    ("flash_bytes = 262144", "flash_bytes = true",
     "field 'flash_bytes' must be a positive integer, got True"),
    ("flash_bytes = 262144", "flash_bytes = 262144.0", "field 'flash_bytes'"),
    ("clock_hz = 100000000", "clock_hz = = 1", "invalid TOML: .*line 5"),
    ("budget_seconds_per_epoch = 600.0", "budget_seconds = 600.0",
     "unknown field 'budget_seconds' \\(did you mean 'budget_seconds_per_epoch'\\?\\)"),
    ("budget_seconds_per_epoch = 600.0", "budget_seconds_per_epoch = inf",
     "field 'budget_seconds_per_epoch' must be a positive finite number"),
    ("reserved_sram_bytes = 4096", "reserved_sram_bytes = 65536",
     "field 'reserved_sram_bytes' must be less than sram_bytes \\(65536\\)"),
    ("fdiv = 14", "", "missing required field 'cycles.fdiv'"),
    ("fdiv = 14", "fdiv = 0", "field 'cycles.fdiv' must be a positive finite number"),
    ("fdiv = 14", "fdiv = 14\nfmac = 2", "unknown field 'cycles.fmac'"),
    ('cflags = ["-mcpu=cortex-m4", "-mthumb"]', 'cflags = "-mthumb"',
     "field 'cflags' must be a list of strings"),
    ('cflags = ["-mcpu=cortex-m4", "-mthumb"]', 'cflags = ["-mthumb", 3]',
     "field 'cflags' must be a list of strings"),
    ('clock_hz = "made up', 'clok_hz = "made up', "unknown field 'source.clok_hz'"),
    ('description = "a test board"', 'description = ""', "field 'description'"),
    # [unit_ops]: known units, three non-negative counts each, and every unit priced some way
    ("\nmac = [1, 2, 3]", "\nmaac = [1, 2, 3]", "unknown field 'unit_ops.maac' \\(did you mean 'unit_ops.mac'\\?\\)"),
    ("\nmac = [1, 2, 3]", "\nmac = [1, 2]", re.escape("field 'unit_ops.mac' must be 3 non-negative numbers "
                                                  "[int_mac, load_store, int_op], got [1, 2]")),
    ("\nmac = [1, 2, 3]", "\nmac = [1, -2, 3]", "field 'unit_ops.mac' must be 3 non-negative numbers"),
    ("\nmac = [1, 2, 3]", '\nmac = [1, "2", 3]', "field 'unit_ops.mac' must be 3 non-negative numbers"),
    ("\nmac = [1, 2, 3]", "\nmac = 6", "field 'unit_ops.mac' must be 3 non-negative numbers"),
    ("\nmac = [1, 2, 3]\n", "\n", "missing field 'unit_ops.mac'; a unit \\[unit_cycles\\] does not price is priced"),
    (UNIT_OPS, "", "missing field 'unit_ops.mac' \\(and 20 more\\)"),
])
def test_bad_profile_names_file_and_field_in_one_line(tmp_path, old, new, pattern):
    path = bad(tmp_path, old, new)
    with pytest.raises(TargetError, match=re.escape(path) + ": " + pattern) as info:
        load_target(path)
    assert "\n" not in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nope.toml")
    with pytest.raises(TargetError, match=re.escape(path)):
        load_target(path)


def test_unknown_name_points_to_the_cli_and_the_closest_names():
    with pytest.raises(TargetError, match="fxtrain targets") as info:
        load_target("cortex-m5")
    # Ties in similarity keep the sorted-name order reversed, as difflib ranks them.
    assert str(info.value).startswith(
        "unknown target 'cortex-m5' (did you mean 'cortex-m7', 'cortex-m4', 'cortex-m3'?); ")
    with pytest.raises(TargetError, match="unknown target 'zzz'; run `fxtrain targets`"):
        load_target("zzz")


def test_shipped_profile_name_must_match_its_stem(tmp_path, monkeypatch):
    monkeypatch.setattr("fxtrain.device.profiles.data_dir", lambda name: tmp_path)
    write(tmp_path, GOOD, "renamed.toml")
    with pytest.raises(TargetError, match="renamed.toml: field 'name' must equal the file stem"):
        load_target("renamed")


def test_shipped_profile_must_cite_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr("fxtrain.device.profiles.data_dir", lambda name: tmp_path)
    write(tmp_path, GOOD, "my-board.toml")  # cites clock_hz only
    with pytest.raises(TargetError, match="my-board.toml: missing field 'source.sram_bytes'"):
        load_target("my-board")


def test_price_tables_are_checked_and_shown(tmp_path):
    from cli_helpers import invoke, one_line_error
    from fxtrain._files import data_dir
    text = (data_dir("targets") / "cortex-m4.toml").read_text().replace('name = "cortex-m4"', 'name = "mine"')
    assert "[unit_cycles]\nact =" in text
    bad = write(tmp_path, text.replace("[unit_cycles]\nact =", "[unit_cycles]\nactt ="), "mine.toml")
    # a typo in the fitted table is one line naming the field and the near miss, like any other
    one_line_error(invoke("targets", "show", bad), "unit_cycles.actt", "did you mean 'unit_cycles.act'")
    bad = write(tmp_path, re.sub(r"\[unit_cycles\]\nact = [\d.]+", "[unit_cycles]\nact = -1", text), "mine.toml")
    one_line_error(invoke("targets", "show", bad), "unit_cycles.act", "non-negative")
    bad = write(tmp_path, text.replace("\nalu = 1", "\nalu = 0"), "mine.toml")
    one_line_error(invoke("targets", "show", bad), "instruction_cycles.alu", "positive")
    r = invoke("targets", "show", "cortex-m4")
    rows = {ln.split()[0]: ln.split()[1] for ln in r.output.splitlines() if ln.split() and "_cycles." in ln}
    assert rows["instruction_cycles.fpu_div"] == "14"
    assert float(rows["unit_cycles.mac"]) == dict(load_target("cortex-m4").unit_cycles)["mac"]



def test_unit_ops_are_read_and_only_the_unmeasured_profiles_need_them(tmp_path):
    t = load_target(str(write(tmp_path, GOOD.replace("\nmac = [1, 2, 3]", "\nmac = [0, 0.5, 3]"))))
    assert dict(t.unit_ops)["mac"] == (0, 0.5, 3) and len(t.unit_ops) == len(UNIT_NAMES)
    # a fitted price or its proxy's covers a unit, so [unit_ops] may leave it out
    fitted = GOOD.replace("\n[unit_ops]\n", "\n[unit_cycles]\ngrad_tap = 5.0\n\n[unit_ops]\n")
    t = load_target(str(write(tmp_path, fitted.replace("back_tap = [1, 2, 3]\n", ""))))
    assert "back_tap" not in dict(t.unit_ops) and dict(t.unit_cycles) == {"grad_tap": 5.0}
    for t in list_targets():
        # a profile borrowing another core's mix says so in its source line
        assert bool(t.unit_ops) == (not t.unit_cycles), t.name
        assert not t.unit_ops or dict(t.source)["unit_ops"].startswith("Borrowed from the Cortex-M4"), t.name


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc not installed: apt-get install gcc-arm-none-eabi")
def test_a_profile_has_the_dsp_paths_exactly_where_its_compiler_reports_them():
    # the cost model counts the C runtime's DSP paths where the profile's ISA is ARMv7E-M; the runtime
    # takes them where its cflags make the compiler define __ARM_FEATURE_DSP
    for t in list_targets():
        if not t.cflags:
            continue
        macros = subprocess.run(["arm-none-eabi-gcc", *t.cflags, "-dM", "-E", "-"], input="", text=True,
                                capture_output=True, check=True).stdout
        assert ("#define __ARM_FEATURE_DSP 1" in macros) == t.has_dsp, t.name
