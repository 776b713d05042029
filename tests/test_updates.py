"""Each update rule against exact rational arithmetic, and the learning rate's exact form.

The generator stream is replayed in Python (one draw per weight, in order), so every
expected value below is computed without the kernels' own rounding helpers.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from numba import njit

from fxtrain.engine.bulk import update_momentum_bulk, update_weights_bulk
from fxtrain.engine.draws import draw_buffer
from fxtrain.engine.fixedpoint import new_rng, sr_shift, xorshift32
from fxtrain.engine.numbers import qmax
from fxtrain.engine.updates import BC, R, SR, update_bc, update_bias_int, update_weights_int, \
    update_weights_momentum
from fxtrain.errors import ConfigError
from fxtrain.training.config import lr_text, parse_lr, step_fixed


SERIAL = {"update": update_weights_int, "momentum": update_weights_momentum}
BULK = {"update": lambda *a: update_weights_bulk(*a, draw_buffer()),
        "momentum": lambda *a: update_momentum_bulk(*a, draw_buffer())}


@pytest.fixture(params=["serial", "bulk"])
def impl(request):
    """Both implementations of the weight updates: one draw at a time, and draws in bulk."""
    return SERIAL if request.param == "serial" else BULK


def draws(seed, n):
    """The next ``n`` generator values after ``new_rng(seed)``, from Python."""
    rng = new_rng(seed)
    return [int(xorshift32(rng)) for _ in range(n)]


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


def exact_step(method, x, s, r):
    """x / 2**s rounded by the method: SR adds r mod 2**s before flooring, R rounds half up."""
    if method == SR:
        return math.floor(Fraction(x + (r % 2**s), 2**s))
    return math.floor(Fraction(x, 2**s) + Fraction(1, 2))


@pytest.mark.parametrize("method", [SR, R])
@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_int_update_equals_exact_rounding(method, bits, impl):
    update = impl["update"]
    rng_np = np.random.default_rng(bits * 10 + method)
    qm, n = qmax(bits), 2500  # more than one chunk of draws (draws.CHUNK)
    w = rng_np.integers(-qm, qm + 1, n).astype(np.int8 if bits <= 8 else np.int16)
    g = rng_np.integers(-(2**20), 2**20, n).astype(np.int32)
    m, s = 3, 14
    expect = [clamp(int(wi) - exact_step(method, m * int(gi), s, r), -qm, qm)
              for wi, gi, r in zip(w, g, draws(5, n))]
    out = w.copy()
    clipped = update(method, bits, qm, out, g, m, s, new_rng(5))
    # every weight equals its exact value, and the clip count is the number that left the range
    assert out.tolist() == expect
    unclipped = [int(wi) - exact_step(method, m * int(gi), s, r) for wi, gi, r in zip(w, g, draws(5, n))]
    assert clipped == sum(abs(v) > qm for v in unclipped)


@pytest.mark.parametrize("method", [SR, R])
def test_binary_update_equals_exact_rule(method, impl):
    update = impl["update"]
    rng_np = np.random.default_rng(11)
    n, m, s = 1100, 1, 20
    w = rng_np.choice(np.array([-1, 1], np.int8), n)
    g = rng_np.integers(-(2**21), 2**21, n).astype(np.int32)
    one = 2**16
    expect = []
    for wi, gi, r in zip(w, g, draws(9, n)):
        u = math.floor(Fraction(m * int(gi), 2**(s - 16)) + Fraction(1, 2))  # u in 16 fraction bits
        v = clamp(int(wi) * one - u, -one, one)
        # sr: +1 with probability (v + 1) / 2, decided by the draw's low 17 bits; r: the sign
        expect.append(2 * ((v + one + r % 2**17) >= 2**17) - 1 if method == SR else (1 if v >= 0 else -1))
    out = w.copy()
    update(method, 1, 1, out, g, m, s, new_rng(9))
    assert out.tolist() == expect


def test_momentum_update_equals_exact_rule(impl):
    momentum = impl["momentum"]
    rng_np = np.random.default_rng(3)
    n, qm, m, s, j = 1300, 127, 5, 12, 3  # two draws a weight: three chunks of draws
    w = rng_np.integers(-qm, qm + 1, n).astype(np.int8)
    vel = rng_np.integers(-3000, 3000, n).astype(np.int16)
    g = rng_np.integers(-(2**18), 2**18, n).astype(np.int32)
    r = iter(draws(4, 2 * n))
    exp_w, exp_v = [], []
    for wi, vi, gi in zip(w, vel, g):
        decay = exact_step(R, int(vi), j, 0)
        v = clamp(int(vi) - decay + exact_step(SR, m * int(gi), s - 8, next(r)), -32768, 32767)
        exp_v.append(v)
        exp_w.append(clamp(int(wi) - exact_step(SR, v, 8, next(r)), -qm, qm))  # two draws per weight
    out_w, out_v = w.copy(), vel.copy()
    momentum(SR, 8, qm, out_w, out_v, g, m, s, j, new_rng(4))
    assert out_v.tolist() == exp_v and out_w.tolist() == exp_w


@pytest.mark.parametrize("method", [SR, R, BC])
def test_bias_update_equals_exact_rounding(method):
    rng_np = np.random.default_rng(21)
    b = rng_np.integers(-(2**20), 2**20, 64).astype(np.int32)
    g = rng_np.integers(-5000, 5000, 64).astype(np.int32)
    rule = SR if method == SR else R  # bc's biases round to nearest, like r's
    expect = [int(bi) - exact_step(rule, 7 * int(gi), 6, r) for bi, gi, r in zip(b, g, draws(2, 64))]
    out = b.copy()
    update_bias_int(method, out, g, 7, 6, new_rng(2))
    assert out.tolist() == expect


def test_bc_update_equals_float32_in_the_same_order():
    rng_np = np.random.default_rng(8)
    n, qm, e_w = 500, 7, -5
    shadow = (rng_np.uniform(-qm, qm, n) * 2.0**e_w).astype(np.float32)
    g = rng_np.integers(-(2**15), 2**15, n).astype(np.int32)
    step = np.float32(2.0**-14)
    lim = np.float32(qm) * np.float32(2.0**e_w)
    # numpy float32, written apart from the kernel: d = step*g; v = clip(shadow - d); w = floor(v/2^e_w + 1/2)
    v = np.clip(shadow - step * g.astype(np.float32), -lim, lim)
    expect_w = np.clip(np.floor(v * np.float32(2.0**-e_w) + np.float32(0.5)), -qm, qm).astype(np.int8)
    w, sh = np.zeros(n, np.int8), shadow.copy()
    clipped = update_bc(4, qm, w, sh, g, step, e_w, np.zeros(0, np.float32), np.float32(0))
    assert np.array_equal(sh, v) and np.array_equal(w, expect_w)  # bit for bit, float32 included
    assert clipped == int(np.sum(np.abs(shadow - step * g.astype(np.float32)) > lim))


@njit(cache=True)
def _sr_mean_numerator(x, s, n, rng):
    total = 0
    for _ in range(n):
        total += sr_shift(x, s, xorshift32(rng))
    return total


# the hard cases named (a step's tiny fraction, both signs, shifts past 32 bits), and random ones
@given(st.integers(min_value=-(2**41), max_value=2**41), st.integers(min_value=1, max_value=36))
@example(1, 12)
@example(2047, 12)
@example(4095, 12)
@example(-1, 12)
@example(-4097, 12)
@example(3, 2)
@example(5, 1)
@example(-(2**40) + 123457, 36)
@example(2**33 + 7, 34)
@settings(max_examples=40, deadline=None)
def test_sr_shift_mean_is_unbiased_to_half_a_percent_of_a_step(x, s):
    n = 250_000
    mean = Fraction(int(_sr_mean_numerator(x, s, n, new_rng(x % 1000 + s))), n)
    exact = Fraction(x, 2**s) if s <= 32 else Fraction(x >> (s - 32), 2**32)  # past 32 bits: floor first
    # each draw is floor or ceil (sd <= 1/2): five standard errors are 0.005 of a step at this n
    bound = Fraction(5, 2) / math.isqrt(n)
    assert bound == Fraction(5, 1000) and abs(mean - exact) <= bound


@given(st.integers(min_value=1, max_value=2**16 - 1), st.integers(min_value=-20, max_value=40))
@settings(max_examples=200)
def test_lr_text_reads_back_exactly(m, k):
    # every m*2^-k prints as text that parses to the same (m, k) after removing common factors of 2
    mm, kk = parse_lr(lr_text(m, k))
    assert Fraction(mm) / Fraction(2) ** kk == Fraction(m) / Fraction(2) ** k


@pytest.mark.parametrize("text", ["0.1", "65537", "1e-300", "0.3", "1/3", "100000.5"])
def test_refused_lr_suggests_values_accepted_as_printed(text):
    with pytest.raises(ConfigError) as exc:
        parse_lr(text)
    hints = str(exc.value).split("nearest usable: ")[1].split(" or ")
    lo, hi = [Fraction(m) / Fraction(2) ** k for m, k in map(parse_lr, hints)]  # each hint parses as printed
    step, pow2 = hi - lo, lambda v: v & (v - 1) == 0
    # the hints bracket the request and are neighbours on the grid of 16-bit mantissas
    assert lo < Fraction(text) < hi and pow2(step.numerator) and pow2(step.denominator)
    assert (lo / step).denominator == 1 and 2**15 <= lo / step < 2**16


@pytest.mark.parametrize("batch", [1, 2, 16, 48, 100, 2048])
def test_step_is_alpha_over_batch(batch):
    m, k = parse_lr("0.0625")
    sm, sk = step_fixed(m, k, batch)
    exact = Fraction(m, 2**k) / batch
    got = Fraction(sm, 2**sk)
    if batch & (batch - 1) == 0:
        assert got == exact and sm == m  # a power-of-two batch is an exact shift
    else:
        assert abs(got - exact) <= exact * Fraction(1, 2**24) and sm < 2**25  # a 24-bit mantissa
    assert step_fixed(1, 4, 48)[0] == 11_184_811
