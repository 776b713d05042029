"""Integer matrix products for the engine's layers: operands packed two or four to an int32 word.

A layer's products are int8 by int8 (int16 weights above 8 bits). One operand matrix is
packed into int32 words along the reduction axis (:func:`pack_words`): ``P[q, j]`` holds
``B[g*q + b, j]`` in field b, for g = PAIR (two int16 fields) or QUAD (four int8 fields).
:func:`word_gemm` then lists, for each row of the other operand, its groups of g values
that are not all zero (ReLU outputs, blank pixels and masked errors often are) and sums
the rows of ``P`` they select, each times its group: x86's ``pmaddwd`` does that for a
pair, ``vpdpbusd`` for a quad of unsigned by signed bytes (:mod:`fxtrain.engine.simd`).
Quads need the listed operand to be non-negative (0..127: ReLU outputs, non-negative
inputs) and int8 weights; pairs take anything. For narrow outputs, where a row would be
a few lanes long, :func:`dot_gemm` takes dot products along the reduction axis instead.

Integer arguments that are constants at a call site reach these functions as ``np.int64``
values, not literals: numba compiles a function once per literal value it is passed.

Every sum is exact: a group's products fit int32, and the running sums are kept in the
output's own dtype (int32 or int64, as ``engine.bounds`` planned), cast back after each
addition as C does. Integer addition is associative, so the order of the terms cannot
change a result. Matrices are flat arrays addressed with offsets and strides; nothing
here allocates.
"""
import numpy as np
from numba import njit

from .simd import START_INIT, START_SUMS, START_ZERO, pmadd_list, quad_list

PAIR, QUAD = 2, 4      # values per packed word
PAIR_MIN_WIDTH = 16    # narrower outputs use dot products: one AVX-512 register holds 16 int32
# Blocks of P and of C, in words (16 KiB each): a block of P stays in L1 while each row of
# a block of C sweeps it, and the block of C stays in cache until every block of P is done.
BLOCK_WORDS = 4096


@njit(cache=True, inline='always')
def _word(lo, hi):
    """Two int16 values in one int32 word: ``lo`` in bits 0-15, ``hi`` in bits 16-31."""
    return np.int32((np.int32(hi) << 16) | (np.int32(lo) & 0xFFFF))


@njit(cache=True, inline='always')
def _field(word, b, per):
    """Field b (signed) of a word of ``per`` fields."""
    bits = 32 // per
    return np.int32(np.int32(word << (32 - bits * (b + 1))) >> (32 - bits))


@njit(cache=True, inline='always')
def _quad(b0, b1, b2, b3):
    """Four int8 values in one int32 word, b0 in bits 0-7."""
    return np.int32((np.int32(b3) << 24) | ((np.int32(b2) & 0xFF) << 16) | ((np.int32(b1) & 0xFF) << 8)
                    | (np.int32(b0) & 0xFF))


@njit(cache=True, inline='always')
def _pack_rows(o, r0, r1, r2, r3, n, per):
    """o[j] = the word of r0[j], r1[j] (pairs) or of r0[j] .. r3[j] (quads; r2, r3 unread for pairs)."""
    if per == PAIR:
        for j in range(n):
            o[j] = _word(r0[j], r1[j])
    else:
        for j in range(n):
            o[j] = _quad(r0[j], r1[j], r2[j], r3[j])


@njit(cache=True)
def pack_words(src, k, n, rs, cs, out, per):
    """Pack the k x n matrix ``B[r, j] = src[r*rs + j*cs]`` into words of ``per`` (PAIR or QUAD)
    fields along r: ``out[q*n + j]`` (int32) holds ``B[per*q + b, j]`` in field b (0 past row k - 1).

    Returns the number of words written, ``ceil(k / per) * n``. Rows are read as slices,
    which keeps numba's negative-index check out of the loop: plain ones where cs is 1,
    so the loop vectorises (three to four times faster), strided ones otherwise.
    """
    span = (n - 1) * cs + 1
    full = k // per
    for q in range(full):
        o = out[q * n:(q + 1) * n]
        a = per * q * rs
        if cs == 1:  # contiguous rows: plain slices, which LLVM vectorises
            _pack_rows(o, src[a:a + n], src[a + rs:a + rs + n], src[a + 2 * rs:a + 2 * rs + n],
                       src[a + 3 * rs:a + 3 * rs + n], n, per)
        else:
            _pack_rows(o, src[a:a + span:cs], src[a + rs:a + rs + span:cs], src[a + 2 * rs:a + 2 * rs + span:cs],
                       src[a + 3 * rs:a + 3 * rs + span:cs], n, per)
    if k % per:  # the last group, part empty
        bits = 32 // per
        o = out[full * n:(full + 1) * n]
        o[:] = 0
        for b in range(k % per):
            row = src[(per * full + b) * rs:(per * full + b) * rs + span:cs]
            for j in range(n):
                o[j] |= np.int32((np.int32(row[j]) & ((1 << bits) - 1)) << (bits * b))
    return (k + per - 1) // per * n


