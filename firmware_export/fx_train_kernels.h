/*
 * fx_train_kernels.h -- the inner loops of fx_train_runtime.h (included by it; not on its own).
 *
 * Every MAC of a training step goes through a block of dot products (fx_train_dot.h): the
 * forward pass against weight rows, the error sent down against the weights' transpose,
 * the weight gradient against the transposed activations; except on DSP cores the forward
 * pass of a conv layer of at most 12 taps, which fx_conv_cols_dsp runs a column at a time.
 * The kernels read int8 operands a word at a time, so every operand row starts on a word:
 * weight rows are padded to 4 bytes in storage, and a tensor whose rows are not is
 * copied once into the aligned scratch (fx_net.opa, opb) first.
 *
 * Where __ARM_FEATURE_DSP is defined (Cortex-M4, M7, M33), the kernels use the DSP
 * extension's SXTB16 and dual 16-bit MAC (SMLAD; SMLALD for int64 sums). Elsewhere
 * (Cortex-M0+, M3, the host) they are portable C that gcc turns into tight loops.
 */
#ifndef FX_TRAIN_KERNELS_H
#define FX_TRAIN_KERNELS_H

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define FX_DSP 1
#else
#define FX_DSP 0
#endif
#if FX_DSP || (defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT)
#include <arm_acle.h> /* SSAT and USAT from ARMv7-M on; the dual MACs with the DSP extension */
#endif

/* The word loops put value j of a run in byte j % 4 of a word: little-endian cores only (every
 * Cortex-M as shipped, and the hosts). */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the fxtrain training runtime's word loops assume a little-endian core"
#endif

/* A word from a word-aligned address: one LDR (memcpy keeps it free of aliasing rules). */
static inline uint32_t fx_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, FX_ALIGNED(p), sizeof v);
    return v;
}

#if defined(__ARM_ARCH_6M__)
#define FX_V6M 1
/*
 * ARMv6-M (Cortex-M0, M0+): four int8 rows against one int8 vector of n values, into 32-bit
 * sums. Per value of x: one byte load and a sign extension, then per row one LDRSB at x plus
 * that row's distance from x (the only offset form LDRSB has), a MULS and an ADD: 23 cycles
 * for four MACs. Written out because gcc 12 keeps the distances in high registers and moves
 * them down for every load.
 */
static FX_NOINLINE void fx_dot4_v6m(const int8_t *w0, uint32_t stride, const int8_t *x, uint32_t n, int32_t *out)
{
    uint32_t d0 = (uint32_t)((uintptr_t)w0 - (uintptr_t)x), d1 = d0 + stride, d2 = d1 + stride, d3 = d2 + stride;
    const int8_t *end = x + n;
    int32_t s0 = out[0], s1 = out[1], s2 = out[2], s3 = out[3], xi, wi;
    if (n == 0u) {
        return;
    }
    __asm__ volatile(
        ".syntax unified\n\t" /* gcc hands inline asm over in the divided syntax on ARMv6-M */
        "1:\n\t"
        "ldrb %[xi], [%[x]]\n\t"
        "sxtb %[xi], %[xi]\n\t"
        "ldrsb %[wi], [%[x], %[d0]]\n\t"
        "muls %[wi], %[xi]\n\t"
        "add %[s0], %[wi]\n\t"
        "ldrsb %[wi], [%[x], %[d1]]\n\t"
        "muls %[wi], %[xi]\n\t"
        "add %[s1], %[wi]\n\t"
        "ldrsb %[wi], [%[x], %[d2]]\n\t"
        "muls %[wi], %[xi]\n\t"
        "add %[s2], %[wi]\n\t"
        "ldrsb %[wi], [%[x], %[d3]]\n\t"
        "muls %[wi], %[xi]\n\t"
        "add %[s3], %[wi]\n\t"
        "adds %[x], #1\n\t"
        "cmp %[x], %[end]\n\t"
        "bne 1b\n\t"
        /* "l": r0-r7, which LDRSB, MULS and ADDS need; "h": r8-r12, free to hold sums (ADD and CMP
         * take them), and on ARMv6-M "r" would mean r0-r7 too, one short */
        : [s0] "+h"(s0), [s1] "+h"(s1), [s2] "+h"(s2), [s3] "+h"(s3), [x] "+l"(x), [xi] "=&l"(xi),
          [wi] "=&l"(wi)
        : [d0] "l"(d0), [d1] "l"(d1), [d2] "l"(d2), [d3] "l"(d3), [end] "h"(end)
        : "cc", "memory");
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}
#else
#define FX_V6M 0
#endif

