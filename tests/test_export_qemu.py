"""verify_qemu: the same C on emulated Cortex-M3/M4F/M7 equals reference.predict bit for bit."""
import shutil

import pytest

from c_helpers import build
from fxtrain.errors import ToolchainError
from fxtrain.firmware.codegen import export_model
from fxtrain.firmware.reference import predict
from fxtrain.firmware.verify import verify_host, verify_qemu

FIX = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
MISSING = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {FIX}")
M3, M4, M7 = "cortex-m3", "cortex-m4", "cortex-m7"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Export folders by (net, bits, pack), built once for the module."""
    cache = {}

    def get(name, bits, pack=False):
        key = (name, bits, pack)
        if key not in cache:
            model, X = build(name, bits)
            cache[key] = tmp_path_factory.mktemp(f"{name}{bits}{'p' if pack else ''}")
            export_model(model, cache[key], pack=pack, vectors=(X, *predict(model, X)))
        return cache[key]
    return get


@needs_arm
@pytest.mark.parametrize("name, bits, pack, target", [
    ("mlp", 8, False, M4),
    ("conv_same", 8, False, M4),
    ("mlp", 8, False, M3),
    ("conv_valid", 1, True, M4),
    ("mlp", 2, True, M7),
])
def test_qemu_equals_python(exports, name, bits, pack, target):
    res = verify_qemu(exports(name, bits, pack), target)
    # every byte and class equal on the emulated core, and the firmware itself saw no mismatch
    assert (res["n_vectors"], res["n_mismatch"], res["c_reported_mismatch"]) == (200, 0, 0)
    assert res["returncode"] == 0
    assert res["text"] > 0 and res["bss"] > 0 and res["data"] >= 0
    assert res["qemu_seconds"] > 0


def test_the_three_qemu_profiles_name_their_boards():
    from fxtrain.device.profiles import load_target
    # the board and cflags come from the profile, the one place they are written
    boards = {t: load_target(t).qemu_machine for t in (M3, M4, M7)}
    assert boards == {M3: "mps2-an385", M4: "mps2-an386", M7: "mps2-an500"}
    assert all(f"-mcpu={t}" in load_target(t).cflags for t in (M3, M4, M7))


def test_a_target_without_a_board_is_refused(exports):
    with pytest.raises(ToolchainError, match="no QEMU board"):
        verify_qemu(exports("mlp", 8), "cortex-m0plus")


@pytest.mark.parametrize("tool, fix", [("arm-none-eabi-gcc", FIX), ("qemu-system-arm", FIX),
                                       ("gcc", "apt-get install gcc")])
def test_missing_tools_raise_naming_the_tool_and_the_fix(tmp_path, monkeypatch, tool, fix):
    model, X = build("mlp", 8, n_cal=4)
    export_model(model, tmp_path, vectors=X)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for other in {"arm-none-eabi-gcc", "qemu-system-arm"} - {tool}:
        (bindir / other).symlink_to("/bin/true")  # present, so the error names the missing one
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(ToolchainError, match=f"{tool} not found.*{fix}"):
        (verify_host(tmp_path) if tool == "gcc" else verify_qemu(tmp_path, M4))
