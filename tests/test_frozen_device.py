"""Fine-tuning on the device (--train-layers N): the exported step runs the frozen layers forward only
from const weights in flash, trains the last layers bit for bit as the simulator does (host, QEMU M3,
M4, M7), declares exactly the buffers the accounting counts, and measures the shorter step."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from c_helpers import train_exports
from cli_helpers import invoke
from fxtrain.device.profiles import load_target
from fxtrain.firmware.train_export import load_training_run
from fxtrain.firmware.train_frozen import frozen_counts
from fxtrain.firmware.train_verify import cross_build, verify_training

ARM = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
needs_arm = pytest.mark.skipif(bool(ARM), reason=f"{', '.join(ARM)} not installed: apt-get install "
                                                  "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed: apt-get install gcc")

DENSE, CONV = "dense:32,dense:16,dense:10", "conv:8:3,pool:2,dense:10"
CORES = ("cortex-m3", "cortex-m4", "cortex-m7")  # portable C, DSP, DSP on the M7's pipeline


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run trained 1 epoch with --train-layers and exported with --train-step, once per configuration."""
    return train_exports(tmp_path_factory, 1, "frozen")


@needs_gcc
@needs_arm
@pytest.mark.parametrize("target", CORES)
@pytest.mark.parametrize("kw", [dict(method="sr", bits=8, arch=DENSE, train_layers=1),
                                dict(method="sr", bits=8, arch=DENSE, train_layers=2),
                                dict(method="sr", bits=4, arch=DENSE, train_layers=1),
                                dict(method="sr", bits=4, arch=DENSE, train_layers=2),
                                dict(method="sr", bits=8, arch=CONV, train_layers=1),
                                dict(method="sr", bits=4, arch=CONV, train_layers=1),
                                dict(method="r", bits=8, arch=DENSE, train_layers=1),
                                dict(method="bc", bits=8, arch=DENSE, train_layers=1)],
                         ids=lambda kw: f"{kw['method']}{kw['bits']}-{kw['arch'][:4]}-last{kw['train_layers']}")
def test_twenty_fine_tuning_steps_equal_the_simulator_on_host_and_qemu(exported, kw, target):
    d = exported(**kw)
    res = verify_training(d / "fw", steps=20, target=target)
    # every step's checksums (the generator's too: the same draws in the same order) and the final state agree
    assert [diff for _, diff, _ in res["results"]] == [None, None] and res["ok"]
    # the device's frozen weights are the checkpoint's, byte for byte, after 20 steps; the trained ones moved
    start = load_training_run(d / "run")
    frozen = start.state.wq[:frozen_counts(start)[0]]
    assert 0 < len(frozen) < len(start.state.wq)
    assert np.array_equal(np.array(res["device_state"]["W"][:len(frozen)], np.uint32).view(np.int32), frozen)
    assert res["device_state"]["W"][len(frozen):] != [v & 0xFFFFFFFF for v in start.state.wq[len(frozen):].tolist()]


@needs_gcc
@needs_arm
def test_a_trunk_of_two_frozen_outputs_ping_pongs_between_two_halves(exported):
    res = verify_training(exported(method="sr", bits=8, arch="conv:4:3,pool:2,dense:16,dense:10", train_layers=1)
                          / "fw", steps=20, target="cortex-m4")
    assert [diff for _, diff, _ in res["results"]] == [None, None] and res["ok"]
    # the conv's output takes one half (16 * 6 * 6 * 4 bytes), the pool's the other (16 * 3 * 3 * 4): each half
    # as wide as its own outputs; the pool's output feeds the frozen dense:16, whose output is the trained
    # layer's input and keeps its buffer
    sizes = {name: got for name, _, _, equal, got in res["memory"] if equal}
    assert len(sizes) == len(res["memory"]) and sizes["trunk"] == 2304 + 576 and "act2" in sizes
    assert not {"act0", "act1"} & set(sizes)


def _symbol_sections(elf):
    """{symbol: section} of a linked ELF, from arm-none-eabi-objdump -t."""
    out = subprocess.run(["arm-none-eabi-objdump", "-t", str(elf)], capture_output=True, text=True, check=True)
    rows = (line.split() for line in out.stdout.splitlines())
    return {parts[-1]: parts[-3] for parts in rows if len(parts) >= 5 and parts[-3].startswith(".")}


@needs_arm
def test_frozen_weights_sit_in_flash_and_trained_ones_in_ram(exported, tmp_path):
    d = exported(method="sr", bits=8, arch=CONV, train_layers=1)
    elf = cross_build(d / "fw", "fx", 1, False, load_target("cortex-m4"), tmp_path / "prog.elf")
    where = _symbol_sections(elf)
    # const arrays in .rodata, which mps2.ld places in FLASH; the trained layer's buffers in .bss (RAM)
    assert where["fx_frozen_weights"] == ".rodata" and where["fx_frozen_biases"] == ".rodata"
    assert where["fx_buf_weights"] == ".bss" and where["fx_buf_biases"] == ".bss"


@needs_arm
def test_fine_tuning_the_last_layer_saves_sram_as_the_accounting_says(exported):
    last = verify_training(exported(method="sr", bits=8, arch=CONV, train_layers=1) / "fw", steps=1,
                           target="cortex-m4")
    full = verify_training(exported(method="sr", bits=8, arch=CONV) / "fw", steps=1, target="cortex-m4")
    elf = {name: sum(r[4] for r in res["memory"]) for name, res in (("last", last), ("full", full))}
    predicted = {name: sum(r[2] for r in res["memory"]) for name, res in (("last", last), ("full", full))}
    # both ELFs' buffer symbols equal the accounting, buffer by buffer and in total
    assert all(r[3] for r in last["memory"] + full["memory"]) and elf == predicted
    assert elf == {"last": 32268, "full": 39308}
    # the saving, 7,040 bytes: the conv's weights (96) and biases (32), and the error ping-pong that no
    # longer holds the conv's output (2 * 16 * 288 bytes against 2 * 16 * 72)
    sizes = {name: {r[0]: r[4] for r in res["memory"]} for name, res in (("last", last), ("full", full))}
    assert elf["full"] - elf["last"] == 7040 == 96 + 32 + (sizes["full"]["err"] - sizes["last"]["err"])
    assert sizes["last"]["trunk"] == sizes["full"]["act0"]  # one frozen output under the pool: one half


@needs_arm
def test_measure_reports_the_shorter_fine_tuning_step(tmp_path):
    pytest.importorskip("unicorn", reason="not installed: pip install 'fxtrain[measure]'")
    pytest.importorskip("capstone", reason="not installed: pip install 'fxtrain[measure]'")
    pytest.importorskip("elftools", reason="not installed: pip install 'fxtrain[measure]'")
    cycles = {}
    for name, extra in (("last", ["--train-layers", 1]), ("full", [])):
        r = invoke("train", "--epochs", 1, "--seed", 0, "--arch", CONV, *extra, "--out", tmp_path / name)
        assert r.exit_code == 0, r.output
        r = invoke("measure", tmp_path / name, "--target", "cortex-m4", "--steps", 2, "--format", "json")
        assert r.exit_code == 0, r.output
        rep = json.loads(r.output[r.output.index("{"):])
        assert rep["divergence"] is None  # the measured ELF continued the run bit for bit
        cycles[name] = rep["per_step"]["cycles"]
        if name == "last":  # the last layer sends no error below and has no ReLU to mask: no backward work
            assert rep["phases"]["backward"]["cycles"] < rep["phases"]["forward"]["cycles"] / 100
    # only the dense layer trains, the conv runs forward only: a shorter step
    assert cycles["last"] < cycles["full"]