@njit(cache=True, inline='always')
def _nonzero_words(A, base, ks, k, q0, q1, items, per):
    """List the groups q in [q0, q1) of ``per`` values of row ``A[base + i*ks]`` that are not all
    zero, as (q, word) in ``items``; returns how many. Branch-free: no misprediction on random zeros."""
    row = A[base:base + (k - 1) * ks + 1:ks]
    cnt = 0
    full = min(q1, k // per)
    for q in range(q0, full):
        if per == PAIR:
            word = _word(row[2 * q], row[2 * q + 1])
        else:
            word = _quad(row[4 * q], row[4 * q + 1], row[4 * q + 2], row[4 * q + 3])
        items[2 * cnt] = q
        items[2 * cnt + 1] = word
        cnt += word != 0
    if q1 > full:  # the last group, part empty
        bits, word = 32 // per, np.int32(0)
        for b in range(k - per * full):
            word |= np.int32((np.int32(row[per * full + b]) & ((1 << bits) - 1)) << (bits * b))
        items[2 * cnt] = full
        items[2 * cnt + 1] = word
        cnt += word != 0
    return cnt


@njit(cache=True)
def word_gemm(P, n, A, ms, ks, k, m, C, items, init, per):
    """C[r, j] = init[j] + sum over i < k of A[r, i] * B[i, j], for r < m and j < n, B packed in ``P``
    by :func:`pack_words` with ``per`` (PAIR, or QUAD where A is 0..127 and B int8).

    ``A[r, i] = A[r*ms + i*ks]`` (int8); ``C[r, j] = C[r*n + j]`` (int32 or
    int64), overwritten; ``init`` (C's dtype) holds n values, or none for zeros. Groups of
    ``A`` that are all zero are skipped; ``items`` (int32, 2 * BLOCK_WORDS) lists the
    others. Rows and groups go in blocks of about BLOCK_WORDS words of C and of P. Where
    :mod:`fxtrain.engine.simd` has a sweep for this CPU, it sums whole registers of a row
    over the list; the plain loops here do the rest.
    """
    q_all = (k + per - 1) // per
    block = max(1, BLOCK_WORDS // max(n, 1))
    zero = init.shape[0] == 0
    for r0 in range(0, m, block):
        for q0 in range(0, q_all, block):
            # the first block of a row starts its sums from init (or 0) instead of reading C
            start = START_SUMS if q0 else START_ZERO if zero else START_INIT
            for r in range(r0, min(r0 + block, m)):
                c = C[r * n:(r + 1) * n]
                cnt = _nonzero_words(A, r * ms, ks, k, q0, min(q0 + block, q_all), items, per)
                if per == QUAD:
                    done = quad_list(c, P, n, items, cnt, init, start)
                else:
                    done = pmadd_list(c, P, n, items, cnt, init, start)
                if done < n:
                    if q0 == 0:
                        for j in range(done, n):
                            c[j] = 0 if zero else init[j]
                    _rest_of_rows(c, P, n, items, cnt, done, per)


@njit(cache=True)
def _rest_of_rows(c, P, n, items, cnt, start, per):
    """c[j] += sum over the listed words, for j in [start, n): the part of a row the simd sweep
    left (all of it for int64 sums or without a sweep for this CPU)."""
    t = c.dtype.type
    for i in range(cnt):
        q, word = items[2 * i], items[2 * i + 1]
        p = P[q * n:(q + 1) * n]
        for j in range(start, n):
            s = np.int32(0)
            for b in range(per):
                s += _field(word, b, per) * _field(p[j], b, per)
            c[j] = t(c[j] + s)


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
def dot_gemm(A, k, m, B, n, C, init):
    """C[r, j] = init[j] + sum over i < k of A[r*k + i] * B[j*k + i]: rows of both are contiguous;
    ``init`` is n values of C's dtype, or empty for zeros.

    Used where the output is narrow (fewer than PAIR_MIN_WIDTH columns) or the reduction long.
    """
    t = C.dtype.type
    for r in range(m):
        a = A[r * k:(r + 1) * k]
        for j in range(n):
            b = B[j * k:(j + 1) * k]
            s = init[j] if init.shape[0] else t(0)
            for i in range(k):
                s = t(s + t(a[i]) * t(b[i]))
            C[r * n + j] = s
