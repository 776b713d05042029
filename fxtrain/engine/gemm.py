"""Integer matrix products for the engine's layers: int16 pairs in int32 words, and plain dots.

A layer's products are int8 by int8 (int16 weights above 8 bits), so two of them
always fit one int32 lane: x86's ``pmaddwd`` (AVX-512 VNNI ``vpdpwssd``) multiplies
two int16 pairs and adds them in one instruction. LLVM emits it for
:func:`_pmadd` when one operand is a word holding two int16 halves and the other a
pair of scalars, so one operand matrix is first packed into such words
(:func:`pack_pairs`): ``P[q, j]`` holds ``B[2q, j]`` in its low half and
``B[2q + 1, j]`` in its high half. :func:`pair_gemm` then sweeps contiguous rows of
``P`` for every non-zero pair of the other operand; pairs that are both zero (ReLU
outputs, blank pixels, masked errors) are skipped, which is where sparse layers gain.
For narrow outputs, where a sweep would be a few lanes long, :func:`dot_gemm` takes
dot products along the contiguous reduction axis instead.

Every sum is exact: a pair's two products fit int32, and the running sums are kept
in the output's own dtype (int32 or int64, as ``engine.bounds`` planned), cast back
after each addition as C does. Integer addition is associative, so the order of the
terms cannot change a result. Matrices are flat arrays addressed with offsets and
strides; nothing here allocates.
"""
import numpy as np
from numba import njit

from .simd import pmadd_list

PAIR_MIN_WIDTH = 16  # narrower outputs use dot products: one AVX-512 register holds 16 int32
# Blocks of P and of C, in words (16 KiB each): a block of P stays in L1 while each row of
# a block of C sweeps it, and the block of C stays in cache until every block of P is done.
BLOCK_WORDS = 4096


@njit(cache=True, inline='always')
def _word(lo, hi):
    """Two int16 values in one int32 word: ``lo`` in bits 0-15, ``hi`` in bits 16-31."""
    return np.int32((np.int32(hi) << 16) | (np.int32(lo) & 0xFFFF))


@njit(cache=True, inline='always')
def _pmadd(word, lo, hi):
    """lo * low half of ``word`` + hi * its high half, in int32 (exact for int16 halves, |lo|, |hi| <= 128)."""
    return np.int32(lo * np.int32(np.int32(word << 16) >> 16)) + np.int32(hi * np.int32(word >> 16))