/* A word to a word-aligned address: one STR. */
static inline void fx_store32(void *p, uint32_t v)
{
    memcpy(FX_ALIGNED(p), &v, sizeof v);
}

#if FX_DSP
/*
 * Blocks of four int8 rows against one int8 vector over n4 (a multiple of 4) values, into 32-bit sums:
 * per word of x, one load and two SXTB16, then per row one load, two SXTB16 and two SMLAD.
 * Written out because the loop needs thirteen registers at once, which gcc 12 does not find
 * for it in C: it spills pointers and reloads them every iteration. Rows 1 and 3 are read at
 * rows 0 and 2 plus the stride, so two pointers walk all four.
 */
static FX_NOINLINE void fx_dot4_dsp(const int8_t *w, uint32_t stride, uint32_t blocks, const int8_t *x0, uint32_t n4,
                                    int32_t *out)
{
    uint32_t b;
    if (n4 == 0u) {
        return;
    }
    for (b = 0; b < blocks; b++, w += 4u * stride, out += 4) {
    const int8_t *x = x0, *w0 = w, *w2 = w0 + 2u * stride, *end = x + n4;
    int32_t s0 = out[0], s1 = out[1], s2 = out[2], s3 = out[3];
    uint32_t xa, xb, wv, t;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[xb], [%[x]], #4\n\t"
        "sxtb16 %[xa], %[xb]\n\t"
        "sxtb16 %[xb], %[xb], ror #8\n\t"
        "ldr %[wv], [%[w0], %[st]]\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[s1], %[t], %[xa], %[s1]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s1], %[wv], %[xb], %[s1]\n\t"
        "ldr %[wv], [%[w0]], #4\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[s0], %[t], %[xa], %[s0]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s0], %[wv], %[xb], %[s0]\n\t"
        "ldr %[wv], [%[w2], %[st]]\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[s3], %[t], %[xa], %[s3]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s3], %[wv], %[xb], %[s3]\n\t"
        "ldr %[wv], [%[w2]], #4\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[s2], %[t], %[xa], %[s2]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s2], %[wv], %[xb], %[s2]\n\t"
        "cmp %[x], %[end]\n\t"
        "bne 1b\n\t"
        : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(x), [w0] "+r"(w0),
          [w2] "+r"(w2), [xa] "=&r"(xa), [xb] "=&r"(xb), [wv] "=&r"(wv), [t] "=&r"(t)
        : [st] "r"(stride), [end] "r"(end)
        : "cc", "memory");
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
    }
}

/*
 * A conv layer's sums for ncols im2col columns of at most 12 taps (three words each, 12 bytes
 * apart) against nf filters, into out [ncols][nf]; the OR of the sums' magnitudes into *mag (the
 * tensor shift's scan, done while the sums are in registers). wx holds per filter 7 words: its
 * bias term, then its three weight words as SXTB16 pairs (even bytes, odd bytes), so a sum starts
 * from the bias and needs no sign extension of weights. The column stays in six registers while
 * every filter streams past, two filters a trip (nf even), by LDM. Written as a whole function
 * because the loop needs all fourteen registers.
 */
