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

PAIR_MIN_WIDTH = 16  # narrower outputs use dot products: one AVX-512 register holds 16 int32
BLOCK_WORDS = 4096   # words of P swept per block (16 KiB), so a block stays in L1 while every row uses it


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
    Returns the number of words written, ``ceil(k / 2) * n``.
    """
    span = (n - 1) * cs + 1
    for q in range(k // 2):
        lo = src[off + 2 * q * rs:off + 2 * q * rs + span:cs]
        hi = src[off + (2 * q + 1) * rs:off + (2 * q + 1) * rs + span:cs]
        o = out[q * n:(q + 1) * n]
        for j in range(n):
            o[j] = _word(lo[j], hi[j])
    if k % 2:
        q = k // 2
        lo = src[off + 2 * q * rs:off + 2 * q * rs + span:cs]
        o = out[q * n:(q + 1) * n]
        for j in range(n):
            o[j] = _word(lo[j], 0)
    return (k + 1) // 2 * n


@njit(cache=True)
def pair_gemm(P, n, A, a_off, ms, ks, k, m, C, c_off):
    """C[r, j] = sum over i < k of A[r, i] * B[i, j], for r < m and j < n, B packed in ``P``.

    ``A[r, i] = A[a_off + r*ms + i*ks]`` (int8); ``C[r, j] = C[c_off + r*n + j]`` (int32 or
    int64), overwritten. The pairs of ``A`` that are both zero are skipped. ``P`` is swept
    in blocks of about BLOCK_WORDS words, each used by every row before the next.
    """
    t = C.dtype.type
    C[c_off:c_off + m * n] = 0
    q_all = (k + 1) // 2
    q_block = max(1, BLOCK_WORDS // max(n, 1))
    for q0 in range(0, q_all, q_block):
        for r in range(m):
            c = C[c_off + r * n:c_off + (r + 1) * n]
            base = a_off + r * ms
            for q in range(q0, min(q0 + q_block, q_all)):
                lo = np.int32(A[base + 2 * q * ks])
                hi = np.int32(A[base + (2 * q + 1) * ks]) if 2 * q + 1 < k else np.int32(0)
                if lo == 0 and hi == 0:
                    continue
                p = P[q * n:(q + 1) * n]
                for j in range(n):
                    c[j] = t(c[j] + _pmadd(p[j], lo, hi))


@njit(cache=True)
def dot_gemm(A, a_off, k, m, B, b_off, n, C, c_off):
    """C[r, j] = sum over i < k of A[a_off + r*k + i] * B[b_off + j*k + i]: rows of both are contiguous.

    Used where the output is narrow (fewer than PAIR_MIN_WIDTH columns) or the reduction long.
    """
    t = C.dtype.type
    for r in range(m):
        a = A[a_off + r * k:a_off + (r + 1) * k]
        for j in range(n):
            b = B[b_off + j * k:b_off + (j + 1) * k]
            s = t(0)
            for i in range(k):
                s = t(s + t(a[i]) * t(b[i]))
            C[c_off + r * n + j] = s
