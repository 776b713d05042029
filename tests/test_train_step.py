"""On-device training in C: the exported step equals the simulator bit for bit, on the host and on an
emulated Cortex-M, and its RAM, read from the linked ELF, equals the accounting buffer by buffer."""
import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest

import fxtrain
from c_helpers import train_exports
from cli_helpers import invoke, one_line_error
from fxtrain.device.fit import largest_width
from fxtrain.device.profiles import load_target
from fxtrain.errors import ConfigError
from fxtrain.firmware.codegen import assert_no_float
from fxtrain.firmware.train_verify import verify_training

ARM = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
needs_arm = pytest.mark.skipif(bool(ARM), reason=f"{', '.join(ARM)} not installed: apt-get install "
                                                  "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed: apt-get install gcc")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Train a run for 2 epochs and export it with --train-step, once per configuration."""
    return train_exports(tmp_path_factory, 2, "train")


@needs_gcc
@needs_arm
@pytest.mark.parametrize("kw", [dict(method="sr", bits=8), dict(method="sr", bits=4), dict(method="sr", bits=1),
                                dict(method="r", bits=8), dict(method="bc", bits=8),
                                dict(method="sr", bits=4, arch="conv:4:3,pool:2,dense:10"),
                                dict(method="sr", bits=8, arch="conv:4:3:same,pool:2,dense:10"),
                                dict(method="sr", bits=8, arch="conv:1:3,conv:3:3,dense:10")])
def test_twenty_steps_on_host_and_cortex_m4_equal_the_simulator(exported, kw):
    res = verify_training(exported(**kw) / "fw", steps=20, target="cortex-m4")
    # every step's checksums and the final state agree: no divergence on either side
    assert [(where, diff) for where, diff, _ in res["results"]] == [
        ("host gcc", None), ("cortex-m4 (qemu mps2-an386)", None)]
    assert res["ok"]


@needs_gcc
@needs_arm
@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m7"])
@pytest.mark.parametrize("kw", [dict(method="sr", bits=8), dict(method="sr", bits=16), dict(method="sr", bits=1),
                                dict(method="r", bits=8), dict(method="sr", bits=4, momentum="0.875", optimizer="momentum"),
                                dict(method="bc", bits=8, momentum="0.875", optimizer="momentum"),
                                dict(method="sr", bits=8, arch="conv:4:3,pool:2,conv:8:3,dense:10"),
                                dict(method="sr", bits=8, arch="conv:4:3:same,pool:2,dense:10")])
def test_portable_m3_and_dsp_m7_kernels_equal_the_simulator(exported, kw, target):
    res = verify_training(exported(**kw) / "fw", steps=20, target=target)
    # the M3 builds the portable loops, the M7 the SMLAD ones: both continue the run bit for bit
    assert [diff for _, diff, _ in res["results"]] == [None, None] and res["ok"]


@needs_gcc
def test_whole_epochs_across_two_boundaries_stay_identical(exported):
    d = exported(method="sr", bits=4, data="moons", arch="dense:16,dense:2")
    # moons trains 800 samples in 50 steps an epoch: 130 steps cross two epoch boundaries (two reshuffles)
    res = fxtrain.verify(d / "fw", train_step=True, steps=130)
    assert res.ok and res.results[0][1] is None and res.steps == 130


@needs_gcc
def test_fx_train_epoch_itself_continues_the_run(exported, tmp_path):
    d = exported(method="sr", bits=8, data="moons", arch="dense:16,dense:2")
    main = ('#include <stdio.h>\n#define FX_TRAIN_IMPLEMENTATION\n#include "fx_train.h"\n#include "fx_train_data.h"\n'
            "int main(void)\n{\n    int e;\n    fx_train_init();\n"
            "    for (e = 0; e < 3; e++) {\n"
            "        if (fx_train_epoch(&fx_train_x[0][0], fx_train_y, FX_TRAIN_N) != FX_OK) {\n"
            "            return 1;\n        }\n    }\n"
            '    printf("%lu %lu %lu\\n", (unsigned long)fx_train_checksum(0u, 0u), '
            "(unsigned long)fx_train_checksum(0u, 1u), (unsigned long)fx_train_rng());\n    return 0;\n}\n")
    (tmp_path / "epochs.c").write_text(main)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", f"-I{d / 'fw'}",
                    str(tmp_path / "epochs.c"), "-o", str(tmp_path / "epochs")], check=True)
    got = subprocess.run([str(tmp_path / "epochs")], capture_output=True, text=True, check=True).stdout.split()
    # the simulator's own next three epochs, from the same checkpoint
    from fxtrain.firmware.train_export import load_training_run
    from fxtrain.firmware.train_verify import tensor_checksums
    run = load_training_run(d / "run")
    for _ in range(3):
        run.step_epoch()
    sums = tensor_checksums(run)
    assert [int(v) for v in got] == [sums["w0"], sums["w1"], int(run.state.rng[0])]


@needs_gcc
@needs_arm
@pytest.mark.parametrize("kw", [dict(method="sr", bits=1), dict(method="sr", bits=4), dict(method="sr", bits=8),
                                dict(method="bc", bits=8)])
@pytest.mark.parametrize("target", ["cortex-m4", "stm32f103c8"])
def test_elf_buffers_equal_the_accounting(exported, kw, target):
    res = verify_training(exported(**kw) / "fw", steps=1, target=target)
    # every training buffer symbol in the linked ELF has exactly the bytes the accounting predicts
    assert res["memory"] and all(equal for _, _, _, equal, _ in res["memory"]), res["memory"]
    names = {name for name, *_ in res["memory"]}
    assert ("shadow" in names) == (kw["method"] == "bc")


def test_compare_shows_the_packed_memory_story():
    out = invoke("compare", "--target", "stm32f103c8", "--format", "json")
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    rows = {(r["method"], r["bits"]): r for r in res["rows"]}
    # SR at 1 bit: ceil(W_l / 8) bytes per layer (64x32 and 32x10); BC's shadow is 4 bytes a weight
    assert rows[("sr", 1)]["weight_bytes"] == 2048 // 8 + 320 // 8
    assert rows[("bc", 1)]["shadow_bytes"] == 4 * 2368
    sram = [rows[("sr", b)]["total_bytes"] for b in (1, 2, 4, 8)]
    assert sram == sorted(sram) and sram[0] < sram[-1]  # SR's training SRAM falls with bits
    widths = {w["bits"]: w for w in res["widths"]}
    assert widths[1]["sr_over_bc"] > widths[8]["sr_over_bc"]
    t = load_target("stm32f103c8")
    for bits in (1, 8):
        # the widths are those the byte formulas give, solved here from scratch
        assert widths[bits]["sr_width"] == _widest_by_formula(t, "sr", bits)
        assert widths[bits]["bc_width"] == _widest_by_formula(t, "bc", bits)


def _pad4(n):
    return -(-n // 4) * 4


def _bytes_by_formula(method, bits, width, batch=16, n_train=1438, features=64, classes=10):
    """Training SRAM of dense:width,dense:10, written out from the design's table."""
    slot = {1: 1, 2: 2, 4: 4, 8: 8}[bits]
    widest = max(features, width)
    # every weight row (an output's fan-in) padded to whole words
    w_bytes = width * _pad4(-(-features * slot // 8)) + classes * _pad4(-(-width * slot // 8))
    # the kernels' scratch: a hidden sample re-aligned when width is not whole words, the output
    # errors re-aligned (10 -> 12), sub-byte rows unpacked four at a time, four columns of the
    # output weights gathered for the error below; the gradient's transposes fit the accumulator
    opa = _pad4(width) if width % 4 else 4
    opb = batch * _pad4(classes)
    rows = max(4 * _pad4(features) if slot < 8 else 0, 4 * _pad4(width) if slot < 8 else 0, 4 * _pad4(classes))
    total = (w_bytes + 4 * (width + classes) + batch * (width + classes) + batch * features + batch
             + 4 * batch * widest + 2 * _pad4(batch * widest) + 4 * widest + 4 * max(width, classes)
             + opa + opb + rows + 4 * classes + 4 * 3 + 2 * n_train + 4 + 4 * 5 * 2)
    return total + (4 * (features * width + width * classes) if method == "bc" else 0)


def _widest_by_formula(target, method, bits):
    w = 1
    while _bytes_by_formula(method, bits, w + 1) <= target.usable_sram_bytes:
        w += 1
    assert largest_width(None, method, bits, 16, ((8, 8, 1), 10, 1438), target) == w  # SRAM is the binding limit
    return w


# ---------------------------------------------------------------- bad input and honesty checks

def test_train_step_refuses_a_float_run(tmp_path):
    fxtrain.train(method="float", epochs=1, out=tmp_path / "run")
    one_line_error(invoke("export", tmp_path / "run", "--out", tmp_path / "fw", "--train-step"),
                   "is a float run", "--method sr, r or bc")
    assert not (tmp_path / "fw").exists()


def test_train_step_refuses_buffers_beyond_the_target(tmp_path):
    fxtrain.train(epochs=1, batch=256, out=tmp_path / "run")
    line = one_line_error(invoke("export", tmp_path / "run", "--out", tmp_path / "fw", "--train-step",
                                 "--target", "stm32f103c8"), "training buffers for batch 256")
    assert "smaller --batch" in line and not (tmp_path / "fw").exists()


def test_train_step_refuses_a_run_from_another_version(tmp_path):
    fxtrain.train(epochs=1, out=tmp_path / "run")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    report["fxtrain_version"] = "0.1.0"
    (tmp_path / "run" / "report.json").write_text(json.dumps(report))
    one_line_error(invoke("export", tmp_path / "run", "--out", tmp_path / "fw", "--train-step"),
                   "written by fxtrain 0.1.0")


@needs_gcc
def test_verify_names_the_first_divergence(exported, tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(exported(method="sr", bits=8) / "fw", fw)
    header = (fw / "fx_train.h").read_text()
    # one wrong bit in the device's generator state: every later draw differs
    rng = header.split("fx_buf_rng[0] = ")[1].split("u;")[0]
    (fw / "fx_train.h").write_text(header.replace(f"fx_buf_rng[0] = {rng}u;", f"fx_buf_rng[0] = {int(rng) ^ 1}u;"))
    manifest = json.loads((fw / "export.json").read_text())
    manifest["files"]["fx_train.h"] = hashlib.sha256((fw / "fx_train.h").read_bytes()).hexdigest()
    (fw / "export.json").write_text(json.dumps(manifest))
    r = invoke("verify", fw, "--train-step", "--steps", 3)
    assert r.exit_code == 1 and "step 0: the generator state diverged" in r.output, r.output


@needs_gcc
def test_verify_on_a_target_without_a_cortex_m_checks_the_host(exported):
    r = invoke("verify", exported(method="r", bits=8) / "fw", "--train-step", "--steps", 2, "--target", "atmega328p")
    # the host check passes, and the output says plainly what was not checked
    assert r.exit_code == 0 and "not a Cortex-M: only the host was checked" in r.output


def test_verify_train_step_on_an_inference_export_is_one_line(tmp_path):
    fxtrain.train(epochs=1, out=tmp_path / "run")
    fxtrain.export(tmp_path / "run", tmp_path / "fw")
    one_line_error(invoke("verify", tmp_path / "fw", "--train-step"), "export the run with --train-step")


def test_sixteen_bit_runs_export_training_only(tmp_path):
    fxtrain.train(bits=16, epochs=1, out=tmp_path / "run")
    res = fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    names = {p.name for p in (tmp_path / "fw").iterdir()}
    assert "fx_train.h" in names and "fx_model.h" not in names and res.train_files
    with pytest.raises(ConfigError, match="at most 8 bits"):
        fxtrain.export(tmp_path / "run", tmp_path / "fw2")


def test_integer_training_runtime_holds_no_float(exported):
    fw = exported(method="sr", bits=4) / "fw"
    for name in ("fx_train.h", "fx_train_runtime.h", "fx_train_kernels.h", "fx_train_dot.h", "fx_train_passes.h",
                 "fx_train_update.h"):
        # comments included: the sr path has not even the word
        assert_no_float((fw / name).read_text(), name, comments=True)
    assert "malloc" not in "".join((fw / n).read_text() for n in ("fx_train_runtime.h", "fx_train_kernels.h",
                                                                   "fx_train_dot.h", "fx_train_passes.h"))


@needs_gcc
@pytest.mark.parametrize("flags, needle", [(["-std=gnu99"], "-ffp-contract=off"), (["-std=c99", "-ffast-math"],
                                                                                     "-ffast-math")])
def test_bc_build_refuses_flags_that_break_bit_identity(exported, tmp_path, flags, needle):
    fw = exported(method="bc", bits=8) / "fw"
    proc = subprocess.run(["gcc", *flags, f"-I{fw}", "-c", str(fw / "train_main.c"), "-o", str(tmp_path / "x.o")],
                          capture_output=True, text=True)
    # the header stops a build that could fuse or reorder BinaryConnect's float operations
    assert proc.returncode != 0 and needle in proc.stderr



@needs_gcc
@needs_arm
def test_int64_gradient_sums_match_on_the_device(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.integers(0, 255, (250, 28, 28, 1)).astype(float), y=rng.integers(0, 2, 250))
    fxtrain.train(data=str(tmp_path / "d.npz"), arch="conv:2:3,pool:2,dense:2", batch=196, epochs=1,
                  out=tmp_path / "run")
    fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    # batch 196 on 28x28 puts the conv gradient past int32: the C runtime accumulates it in int64 too
    assert "#define FX_GRAD_WIDE 1" in (tmp_path / "fw" / "fx_train.h").read_text()
    for target in ("cortex-m4", "cortex-m3"):  # SMLALD on the M4, portable int64 sums on the M3
        res = verify_training(tmp_path / "fw", steps=2, target=target)
        assert [diff for _, diff, _ in res["results"]] == [None, None] and all(r[3] for r in res["memory"]), target
        # a 196-image batch of 28x28 is more static RAM than the usable SRAM of either profile: QEMU's
        # 4 MiB run it, but verify reports that the image does not fit the profile
        assert res["image"]["ram"] > res["image"]["ram_limit"] and not res["ok"], target