#if FX_SLOT != 16 && !FX_ACC_WIDE /* where fx_conv_fwd_dsp uses it: int8 weights, int32 sums */
#define FX_ARG __attribute__((unused)) /* read by the asm, in its register or on the stack */
__attribute__((naked, noinline)) static void fx_conv_cols_dsp(FX_ARG const int8_t *cols, FX_ARG uint32_t ncols,
                                                              FX_ARG const int32_t *wx, FX_ARG int32_t *out,
                                                              FX_ARG uint32_t nf, FX_ARG uint32_t *mag)
{
#define FX_CONV_FILTER                                                                               \
    "ldmia r10!, {r11, r12, lr}\n\t" /* bias, pair a0, pair b0 */                                    \
    "smlad r11, r12, r4, r11\n\t"                                                                    \
    "smlad r11, lr, r5, r11\n\t"                                                                     \
    "ldmia r10!, {r12, lr}\n\t"                                                                      \
    "smlad r11, r12, r6, r11\n\t"                                                                    \
    "smlad r11, lr, r7, r11\n\t"                                                                     \
    "ldmia r10!, {r12, lr}\n\t"                                                                      \
    "smlad r11, r12, r8, r11\n\t"                                                                    \
    "smlad r11, lr, r9, r11\n\t"                                                                     \
    "str r11, [r3], #4\n\t"                                                                          \
    "eor r12, r11, r11, asr #31\n\t" /* |sum|, ORed into r1 */                                       \
    "sub r12, r12, r11, asr #31\n\t"                                                                 \
    "orr r1, r1, r12\n\t"
    __asm__ volatile(
        ".syntax unified\n\t"
        "push {r4-r11, lr}\n\t"
        "ldr r12, [sp, #36]\n\t"        /* nf */
        "ldr lr, [sp, #40]\n\t"         /* mag */
        "sub sp, #16\n\t"
        "cmp r1, #0\n\t"
        "beq 3f\n\t"
        "lsl r4, r12, #5\n\t"
        "sub r4, r4, r12, lsl #2\n\t"   /* 28 nf: the filters' words */
        "add r4, r2, r4\n\t"
        "add r5, r1, r1, lsl #1\n\t"
        "add r5, r0, r5, lsl #2\n\t"    /* cols + 12 ncols */
        "strd r2, r4, [sp]\n\t"         /* wx, its end */
        "strd r5, lr, [sp, #8]\n\t"     /* the columns' end, mag */
        "ldr r1, [lr]\n\t"
        "2:\n\t"
        "ldmia r0!, {r4, r6, r8}\n\t"
        "sxtb16 r5, r4, ror #8\n\t"
        "sxtb16 r4, r4\n\t"
        "sxtb16 r7, r6, ror #8\n\t"
        "sxtb16 r6, r6\n\t"
        "sxtb16 r9, r8, ror #8\n\t"
        "sxtb16 r8, r8\n\t"
        "ldrd r10, r2, [sp]\n\t"
        "1:\n\t"
        FX_CONV_FILTER
        FX_CONV_FILTER
        "cmp r10, r2\n\t"
        "bne 1b\n\t"
        "ldr r12, [sp, #8]\n\t"
        "cmp r0, r12\n\t"
        "bne 2b\n\t"
        "ldr lr, [sp, #12]\n\t"
        "str r1, [lr]\n\t"
        "3:\n\t"
        "add sp, #16\n\t"
        "pop {r4-r11, pc}\n\t");
#undef FX_CONV_FILTER
}
#undef FX_ARG
#endif

/* SXTB16 of x rotated by 8: bytes 1 and 3 as two int16; GCC 12's ACLE has no __ror, and gcc
 * does not fold a separate rotate into the instruction. */
static inline uint32_t fx_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* 16-bit weights take the portable loops (SXTB16 pairs up bytes, not halfwords). */
#if FX_SLOT == 16
#define FX_WV_SIMD 0
#else
#define FX_WV_SIMD FX_DSP
#endif

