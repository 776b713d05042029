"""The C copies in fx_runtime.h equal the Python side: generator, exp2 table, shift rounding."""
import re
import shutil

import pytest

from c_helpers import RUNTIME_DIR, compile_and_run
from fxtrain.engine import fixedpoint as fp, numbers
from fxtrain.firmware.codegen import assert_no_float

SEEDS = [0, 1, 2, 42, 2**31, 2**32 - 1]
GRID_SEED = 7
BIG_X = [-(2**40) - 5, -12345678901, -(2**33), -1, 0, 1, 2**33 + 7, 2**40 + 3]
RUNTIME_TEXT = (RUNTIME_DIR / "fx_runtime.h").read_text()

C_PROGRAM = r"""
#include <stdio.h>
#include "fx_runtime.h"

int main(void)
{
    static const uint32_t seeds[] = {0u, 1u, 2u, 42u, 2147483648u, 4294967295u};
    static const int64_t big[] = {-1099511627781LL, -12345678901LL, -8589934592LL, -1, 0, 1,
                                  8589934599LL, 1099511627779LL};
    uint32_t state, i;
    int64_t x;
    int s, j;
    for (i = 0; i < 6u; i++) printf("seed %lu %lu\n", (unsigned long)seeds[i], (unsigned long)fx_seed(seeds[i]));
    state = fx_seed(0u);
    for (i = 0; i < 1000u; i++) printf("xs %lu\n", (unsigned long)fx_xorshift32(&state));
    for (i = 0; i < 256u; i++) printf("exp2 %ld\n", (long)fx_exp2_neg_q15((uint8_t)i));
    printf("log2e %ld\n", (long)FX_LOG2E_Q15);
    state = fx_seed(7u);
    for (x = -300; x <= 300; x++) {
        for (s = -2; s <= 9; s++) {
            uint32_t r = fx_xorshift32(&state);
            printf("sh %lld %d %lld %lld %lld\n", (long long)x, s, (long long)fx_round_shift(x, s),
                   (long long)fx_sr_shift(x, s, r), (long long)fx_sat(x, -128, 127));
        }
    }
    for (j = 0; j < 8; j++) {
        for (s = 28; s <= 40; s++) {
            uint32_t r = fx_xorshift32(&state);
            printf("big %lld %d %lld %lld %lld\n", (long long)big[j], s, (long long)fx_round_shift(big[j], s),
                   (long long)fx_sr_shift(big[j], s, r), (long long)fx_floor_shift(big[j], s));
        }
    }
    return 0;
}
"""


def python_lines():
    """What the C program must print, computed with engine/numbers.py and engine/fixedpoint.py."""
    out = [f"seed {s} {numbers.splitmix32_seed(s)}" for s in SEEDS]
    rng = fp.new_rng(0)
    out += [f"xs {fp.xorshift32(rng)}" for _ in range(1000)]
    out += [f"exp2 {int(v)}" for v in fp.EXP2_NEG_Q15]
    out.append(f"log2e {numbers.LOG2E_Q15}")
    rng = fp.new_rng(GRID_SEED)
    for x in range(-300, 301):
        for s in range(-2, 10):
            r = fp.xorshift32(rng)
            out.append(f"sh {x} {s} {fp.round_shift(x, s)} {fp.sr_shift(x, s, r)} {fp.sat(x, -128, 127)}")
    for x in BIG_X:
        for s in range(28, 41):
            r = fp.xorshift32(rng)
            out.append(f"big {x} {s} {fp.round_shift(x, s)} {fp.sr_shift(x, s, r)} {fp.floor_shift(x, s)}")
    return out


def test_c_constants_equal_python(tmp_path):
    # every seed, draw, table entry and rounding result is the same integer in C and Python
    assert compile_and_run(C_PROGRAM, tmp_path) == python_lines()


