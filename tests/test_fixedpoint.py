"""Shift rounding, saturation and the generator against exact rational arithmetic."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fxtrain.engine.draws import CHUNK, draw_buffer, fill_draws
from fxtrain.engine.fixedpoint import (
    EXP2_NEG_Q15, bitlen, floor_shift, new_rng, round_shift, sat, sr_shift, xorshift32,
)
from fxtrain.engine.numbers import LOG2E_Q15, splitmix32_seed

xs = st.integers(min_value=-(2**40), max_value=2**40)
shifts = st.integers(min_value=0, max_value=32)
draws = st.integers(min_value=0, max_value=2**32 - 1)


@given(xs, shifts)
def test_floor_shift_is_floor_of_exact_quotient(x, s):
    assert floor_shift(x, s) == math.floor(Fraction(x, 2**s))


@given(xs, st.integers(min_value=1, max_value=32))
def test_round_shift_is_round_half_up(x, s):
    # round-half-up: floor(q + 1/2), also for negative halves (-0.5 -> 0), like NN_ROUND
    assert round_shift(x, s) == math.floor(Fraction(x, 2**s) + Fraction(1, 2))


@given(xs, st.integers(min_value=-8, max_value=0))
def test_negative_shift_is_exact_left_shift(x, s):
    assert round_shift(x, s) == x * 2**-s == sr_shift(x, s, 12345) == floor_shift(x, s)


@given(xs, shifts, draws)
def test_sr_shift_matches_its_definition(x, s, r):
    # (x + (r mod 2^s)) / 2^s, floored: rounds up exactly when r's low bits reach the dropped fraction
    expect = math.floor(Fraction(x + (r % 2**s), 2**s))
    assert sr_shift(x, s, r) == expect
    assert sr_shift(x, s, r) in (math.floor(Fraction(x, 2**s)), math.ceil(Fraction(x, 2**s)))


@given(st.integers(min_value=-(2**62), max_value=2**62), st.integers(min_value=-200, max_value=0),
       st.integers(min_value=0, max_value=200))
def test_saturation_stays_in_range(x, lo, hi):
    y = sat(x, lo, hi)
    assert lo <= y <= hi
    assert y == x or (x < lo and y == lo) or (x > hi and y == hi)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_bitlen_matches_python(x):
    assert bitlen(x) == abs(x).bit_length()


def _xorshift_ref(x):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def test_generator_matches_plain_python_reference():
    # the jitted generator equals a from-scratch Python xorshift32 for 10,000 steps
    for seed in (0, 1, 42, 2**32 - 1):
        rng, x = new_rng(seed), splitmix32_seed(seed)
        for _ in range(10_000):
            x = _xorshift_ref(x)
            assert xorshift32(rng) == x


def test_seeds_give_nonzero_distinct_states():
    states = {splitmix32_seed(s) for s in range(1000)}
    assert len(states) == 1000 and 0 not in states


def test_exp2_table_is_rounded_power_of_two():
    for f, v in enumerate(EXP2_NEG_Q15):
        assert v == round(2 ** (-f / 256) * 2**15)
    assert EXP2_NEG_Q15[0] == 32768 and LOG2E_Q15 == 47274


@pytest.mark.parametrize("m", [0, 1, 31, 32, 33, 64, 200, 1023, 1024, 1025, 1088, 3000])
def test_bulk_draws_are_the_single_draws(m):
    single = new_rng(m)
    expect = [int(xorshift32(single)) for _ in range(m)]
    bulk, out = new_rng(m), np.zeros(m + 1, np.uint32)
    fill_draws(bulk, out, m, draw_buffer()[CHUNK:])
    # the same values in the same order, nothing written past m, and the state where m draws leave it
    assert out[:m].tolist() == expect and out[m] == 0 and int(bulk[0]) == int(single[0])
