"""The list sweeps (pmaddwd on pairs, vpdpbusd or pmaddubsw on quads) against exact integer
arithmetic, for every variant this CPU can run, and the plain-loop fallback."""
import numpy as np
import pytest
from numba import njit

from fxtrain.engine import simd

HAVE = simd._features()
PAIRS = [(lanes, product) for need, lanes, product in simd.PAIR_TARGETS if all(f"+{f}" in HAVE for f in need)]
QUADS = [(lanes, product) for need, lanes, product in simd.QUAD_TARGETS if all(f"+{f}" in HAVE for f in need)]


def words(rng, n, lo, hi, per):
    """int32 words of ``per`` fields, each uniform in [lo, hi]."""
    bits = 32 // per
    out = np.zeros(n, np.int64)
    for b in range(per):
        out |= (rng.integers(lo, hi + 1, n) & ((1 << bits) - 1)) << (bits * b)
    return out.astype(np.uint32).view(np.int32)


def fields(w, per):
    """The signed fields of words ``w`` (int64 [..., per])."""
    bits, w = 32 // per, np.asarray(w, np.int64)
    return np.stack([((w >> (bits * b)) << (64 - bits)) >> (64 - bits) for b in range(per)], axis=-1)


@pytest.mark.parametrize("per,lanes,product", [(2, lanes, p) for lanes, p in PAIRS]
                         + [(4, lanes, p) for lanes, p in QUADS] + [(2, 0, None), (4, 0, None)])
@pytest.mark.parametrize("n", [0, 7, 16, 48, 77, 120, 200, 256])
def test_list_sweep_adds_exact_products_over_whole_registers(per, lanes, product, n):
    sweep = simd.make_list_sweep(lanes, product)
    run = njit(lambda c, P, n, items, cnt, init, start: sweep(c, P, n, items, cnt, init, start))
    rng = np.random.default_rng(n + lanes + per)
    # pairs: int16 weights by int8 values; quads: int8 weights (-128 for errors) by bytes 0..127
    P = words(rng, 9 * n, -32767 if per == 2 else -128, 32767 if per == 2 else 127, per)
    qs = np.array([4, 0, 8, 3, 4], np.int32)  # any order, a row twice
    mult = words(rng, 5, -128 if per == 2 else 0, 127, per)
    items = np.stack([qs, mult], axis=1).ravel().astype(np.int32)
    start, init = rng.integers(-2**20, 2**20, (2, n)).astype(np.int32)
    sums = sum((fields(P[q * n:(q + 1) * n], per) * fields(w, per)).sum(-1) for q, w in zip(qs, mult))
    for mode, base in ((simd.START_SUMS, start), (simd.START_INIT, init), (simd.START_ZERO, 0 * start)):
        c = start.copy()
        done = run(c, P, n, items, 5, init, mode)
        # every whole register (UNROLL at a time, then one at a time), each lane summed exactly from its
        # start, nothing past them touched
        assert done == (n // lanes * lanes if lanes else 0)
        assert np.array_equal(c[:done], (base + sums)[:done]) and np.array_equal(c[done:], start[done:])


def test_int64_sums_are_left_to_the_plain_loop():
    for sweep in (simd.pmadd_list, simd.quad_list):
        run = njit(lambda c, P, n, items, cnt, init: sweep(c, P, n, items, cnt, init, simd.START_SUMS))
        c = np.zeros(32, np.int64)
        assert run(c, np.ones(32, np.int32), 32, np.zeros(2, np.int32), 1, c[:0]) == 0 and not c.any()


def test_the_choice_follows_the_cpu_features():
    pick = lambda targets, f: simd.choose(targets, f)[0]  # noqa: E731
    assert pick(simd.PAIR_TARGETS, "+avx2,+avx512bw") == 16 and pick(simd.PAIR_TARGETS, "+avx2,-avx512bw") == 8
    assert simd.choose(simd.QUAD_TARGETS, "+avx512bw,+avx512vnni")[1] is simd._quads_vnni
    assert pick(simd.QUAD_TARGETS, "+avx512bw") == 16 and pick(simd.QUAD_TARGETS, "+avx2") == 8
    assert pick(simd.PAIR_TARGETS, "-avx2,+neon") == 0 == pick(simd.QUAD_TARGETS, "+neon")
