"""The pmaddwd list sweep against exact integer arithmetic, for every variant this CPU can run."""
import numpy as np
import pytest
from numba import njit

from fxtrain.engine import simd

VARIANTS = [(lanes, name) for feature, lanes, name in simd._TARGETS
            if simd._choose("+" + feature)[0] and f"+{feature}" in simd._features()] + [(0, None)]


def words(rng, n, lo, hi):
    """int32 words whose two int16 halves are uniform in [lo, hi]."""
    a, b = rng.integers(lo, hi + 1, n), rng.integers(lo, hi + 1, n)
    return ((b << 16) | (a & 0xFFFF)).astype(np.uint32).view(np.int32)


def pmadd(w, m):
    """Exact lo*lo + hi*hi of pair words ``w`` and multiplier word ``m`` (int64)."""
    def halves(v):
        v = np.asarray(v, np.int64)
        return (v << 48) >> 48, v >> 16
    (wl, wh), (ml, mh) = halves(w), halves(m)
    return wl * ml + wh * mh


@pytest.mark.parametrize("lanes,name", VARIANTS)
@pytest.mark.parametrize("n", [0, 7, 16, 77, 200])
def test_list_sweep_adds_exact_pair_products_over_whole_registers(lanes, name, n):
    sweep = simd.make_list_sweep(lanes, name)
    run = njit(lambda c, P, n, pairs, cnt: sweep(c, P, n, pairs, cnt))
    rng = np.random.default_rng(n + lanes)
    P = words(rng, 9 * n, -32767, 32767)  # 9 rows of n pair words: int16 weights
    qs = np.array([4, 0, 8, 3, 4], np.int32)  # any order, a row twice
    mult = words(rng, 5, -128, 127)
    pairs = np.stack([qs, mult], axis=1).ravel().astype(np.int32)
    start = rng.integers(-2**20, 2**20, n).astype(np.int32)
    c = start.copy()
    done = run(c, P, n, pairs, 5)
    expect = start + sum(pmadd(P[q * n:(q + 1) * n], w) for q, w in zip(qs, mult))
    # the largest multiple of the lane count, each lane summed exactly, nothing past it touched
    assert done == (n // lanes * lanes if lanes else 0)
    assert np.array_equal(c[:done], expect[:done]) and np.array_equal(c[done:], start[done:])


def test_int64_sums_are_left_to_the_plain_loop():
    run = njit(lambda c, P, n, pairs, cnt: simd.pmadd_list(c, P, n, pairs, cnt))
    c = np.zeros(32, np.int64)
    assert run(c, np.ones(32, np.int32), 32, np.zeros(2, np.int32), 1) == 0 and not c.any()


def test_the_choice_follows_the_cpu_features():
    assert simd._choose("+avx2,+avx512bw,+sse4.1") == (16, "llvm.x86.avx512.pmaddw.d.512")
    assert simd._choose("+avx2,-avx512bw") == (8, "llvm.x86.avx2.pmadd.wd")
    assert simd._choose("-avx2,+neon") == (0, None)