def test_c_constants_under_ubsan(tmp_path):
    # no signed overflow or negative shift hides behind "gcc happens to do it": UBSan aborts on any
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed: apt-get install gcc")
    try:
        lines = compile_and_run(C_PROGRAM, tmp_path, extra=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    except AssertionError as exc:
        if "cannot find -lubsan" in str(exc) or "libubsan" in str(exc):
            pytest.skip("libubsan not installed")
        raise
    assert lines == python_lines()


def test_status_strings_follow_enum_order(tmp_path):
    body = re.search(r"typedef enum \{(.*?)\} fx_status;", RUNTIME_TEXT, re.S).group(1)
    names = re.findall(r"\b(FX_[A-Z_]+)\b", body)
    assert names[0] == "FX_OK" and names[-1] == "FX_STATUS_COUNT"
    src = ('#include <stdio.h>\n#include "fx_runtime.h"\nint main(void)\n{\n    int i;\n'
           "    for (i = 0; i <= (int)FX_STATUS_COUNT; i++) printf(\"%s\\n\", fx_status_str((fx_status)i));\n"
           "    return 0;\n}\n")
    lines = compile_and_run(src, tmp_path)
    # string i names enum constant i, so the table cannot drift out of order unnoticed
    assert [ln.split(":")[0] for ln in lines] == names[:-1] + ["FX_ERR_UNKNOWN"]


def test_runtime_header_has_no_float_anywhere():
    # strict: comments and strings too
    assert_no_float(RUNTIME_TEXT, "fx_runtime.h", comments=True)
    assert re.findall(r"#include <([^>]+)>", RUNTIME_TEXT) == ["stdint.h", "string.h"]
    assert "malloc" not in RUNTIME_TEXT


def test_runtime_header_compiles_strictly_and_as_cpp(tmp_path):
    src = ('#include "fx_runtime.h"\n#include "fx_runtime.h"\n'
           "int main(void)\n{\n    return fx_argmax_q7(0, 0u) != 0u;\n}\n")
    # included twice (guard), with conversion warnings as errors
    assert compile_and_run(src, tmp_path, extra=("-Wconversion", "-Wsign-conversion", "-Wshadow")) == []
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    cpp = tmp_path / "cpp"
    cpp.mkdir()
    # the extern "C" guard and the C99 code also build as C++
    assert compile_and_run(src, cpp, cc="g++", cflags=("-x", "c++", "-std=c++11", "-Wall", "-Wextra", "-Werror")) == []


def test_training_runtime_constants_equal_python(tmp_path):
    from fxtrain.engine import bounds, network, requant, updates
    src = ('#include <stdio.h>\n#define FX_ACC_WIDE 0\n#define FX_GRAD_WIDE 0\n#define FX_PERM_WIDE 0\n'
           '#define FX_METHOD 0\n#define FX_TRAIN_BC 0\n#define FX_SLOT 8\n#define FX_BITS 8\n#define FX_MOMENTUM 0\n'
           '#define FX_GRAD_CHUNK 64u\n#define FX_ACC_BYTES 4u\n'
           '#include "fx_train_runtime.h"\nint main(void)\n{\n'
           '    printf("%ld %d %d %d\\n", (long)FX_BIAS_TERM_LIMIT, FX_BINARY_FRAC_BITS, FX_MOM_FRAC_BITS, '
           'FX_SOFTMAX_EXPONENT);\n'
           '    printf("%u %u\\n", FX_FNV_OFFSET, FX_FNV_PRIME);\n'
           '    printf("%d %d %d %d %d %d\\n", FX_SAT_ACT, FX_SAT_ERR, FX_SAT_BIAS, FX_SAT_MOM, FX_SAT_WEIGHT, '
           'FX_N_SAT);\n'
           '    printf("%d %d %d %d %d %d\\n", FX_METHOD_SR, FX_METHOD_R, FX_METHOD_BC, FX_KIND_DENSE, FX_KIND_CONV, '
           'FX_KIND_POOL);\n    printf("%d\\n", FX_KIND_GAP);\n    return 0;\n}\n')
    from fxtrain.engine.epoch import SOFTMAX_EXPONENT
    want = [f"{bounds.BIAS_TERM_LIMIT} {updates.BINARY_FRAC_BITS} {updates.MOM_FRAC_BITS} {SOFTMAX_EXPONENT}",
            f"{numbers.FNV_OFFSET} {numbers.FNV_PRIME}",
            " ".join(map(str, [requant.SAT_ACT, requant.SAT_ERR, requant.SAT_BIAS, requant.SAT_MOM,
                               requant.SAT_WEIGHT, requant.N_SAT])),
            " ".join(map(str, [updates.SR, updates.R, updates.BC, network.DENSE, network.CONV, network.POOL])),
            str(network.GAP)]
    # every constant the training runtime shares with the engine has the same value on both sides
    assert compile_and_run(src, tmp_path) == want