/* Weight rows against int8 values: the forward pass and the error sent down. */
#define FX_DOT_NAME fx_dot_w
#define FX_DOT_ROW fx_wv_t
#define FX_DOT_V6M (FX_V6M && FX_SLOT != 16 && !FX_ACC_WIDE)
#define FX_DOT_SUM fx_acc_t
#define FX_DOT_SIMD FX_WV_SIMD
#define FX_DOT_WIDE FX_ACC_WIDE
#include "fx_train_dot.h"

/* int8 rows against int8 values, into gradient sums: the weight gradient. */
#define FX_DOT_NAME fx_dot_g
#define FX_DOT_ROW int8_t
#define FX_DOT_V6M (FX_V6M && !FX_GRAD_WIDE)
#define FX_DOT_SUM fx_grad_t
#define FX_DOT_SIMD FX_DSP
#define FX_DOT_WIDE FX_GRAD_WIDE
#include "fx_train_dot.h"

/* dst[r * dst_stride + c] = src[c * src_stride + r]: a rows x cols transpose of int8 values. */
static inline void fx_transpose8(const int8_t *src, uint32_t src_stride, uint32_t rows, uint32_t cols,
                                 int8_t *dst, uint32_t dst_stride)
{
    uint32_t r, c;
    for (c = 0; c < cols; c++) {
        const int8_t *s = src + c * src_stride;
        int8_t *d = dst + c;
        for (r = 0; r < rows; r++) {
            d[r * dst_stride] = s[r];
        }
    }
}

/* rows of n int8 values (stride n) on the word stride FX_PAD4(n): src itself if n is a whole
 * number of words, else a copy in dst whose padding is zero, so a kernel may run to the stride. */
static inline const int8_t *fx_align_rows(const int8_t *src, uint32_t rows, uint32_t n, int8_t *dst)
{
    uint32_t r, i, stride = FX_PAD4(n);
    if (n % 4u == 0u) {
        return src;
    }
    for (r = 0; r < rows; r++) {
        for (i = 0; i < stride; i++) {
            dst[r * stride + i] = i < n ? src[r * n + i] : 0;
        }
    }
    return dst;
}

/* Kernel taps of output (oy, ox) of sample n, in weight order (ky, kx, channel), into
 * dst[t * step]; zero where the kernel hangs over the padding. In HWC the taps of one kernel
 * row that fall inside the image are one run of bytes, copied as such. */
static inline void fx_im2col(const fx_layer *L, const int8_t *x, uint32_t n, uint32_t oy, uint32_t ox,
                             int8_t *dst, uint32_t step)
{
    /* the layer's fields in locals: an int8 store may alias *L, which would reload them every time */
    const uint32_t c_in = L->in_c, row = L->kw * c_in, kh = L->kh, in_h = L->in_h, in_w = L->in_w;
    const int32_t ix0 = (int32_t)ox - (int32_t)L->pad_w, iy0 = (int32_t)oy - (int32_t)L->pad_h;
    /* the kernel columns inside the image: [k0, k1) */
    const uint32_t k0 = ix0 < 0 ? (uint32_t)-ix0 : 0u;
    const uint32_t k1 = ix0 + (int32_t)L->kw > (int32_t)in_w ? (uint32_t)((int32_t)in_w - ix0) : L->kw;
    uint32_t ky, j;
    for (ky = 0; ky < kh; ky++, dst += row * step) {
        int32_t iy = iy0 + (int32_t)ky;
        const int8_t *src;
        if (iy < 0 || iy >= (int32_t)in_h || k0 >= k1) {
            for (j = 0; j < row; j++) {
                dst[j * step] = 0;
            }
            continue;
        }
        src = x + ((n * in_h + (uint32_t)iy) * in_w + (uint32_t)(ix0 + (int32_t)k0)) * c_in;
        for (j = 0; j < k0 * c_in; j++) {
            dst[j * step] = 0;
        }
        for (; j < k1 * c_in; j++) {
            dst[j * step] = *src++;
        }
        for (; j < row; j++) {
            dst[j * step] = 0;
        }
    }
}

#endif /* FX_TRAIN_KERNELS_H */
