/*
 * fx_train_dot.h -- one dot-product kernel of fx_train_kernels.h, stamped out once per operand type.
 *
 * Included (no include guard, on purpose) with these set, then undefined again:
 *   FX_DOT_NAME   the function's name
 *   FX_DOT_ROW    the row element type: int8_t, or int16_t for 16-bit weights
 *   FX_DOT_SUM    the sum type: int32_t, or int64_t where a sum's bound needs it
 *   FX_DOT_SIMD   1 to use the DSP extension's dual 16-bit MACs (int8 rows only)
 *   FX_DOT_WIDE   1 when FX_DOT_SUM is int64 (SMLALD instead of SMLAD)
 *   FX_DOT_V6M    1 to use the ARMv6-M loop for blocks of four rows (int8 rows, int32 sums)
 *
 *   out[v * ostride + r] += sum over i < n of w[r * stride + i] * x[v * xstride + i]
 *                                                     for r < rows, v < nx
 *
 * w, x and the strides must keep every row on a word (the buffers are declared aligned,
 * and strides are padded to 4 bytes): ARMv6-M faults on an unaligned word load, and LDRD
 * faults on any core. Every sum is exact (its bound fits FX_DOT_SUM), so the products may
 * be added in any order: the result does not depend on the path taken.
 */

static inline void FX_DOT_NAME(const FX_DOT_ROW *w, uint32_t stride, uint32_t rows, const int8_t *x,
                               uint32_t xstride, uint32_t nx, uint32_t n, FX_DOT_SUM *out, uint32_t ostride)
{
    uint32_t r = 0, v, i, n4 = n & ~3u;
#if FX_DOT_SIMD
    /* Four rows share each word of x: one load and two SXTB16 serve eight MACs of each row. */
    const uint32_t r4 = rows & ~3u;
    for (v = 0; v < nx; v++) {
        const int8_t *xv = x + v * xstride;
        FX_DOT_SUM *o = out + v * ostride;
#if FX_DOT_WIDE
        for (r = 0; r < r4; r += 4u) {
            const FX_DOT_ROW *w0 = w + r * stride;
            FX_DOT_SUM s0 = o[r], s1 = o[r + 1u], s2 = o[r + 2u], s3 = o[r + 3u];
            for (i = 0; i < n4; i += 4u) {
                uint32_t xw = fx_load32(xv + i), xa = __sxtb16(xw), xb = fx_sxtb16_ror8(xw), ww;
                ww = fx_load32(w0 + i);
                s0 = __smlald(__sxtb16(ww), xa, s0);
                s0 = __smlald(fx_sxtb16_ror8(ww), xb, s0);
                ww = fx_load32(w0 + stride + i);
                s1 = __smlald(__sxtb16(ww), xa, s1);
                s1 = __smlald(fx_sxtb16_ror8(ww), xb, s1);
                ww = fx_load32(w0 + 2u * stride + i);
                s2 = __smlald(__sxtb16(ww), xa, s2);
                s2 = __smlald(fx_sxtb16_ror8(ww), xb, s2);
                ww = fx_load32(w0 + 3u * stride + i);
                s3 = __smlald(__sxtb16(ww), xa, s3);
                s3 = __smlald(fx_sxtb16_ror8(ww), xb, s3);
            }
            o[r] = s0, o[r + 1u] = s1, o[r + 2u] = s2, o[r + 3u] = s3;
        }
#else
        fx_dot4_dsp(w, stride, r4 / 4u, xv, n4, o);
#endif
        for (i = n4; i < n; i++) { /* the last bytes of rows that are not whole words */
            FX_DOT_SUM xi = xv[i];
            for (r = 0; r < r4; r++) {
                o[r] += xi * w[r * stride + i];
            }
        }
    }
    r = r4;
    /* The last rows, one at a time, still two MACs an instruction. */
    for (; r < rows; r++) {
        for (v = 0; v < nx; v++) {
            const int8_t *xv = x + v * xstride;
            const FX_DOT_ROW *w0 = w + r * stride;
            FX_DOT_SUM s0 = out[v * ostride + r];
            for (i = 0; i < n4; i += 4u) {
                uint32_t xw = fx_load32(xv + i), ww = fx_load32(w0 + i);
#if FX_DOT_WIDE
                s0 = __smlald(__sxtb16(ww), __sxtb16(xw), s0);
                s0 = __smlald(fx_sxtb16_ror8(ww), fx_sxtb16_ror8(xw), s0);
#else
                s0 = __smlad(__sxtb16(ww), __sxtb16(xw), s0);
                s0 = __smlad(fx_sxtb16_ror8(ww), fx_sxtb16_ror8(xw), s0);
#endif
            }
            for (; i < n; i++) {
                s0 += (FX_DOT_SUM)xv[i] * w0[i];
            }
            out[v * ostride + r] = s0;
        }
    }
#else
#if FX_DOT_V6M
    /* ARMv6-M: four rows share each byte of x, in a loop written for its eight low registers */
    for (; r + 4u <= rows; r += 4u) {
        for (v = 0; v < nx; v++) {
            fx_dot4_v6m(w + r * stride, stride, x + v * xstride, n, out + v * ostride + r);
        }
    }
#endif
    /* Portable C: two rows share each load of x, and two sums per row shorten the chains. */
    for (; r + 2u <= rows; r += 2u) {
        for (v = 0; v < nx; v++) {
            const int8_t *xv = x + v * xstride;
            const FX_DOT_ROW *w0 = w + r * stride, *w1 = w0 + stride;
            FX_DOT_SUM s0 = out[v * ostride + r], s1 = out[v * ostride + r + 1u], t0 = 0, t1 = 0;
            for (i = 0; i + 2u <= n; i += 2u) {
                FX_DOT_SUM xa = xv[i], xb = xv[i + 1u];
                s0 += xa * w0[i];
                s1 += xa * w1[i];
                t0 += xb * w0[i + 1u];
                t1 += xb * w1[i + 1u];
            }
            if (i < n) {
                s0 += (FX_DOT_SUM)xv[i] * w0[i];
                s1 += (FX_DOT_SUM)xv[i] * w1[i];
            }
            out[v * ostride + r] = s0 + t0;
            out[v * ostride + r + 1u] = s1 + t1;
        }
    }
    for (; r < rows; r++) {
        for (v = 0; v < nx; v++) {
            const int8_t *xv = x + v * xstride;
            const FX_DOT_ROW *w0 = w + r * stride;
            FX_DOT_SUM s0 = out[v * ostride + r];
            for (i = 0; i < n; i++) {
                s0 += (FX_DOT_SUM)xv[i] * w0[i];
            }
            out[v * ostride + r] = s0;
        }
    }
    (void)n4;
#endif
}

#undef FX_DOT_NAME
#undef FX_DOT_ROW
#undef FX_DOT_SUM
#undef FX_DOT_SIMD
#undef FX_DOT_WIDE
#undef FX_DOT_V6M
