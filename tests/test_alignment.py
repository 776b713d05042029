"""Word loads stay on words: the C training runtime's kernels read int8 operands four at a time, which
ARMv6-M (Cortex-M0+) cannot do from an unaligned address, and LDRD cannot on any core. Unicorn's M0
model does not fault on an unaligned LDR and no QEMU board runs the M0+, so the alignment is proved
here from the linked ELF and the generated layer table instead of by running."""
import re
import shutil
import subprocess

import pytest

import fxtrain
from fxtrain.device.profiles import load_target
from fxtrain.firmware.train_verify import cross_build

ARM = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-nm") if shutil.which(t) is None]
needs_arm = pytest.mark.skipif(bool(ARM), reason=f"{', '.join(ARM)} not installed: apt-get install "
                                                  "gcc-arm-none-eabi libnewlib-arm-none-eabi")
# the buffers the kernels read a word at a time (fx_load32 and the DSP loop)
WORD_READ = ("weights", "input", "err", "opa", "opb", "rows")


def _symbols(elf):
    out = subprocess.run(["arm-none-eabi-nm", "-S", "-t", "d", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    return {p[3]: int(p[0]) for p in (ln.split() for ln in out.splitlines()) if len(p) == 4}


@needs_arm
@pytest.mark.parametrize("kw", [dict(arch="conv:4:3,pool:2,dense:10", bits=4),
                                dict(data="moons", arch="dense:6,dense:2", bits=8, batch=5)])
def test_every_word_read_buffer_and_row_sits_on_a_word_on_the_m0plus(tmp_path, kw):
    fxtrain.train(epochs=1, out=tmp_path / "run", **kw)
    fxtrain.export(tmp_path / "run", tmp_path / "fw", train_step=True)
    elf = cross_build(tmp_path / "fw", "fx", 1, False, load_target("cortex-m0plus"), tmp_path / "prog.elf")
    syms = _symbols(elf)
    names = [f"fx_buf_{n}" for n in WORD_READ] + [s for s in syms if re.fullmatch(r"fx_buf_act\d+", s)]
    # each buffer's address is a multiple of 4 in the linked image, so every row stride below lands on words
    assert {n: syms[n] % 4 for n in names} == {n: 0 for n in names}
    header = (tmp_path / "fw" / "fx_train.h").read_text()
    rows = re.findall(r"\.w_byte = (\d+)u, \.row_bytes = (\d+)u", header)
    # every layer's weights start on a word and every weight row is a whole number of words
    assert rows and all(int(b) % 4 == 0 and int(r) % 4 == 0 for b, r in rows)
    # the error ping-pong's second half starts on a word too (its halves are padded)
    assert "fx_buf_err[2 * FX_PAD4(" in header
