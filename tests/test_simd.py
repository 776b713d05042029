"""The pmaddwd sweeps against exact integer arithmetic, for every variant this CPU can run."""
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
@pytest.mark.parametrize("n", [0, 7, 16, 77])
def test_sweeps_add_exact_pair_products_over_whole_registers(lanes, name, n):
    one, two = simd.make_sweep(lanes, name, 1), simd.make_sweep(lanes, name, 2)
    sweep1 = njit(lambda c, pa, wa, n: one(c, pa, wa, n))
    sweep2 = njit(lambda c, pa, wa, pb, wb, n: two(c, pa, wa, pb, wb, n))
    rng = np.random.default_rng(n + lanes)
    pa, pb = words(rng, n, -32767, 32767), words(rng, n, -128, 127)  # int16 weights; int8 activations
    wa, wb = words(rng, 1, -128, 127)[0], words(rng, 1, -32767, 32767)[0]
    start = rng.integers(-2**20, 2**20, n).astype(np.int32)
    c1, c2 = start.copy(), start.copy()
    done1, done2 = sweep1(c1, pa, wa, n), sweep2(c2, pa, wa, pb, wb, n)
    # the largest multiple of the lane count, each lane summed exactly, and nothing past it touched
    assert done1 == done2 == (n // lanes * lanes if lanes else 0)
    assert np.array_equal(c1[:done1], start[:done1] + pmadd(pa, wa)[:done1])
    assert np.array_equal(c2[:done2], start[:done2] + pmadd(pa, wa)[:done2] + pmadd(pb, wb)[:done2])
    assert np.array_equal(c1[done1:], start[done1:]) and np.array_equal(c2[done2:], start[done2:])


def test_int64_sums_are_left_to_the_plain_loop():
    sweep1 = njit(lambda c, pa, wa, n: simd.pmadd_sweep1(c, pa, wa, n))
    c = np.zeros(32, np.int64)
    assert sweep1(c, np.ones(32, np.int32), np.int32(1), 32) == 0 and not c.any()


def test_the_choice_follows_the_cpu_features():
    assert simd._choose("+avx2,+avx512bw,+sse4.1") == (16, "llvm.x86.avx512.pmaddw.d.512")
    assert simd._choose("+avx2,-avx512bw") == (8, "llvm.x86.avx2.pmadd.wd")
    assert simd._choose("-avx2,+neon") == (0, None)
