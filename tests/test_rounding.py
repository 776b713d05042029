"""The "tflm" rounding rule equals TFLM's two-step requantisation, in Python and in C.

TFLM's path for the scale 2**-s is written from its definition in
``rounding.tflm_requant_reference``; the one-line rule is ``rounding.round_shift_tflm``.
Both are ``q + g(r)`` for ``x = q * 2**s + r`` with ``g`` a 0/1 step in ``r`` that
depends on the sign region (docs/design.md), so they are equal everywhere once they
agree on every ``r`` around each step, at both ends of the range and across zero,
which the boundary set below holds, at every shift. The full 2**32 sweep is
``benchmarks/bench_tflm_rounding.py``.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c_helpers import compile_and_run
from fxtrain.engine.numbers import INT32_MAX, INT32_MIN, ROUNDING_MODES
from fxtrain.errors import ConfigError
from fxtrain.firmware.rounding import (TFLM_S0_LIMIT, check_rounding, round_shift_cmsis, round_shift_tflm,
                                       tflm_requant_reference)

SHIFTS = range(32)
WINDOW = 1 << 20  # every residue mod 2**s, on both sides of zero, for s <= 20


def boundary_set(s):
    """int32 accumulators at every step of both rules for shift s, in both sign regions, and the int32 ends."""
    lo, hi = (-(TFLM_S0_LIMIT - 1), TFLM_S0_LIMIT - 1) if s == 0 else (INT32_MIN, INT32_MAX)
    half, full = (1 << s) >> 1, 1 << s
    residues = {r for c in (0, half, full) for r in range(c - 4, c + 5) if 0 <= r < full}
    quotients = {-3, -2, -1, 0, 1, 2, lo >> s, (lo >> s) + 1, hi >> s, (hi >> s) - 1}
    xs = {q * full + r for q in quotients for r in residues}
    xs |= {lo + k for k in range(9)} | {hi - k for k in range(9)} | set(range(-9, 10))
    return np.array(sorted(x for x in xs if lo <= x <= hi), dtype=np.int64)


@pytest.mark.parametrize("s", SHIFTS)
def test_rule_equals_tflm_on_a_contiguous_window(s):
    x = np.arange(-WINDOW, WINDOW + 1, dtype=np.int64)
    # every accumulator in [-2^20, 2^20]: all residues of both signs for s <= 20
    assert np.array_equal(round_shift_tflm(x, s), tflm_requant_reference(x, s))


@pytest.mark.parametrize("s", SHIFTS)
def test_rule_equals_tflm_on_every_boundary_class(s):
    x = boundary_set(s)
    # ties, near-ties, the wrap of the halving, the sign change and the int32 ends, at shift s
    assert np.array_equal(round_shift_tflm(x, s), tflm_requant_reference(x, s))


@given(st.integers(INT32_MIN, INT32_MAX), st.integers(1, 31))
def test_rule_equals_tflm_anywhere(x, s):
    # any int32 accumulator, any shift from 1 (s = 0 is bounded by TFLM's int32 doubling)
    assert int(round_shift_tflm(x, s)) == int(tflm_requant_reference(np.array([x]), s)[0])


def test_tflm_is_neither_half_up_nor_half_away():
    x = np.array([1, 3, 5, -6, -5, -2], dtype=np.int64)  # / 4: 0.25, 0.75, 1.25, -1.5, -1.25, -0.5
    half_away = [0, 1, 1, -2, -1, -1]
    # TFLM's first halving lifts 0.25 and 1.25 (a quarter short of a tie) before the tie rule
    assert round_shift_tflm(x, 2).tolist() == [1, 1, 2, -2, -1, -1] != half_away
    assert round_shift_cmsis(x, 2).tolist() == [0, 1, 1, -1, -1, 0]
    assert tflm_requant_reference(x, 2).tolist() == round_shift_tflm(x, 2).tolist()


def test_s0_beyond_tflm_range_is_refused():
    # TFLM doubles x in int32 when s = 0; the reference refuses what would wrap
    with pytest.raises(ValueError, match="2\\*\\*30"):
        tflm_requant_reference(np.array([TFLM_S0_LIMIT]), 0)


def test_unknown_rounding_is_refused():
    assert check_rounding("tflm") == "tflm"
    with pytest.raises(ConfigError, match="cmsis, tflm"):
        check_rounding("nearest")


def _c_program(cases):
    lines = [f"    {{{x}LL, {s}}}," for x, s in cases]
    return ("#include <stdio.h>\n#include \"fx_runtime.h\"\n"
            "static const struct { long long x; int s; } cases[] = {\n" + "\n".join(lines) + "\n};\n"
            "int main(void)\n{\n    unsigned i;\n"
            "    printf(\"modes %d %d\\n\", FX_ROUNDING_CMSIS, FX_ROUNDING_TFLM);\n"
            "    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {\n"
            "        int32_t x = (int32_t)cases[i].x;\n"
            "        uint32_t s = (uint32_t)cases[i].s;\n"
            "        printf(\"%lld %d %lld %d %d\\n\", (long long)x, cases[i].s,\n"
            "               (long long)fx_round_shift_tflm(x, cases[i].s), (int)fx_requant_r(x, s, FX_ROUNDING_TFLM),\n"
            "               x > -(1L << 30) && x < (1L << 30)\n"
            "                   ? (int)fx_requant_r(x + fx_acc_init(0, 0u, s), s, FX_ROUNDING_CMSIS) : 0);\n"
            "    }\n    return 0;\n}\n")


def test_c_rule_equals_python(tmp_path):
    # x + NN_ROUND(s) would leave int32 near its ends, so the CMSIS column takes |x| < 2^30 only
    cases = [(int(x), s) for s in range(31) for x in boundary_set(s)[::3]]
    lines = compile_and_run(_c_program(cases), tmp_path, extra=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    # the shared constants name the same rules on both sides
    assert lines[0] == f"modes {ROUNDING_MODES.index('cmsis')} {ROUNDING_MODES.index('tflm')}"
    want = []
    for x, s in cases:
        t = int(round_shift_tflm(x, s))
        c = int(round_shift_cmsis(x, s)) if abs(x) < 1 << 30 else None
        want.append((x, s, t, max(-128, min(127, t)), c))
    got = [tuple(int(v) for v in ln.split()) for ln in lines[1:]]
    # the C rule, unsaturated and saturated, equals the Python rule on every case
    assert [g[:4] for g in got] == [w[:4] for w in want]
    # the CMSIS path through fx_requant_r is unchanged
    assert all(g[4] == max(-128, min(127, w[4])) for g, w in zip(got, want) if w[4] is not None)