@njit(cache=True)
def pack_pairs(src, off, k, n, rs, cs, out):
    """Pack the k x n matrix ``B[r, j] = src[off + r*rs + j*cs]`` into pair words along r.

    ``out[q*n + j]`` (int32) holds ``B[2q, j]`` and ``B[2q + 1, j]`` (0 past row k - 1).
    Returns the number of words written, ``ceil(k / 2) * n``. Rows are read as slices
    (strided where cs > 1), which keeps numba's negative-index check out of the loop.
    """
    span = (n - 1) * cs + 1
    for q in range(k // 2):
        a, b = off + 2 * q * rs, off + (2 * q + 1) * rs
        o = out[q * n:(q + 1) * n]
        if cs == 1:  # contiguous rows: LLVM vectorises the loop
            lo, hi = src[a:a + n], src[b:b + n]
            for j in range(n):
                o[j] = _word(lo[j], hi[j])
        else:
            lo, hi = src[a:a + span:cs], src[b:b + span:cs]
            for j in range(n):
                o[j] = _word(lo[j], hi[j])
    if k % 2:
        a = off + (k - 1) * rs
        lo, o = src[a:a + span:cs], out[(k // 2) * n:(k // 2 + 1) * n]
        for j in range(n):
            o[j] = _word(lo[j], 0)
    return (k + 1) // 2 * n


@njit(cache=True, inline='always')
def _nonzero_pairs(A, base, ks, k, q0, q1, pairs):
    """List the pairs q in [q0, q1) of row ``A[base + i*ks]`` that are not both zero, as
    (q, word) in ``pairs``; returns how many. Branch-free: no misprediction on random zeros."""
    row = A[base:base + (k - 1) * ks + 1:ks]
    cnt = 0
    for q in range(q0, min(q1, k // 2)):
        lo, hi = row[2 * q], row[2 * q + 1]
        pairs[2 * cnt] = q
        pairs[2 * cnt + 1] = _word(lo, hi)
        cnt += (lo != 0) | (hi != 0)
    if q1 > k // 2:  # an odd k: the last pair's high half is 0
        lo = row[k - 1]
        pairs[2 * cnt] = k // 2
        pairs[2 * cnt + 1] = _word(lo, 0)
        cnt += lo != 0
    return cnt


@njit(cache=True)
def pair_gemm(P, n, A, a_off, ms, ks, k, m, C, c_off, pairs, init):
    """C[r, j] = init[j] + sum over i < k of A[r, i] * B[i, j], for r < m and j < n, B packed in ``P``.

    ``A[r, i] = A[a_off + r*ms + i*ks]`` (int8); ``C[r, j] = C[c_off + r*n + j]`` (int32 or
    int64), overwritten; ``init`` (C's dtype) holds n values, or none for zeros. The pairs
    of ``A`` that are both zero are skipped; ``pairs`` (int32, 2 * BLOCK_WORDS) lists the
    others. Rows and pairs go in blocks of about BLOCK_WORDS words of C and of P. Where
    :mod:`fxtrain.engine.simd` has a sweep for this CPU, it sums whole registers of a row
    over the list; this loop does the rest.
    """
    q_all = (k + 1) // 2
    block = max(1, BLOCK_WORDS // max(n, 1))
    for r0 in range(0, m, block):
        for r in range(r0, min(r0 + block, m)):  # set here, so it is in cache when summed
            c = C[c_off + r * n:c_off + (r + 1) * n]
            if init.shape[0]:
                for j in range(n):
                    c[j] = init[j]
            else:
                c[:] = 0
        for q0 in range(0, q_all, block):
            for r in range(r0, min(r0 + block, m)):
                c = C[c_off + r * n:c_off + (r + 1) * n]
                cnt = _nonzero_pairs(A, a_off + r * ms, ks, k, q0, min(q0 + block, q_all), pairs)
                done = pmadd_list(c, P, n, pairs, cnt)
                if done < n:
                    _rest_of_row(c, P, n, pairs, cnt, done)


@njit(cache=True, inline='always')
def _rest_of_row(c, P, n, pairs, cnt, start):
    """c[j] += sum over the listed pairs, for j in [start, n): two pairs per sweep of the row."""
    t = c.dtype.type
    for i in range(0, cnt - 1, 2):
        qa, wa, qb, wb = pairs[2 * i], pairs[2 * i + 1], pairs[2 * i + 2], pairs[2 * i + 3]
        la, ha = np.int32(np.int32(wa << 16) >> 16), np.int32(wa >> 16)
        lb, hb = np.int32(np.int32(wb << 16) >> 16), np.int32(wb >> 16)
        pa, pb = P[qa * n:(qa + 1) * n], P[qb * n:(qb + 1) * n]
        for j in range(start, n):
            c[j] = t(c[j] + (_pmadd(pa[j], la, ha) + _pmadd(pb[j], lb, hb)))
    if cnt % 2:
        q, word = pairs[2 * cnt - 2], pairs[2 * cnt - 1]
        lo, hi = np.int32(np.int32(word << 16) >> 16), np.int32(word >> 16)
        p = P[q * n:(q + 1) * n]
        for j in range(start, n):
            c[j] = t(c[j] + _pmadd(p[j], lo, hi))


@njit(cache=True)
def transpose(src, rows, cols, dst):
    """dst[c, r] = src[r, c] for a rows x cols matrix, four source rows at a time.

    Four loads and four contiguous stores per column: LLVM would otherwise vectorise
    the strided side into gathers, three times slower here.
    """
    r0 = 0
    while r0 + 4 <= rows:
        s0, s1, s2, s3 = src[r0 * cols:], src[(r0 + 1) * cols:], src[(r0 + 2) * cols:], src[(r0 + 3) * cols:]
        for c in range(cols):
            d = dst[c * rows + r0:]
            a, b, e, f = s0[c], s1[c], s2[c], s3[c]
            d[0] = a
            d[1] = b
            d[2] = e
            d[3] = f
        r0 += 4
    for r in range(r0, rows):
        s = src[r * cols:]
        for c in range(cols):
            dst[c * rows + r] = s[c]


@njit(cache=True)
def dot_gemm(A, a_off, k, m, B, b_off, n, C, c_off, init):
    """C[r, j] = init[j] + sum over i < k of A[a_off + r*k + i] * B[b_off + j*k + i]: rows of both
    are contiguous; ``init`` is n values of C's dtype, or empty for zeros.

    Used where the output is narrow (fewer than PAIR_MIN_WIDTH columns) or the reduction long.
    """
    t = C.dtype.type
    for r in range(m):
        a = A[a_off + r * k:a_off + (r + 1) * k]
        for j in range(n):
            b = B[b_off + j * k:b_off + (j + 1) * k]
            s = init[j] if init.shape[0] else t(0)
            for i in range(k):
                s = t(s + t(a[i]) * t(b[i]))
            C[c_off + r * n + j] = s
