/*
 * fx_runtime.h -- fxtrain inference runtime: header-only C99, integers only.
 *
 * This file is the C twin of fxtrain/fixedpoint.py (generator, exp2 table, shift
 * rounding) and fxtrain/deploy.py (layer arithmetic). The two copies are compared
 * bit for bit by tests/test_c_constants.py and tests/test_export_*.py; change
 * them together or not at all.
 *
 * Rules it keeps:
 *  - needs only <stdint.h> and <string.h>; no heap, no FPU arithmetic, no I/O;
 *  - every buffer is provided by the caller;
 *  - a tensor is an int8 array q with a power-of-two exponent e (value q * 2^e);
 *    the exponents live in the generated model header, not here.
 *
 * Layer arithmetic (CMSIS-NN legacy q7: arm_fully_connected_q7,
 * arm_convolve_HWC_q7_basic), accumulated in int32:
 *
 *     acc = bias * 2^bias_shift + NN_ROUND(out_shift) + sum(x * w)
 *     out = SSAT8(acc >> out_shift)          NN_ROUND(s) = (1 << s) >> 1
 *
 * The calibration in fxtrain/deploy.py bounds |acc| for every int8 input, so the
 * int32 sum never overflows in any summation order.
 *
 * That is the rounding rule FX_ROUNDING_CMSIS. The *_r layer functions also take
 * FX_ROUNDING_TFLM, TensorFlow Lite Micro's requantisation for the scale 2^-s
 * (fxtrain/firmware/rounding.py, docs/design.md): the accumulator starts at the bias
 * alone and is rounded once at the end by fx_round_shift_tflm().
 *
 * Signed right shifts: in C99, ">>" on a negative value is implementation-defined
 * (gcc and clang shift arithmetically). fx_floor_shift() and fx_asr32() compute
 * floor(x / 2^s) without relying on that, and gcc compiles them to a single
 * arithmetic shift. Left shifts of signed values are written as multiplications,
 * since shifting a negative value left is undefined in C99.
 *
 * Weight storage: row-major int8 ("q7"), or packed LSB-first for b in {1, 2, 4}
 * (b = 1: bit 1 means +1, bit 0 means -1; b = 2, 4: two's complement fields,
 * low field first); the last byte is zero-padded. fx_weight() decodes one.
 */
#ifndef FX_RUNTIME_H
#define FX_RUNTIME_H

#include <stdint.h>
#include <string.h> /* NULL */

#ifdef __cplusplus
extern "C" {
#endif

#define FX_RUNTIME_VERSION 1

/* ---------------------------------------------------------------- status */

typedef enum {
    FX_OK = 0,
    FX_ERR_NULL,
    FX_ERR_SHAPE,
    FX_ERR_PAD,
    FX_ERR_SHIFT,
    FX_ERR_BITS,
    FX_ERR_ROUNDING,
    FX_STATUS_COUNT
} fx_status;

/* Same order as fx_status; each string starts with its enum name so that
 * tests/test_c_constants.py can check the order mechanically. */
static const char *const FX_STATUS_STRINGS[] = {
    "FX_OK: success",
    "FX_ERR_NULL: a required pointer is NULL",
    "FX_ERR_SHAPE: a dimension is zero or the kernel does not fit the input",
    "FX_ERR_PAD: padding must be 0 (valid) or k/2 with an odd k (same)",
    "FX_ERR_SHIFT: a shift is outside 0 to 30",
    "FX_ERR_BITS: weight bit width must be 1, 2, 4 or 8",
    "FX_ERR_ROUNDING: rounding must be FX_ROUNDING_CMSIS or FX_ROUNDING_TFLM"
};

/* Compile-time check (C99 has no static_assert): the table has one entry per code. */
typedef char fx_status_table_matches_enum[
    (sizeof(FX_STATUS_STRINGS) / sizeof(FX_STATUS_STRINGS[0]) == FX_STATUS_COUNT) ? 1 : -1];

static inline const char *fx_status_str(fx_status s)
{
    /* unsigned compare: arm-none-eabi packs enums into a byte, so "< 0" would warn */
    if ((uint32_t)(int)s >= (uint32_t)FX_STATUS_COUNT) {
        return "FX_ERR_UNKNOWN: not an fx_status code";
    }
    return FX_STATUS_STRINGS[s];
}

/* ------------------------------------------- shared constants (fixedpoint.py) */

#define FX_SPLITMIX_GAMMA 0x9E3779B9u
#define FX_SPLITMIX_MUL1 0x85EBCA6Bu
#define FX_SPLITMIX_MUL2 0xC2B2AE35u
/* xorshift32 has an all-zero fixed point; a seed that maps to 0 takes this instead. */
#define FX_XORSHIFT_ZERO_FALLBACK 0x6D2B79F5u
/* One 32-bit draw feeds one stochastic rounding, so SR resolves at most 32 bits. */
#define FX_SR_MAX_BITS 32

/* Deployment rounding rules, in the order of numbers.ROUNDING_MODES. */
#define FX_ROUNDING_CMSIS 0
#define FX_ROUNDING_TFLM 1

#define FX_EXP2_FRAC_BITS 8
#define FX_EXP2_Q 15
/* log2(e) in Q15: turns a natural-log logit difference into a base-2 exponent. */
#define FX_LOG2E_Q15 47274

/* FX_EXP2_NEG_Q15[f] = round(2^(-f/256) * 2^15), copied from fixedpoint.EXP2_NEG_Q15. */
static const int32_t FX_EXP2_NEG_Q15[1 << FX_EXP2_FRAC_BITS] = {
    32768, 32679, 32591, 32503, 32415, 32327, 32240, 32153,
    32066, 31979, 31893, 31806, 31720, 31635, 31549, 31464,
    31379, 31294, 31209, 31125, 31041, 30957, 30873, 30790,
    30706, 30623, 30541, 30458, 30376, 30293, 30212, 30130,
    30048, 29967, 29886, 29805, 29725, 29644, 29564, 29484,
    29405, 29325, 29246, 29167, 29088, 29009, 28931, 28852,
    28774, 28697, 28619, 28542, 28464, 28388, 28311, 28234,
    28158, 28082, 28006, 27930, 27855, 27779, 27704, 27629,
    27554, 27480, 27406, 27332, 27258, 27184, 27110, 27037,
    26964, 26891, 26818, 26746, 26674, 26601, 26530, 26458,
    26386, 26315, 26244, 26173, 26102, 26031, 25961, 25891,
    25821, 25751, 25681, 25612, 25543, 25474, 25405, 25336,
    25268, 25199, 25131, 25063, 24995, 24928, 24860, 24793,
    24726, 24659, 24593, 24526, 24460, 24394, 24328, 24262,
    24196, 24131, 24066, 24001, 23936, 23871, 23806, 23742,
    23678, 23614, 23550, 23486, 23423, 23359, 23296, 23233,
    23170, 23108, 23045, 22983, 22921, 22859, 22797, 22735,
    22674, 22613, 22552, 22491, 22430, 22369, 22309, 22248,
    22188, 22128, 22068, 22009, 21949, 21890, 21831, 21772,
    21713, 21654, 21595, 21537, 21479, 21421, 21363, 21305,
    21247, 21190, 21133, 21076, 21019, 20962, 20905, 20849,
    20792, 20736, 20680, 20624, 20568, 20513, 20457, 20402,
    20347, 20292, 20237, 20182, 20127, 20073, 20019, 19965,
    19911, 19857, 19803, 19750, 19696, 19643, 19590, 19537,
    19484, 19431, 19379, 19326, 19274, 19222, 19170, 19118,
    19066, 19015, 18963, 18912, 18861, 18810, 18759, 18708,
    18658, 18607, 18557, 18507, 18457, 18407, 18357, 18308,
    18258, 18209, 18160, 18110, 18061, 18013, 17964, 17915,
    17867, 17819, 17770, 17722, 17674, 17627, 17579, 17531,
    17484, 17437, 17390, 17343, 17296, 17249, 17202, 17156,
    17109, 17063, 17017, 16971, 16925, 16879, 16834, 16788,
    16743, 16697, 16652, 16607, 16562, 16518, 16473, 16428
};

static inline int32_t fx_exp2_neg_q15(uint8_t f)
{
    return FX_EXP2_NEG_Q15[f];
}

/* Map a user seed to a non-zero xorshift32 state (fixedpoint.splitmix32_seed).
 * The "u" constants keep the products unsigned even where int is wider than 32 bits. */
static inline uint32_t fx_seed(uint32_t seed)
{
    uint32_t z = (uint32_t)(seed + FX_SPLITMIX_GAMMA);
    z = (uint32_t)((z ^ (z >> 16)) * FX_SPLITMIX_MUL1);
    z = (uint32_t)((z ^ (z >> 13)) * FX_SPLITMIX_MUL2);
    z ^= z >> 16;
    return z != 0u ? z : FX_XORSHIFT_ZERO_FALLBACK;
}

/* Advance *state and return the new value (fixedpoint.xorshift32). */
static inline uint32_t fx_xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= (uint32_t)(x << 13);
    x ^= x >> 17;
    x ^= (uint32_t)(x << 5);
    *state = x;
    return x;
}

/* floor(x / 2^s) for s in 0 to 63, exact for negative x on any C99 compiler:
 * for x < 0, ~x = -x - 1 >= 0 and floor(x / 2^s) = ~(~x >> s). */
static inline int64_t fx_floor_shift(int64_t x, int s)
{
    return x >= 0 ? (x >> s) : ~(~x >> s);
}

/* The same for int32, the accumulator type of every layer (s in 0 to 31). */
static inline int32_t fx_asr32(int32_t x, uint32_t s)
{
    return x >= 0 ? (x >> s) : ~(~x >> s);
}

/* x * 2^s for s >= 0, written as a product: a left shift of a negative value is UB. */
static inline int64_t fx_shl64(int64_t x, int s)
{
    return x * ((int64_t)1 << s);
}

/* Round-half-up x / 2^s, CMSIS-NN's NN_ROUND (fixedpoint.round_shift);
 * a negative s shifts left, and the caller keeps x * 2^-s within int64. */
static inline int64_t fx_round_shift(int64_t x, int s)
{
    if (s <= 0) {
        return fx_shl64(x, -s);
    }
    return fx_floor_shift(x + ((int64_t)1 << (s - 1)), s);
}

/* TFLM's requantisation by 2^-s in one rounding (rounding.round_shift_tflm):
 * (x + NN_ROUND(s) + d) >> s, where d = +1 for x >= 0 and -1 for x < 0 (d = 0 if s < 2).
 * It equals TFLM's SaturatingRoundingDoublingHighMul by 2^30 followed by
 * RoundingDivideByPOT(s - 1) for every int32 x (s = 0: while |x| < 2^30). */
static inline int64_t fx_round_shift_tflm(int64_t x, int s)
{
    int64_t d = s < 2 ? 0 : (x >= 0 ? 1 : -1);
    if (s <= 0) {
        return x;
    }
    return fx_floor_shift(x + ((int64_t)1 << (s - 1)) + d, s);
}

/* Stochastic rounding of x / 2^s with the 32-bit draw r (fixedpoint.sr_shift):
 * rounds up with probability equal to the dropped fraction. Past 32 bits the
 * excess is floor-shifted first, because one draw only covers 32 bits. */
static inline int64_t fx_sr_shift(int64_t x, int s, uint32_t r)
{
    int64_t mask;
    if (s <= 0) {
        return fx_shl64(x, -s);
    }
    if (s > FX_SR_MAX_BITS) {
        x = fx_floor_shift(x, s - FX_SR_MAX_BITS);
        s = FX_SR_MAX_BITS;
    }
    mask = ((int64_t)1 << s) - 1;
    return fx_floor_shift(x + ((int64_t)r & mask), s);
}

/* Clamp x to [lo, hi] (fixedpoint.sat). */
static inline int64_t fx_sat(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* ------------------------------------------------------------ weights */

/* Weight i of a layer stored with `bits` bits: 8 = plain int8, else packed (see top). */
static inline int32_t fx_weight(const uint8_t *w, uint32_t i, uint32_t bits)
{
    uint32_t v;
    switch (bits) {
    case 1:
        return ((w[i >> 3] >> (i & 7u)) & 1u) ? 1 : -1;
    case 2:
        v = ((uint32_t)w[i >> 2] >> ((i & 3u) * 2u)) & 3u;
        return (int32_t)v - (int32_t)((v & 2u) << 1); /* sign-extend 2 bits */
    case 4:
        v = ((uint32_t)w[i >> 1] >> ((i & 1u) * 4u)) & 15u;
        return (int32_t)v - (int32_t)((v & 8u) << 1); /* sign-extend 4 bits */
    default:
        return (int32_t)((const int8_t *)w)[i];
    }
}

/* Bytes taken by n weights of `bits` bits (8 = unpacked). */
#define FX_WEIGHT_BYTES(n, bits) (((uint32_t)(n) * (uint32_t)(bits) + 7u) / 8u)

/* ------------------------------------------------------------- layers */

/* Accumulator start: bias * 2^bias_shift + NN_ROUND(out_shift). */
static inline int32_t fx_acc_init(int8_t bias, uint32_t bias_shift, uint32_t out_shift)
{
    return (int32_t)bias * ((int32_t)1 << bias_shift) + (((int32_t)1 << out_shift) >> 1);
}

/* SSAT8(acc >> out_shift): the requantisation of every layer. */
static inline int8_t fx_requant(int32_t acc, uint32_t out_shift)
{
    return (int8_t)fx_sat(fx_asr32(acc, out_shift), -128, 127);
}

/* Accumulator start under `rounding`: CMSIS-NN adds NN_ROUND here, TFLM rounds at the end. */
static inline int32_t fx_acc_init_r(int8_t bias, uint32_t bias_shift, uint32_t out_shift, uint32_t rounding)
{
    if (rounding == FX_ROUNDING_TFLM) {
        return (int32_t)bias * ((int32_t)1 << bias_shift);
    }
    return fx_acc_init(bias, bias_shift, out_shift);
}

/* SSAT8 of the accumulator rounded by `rounding` (the counterpart of fx_acc_init_r). */
static inline int8_t fx_requant_r(int32_t acc, uint32_t out_shift, uint32_t rounding)
{
    if (rounding == FX_ROUNDING_TFLM) {
        return (int8_t)fx_sat(fx_round_shift_tflm(acc, (int)out_shift), -128, 127);
    }
    return fx_requant(acc, out_shift);
}

/* Checks shared by dense and conv layers. */
static inline fx_status fx_check_layer(const void *x, const void *w, const void *bias, const void *y,
                                       uint32_t bits, uint32_t bias_shift, uint32_t out_shift,
                                       uint32_t rounding)
{
    if (x == NULL || w == NULL || bias == NULL || y == NULL) {
        return FX_ERR_NULL;
    }
    if (bits != 1u && bits != 2u && bits != 4u && bits != 8u) {
        return FX_ERR_BITS;
    }
    if (bias_shift > 30u || out_shift > 30u) {
        return FX_ERR_SHIFT;
    }
    if (rounding != FX_ROUNDING_CMSIS && rounding != FX_ROUNDING_TFLM) {
        return FX_ERR_ROUNDING;
    }
    return FX_OK;
}

/*
 * Fully connected layer, y = SSAT8((W x + b) >> out_shift) rounded by `rounding`,
 * W row-major [n_out][n_in] stored with `bits` bits per weight (8 = int8). y must not alias x.
 */
static inline fx_status fx_dense_packed_r(const int8_t *x, uint32_t n_in, const uint8_t *w, uint32_t bits,
                                          const int8_t *bias, uint32_t n_out, uint32_t bias_shift,
                                          uint32_t out_shift, uint32_t rounding, int8_t *y)
{
    uint32_t o, i;
    fx_status st = fx_check_layer(x, w, bias, y, bits, bias_shift, out_shift, rounding);
    if (st != FX_OK) {
        return st;
    }
    if (n_in == 0u || n_out == 0u) {
        return FX_ERR_SHAPE;
    }
    for (o = 0; o < n_out; o++) {
        int32_t acc = fx_acc_init_r(bias[o], bias_shift, out_shift, rounding);
        uint32_t row = o * n_in;
        for (i = 0; i < n_in; i++) {
            acc += (int32_t)x[i] * fx_weight(w, row + i, bits);
        }
        y[o] = fx_requant_r(acc, out_shift, rounding);
    }
    return FX_OK;
}

/* fx_dense_packed_r with CMSIS-NN's rounding. */
static inline fx_status fx_dense_packed(const int8_t *x, uint32_t n_in, const uint8_t *w, uint32_t bits,
                                        const int8_t *bias, uint32_t n_out, uint32_t bias_shift,
                                        uint32_t out_shift, int8_t *y)
{
    return fx_dense_packed_r(x, n_in, w, bits, bias, n_out, bias_shift, out_shift, FX_ROUNDING_CMSIS, y);
}

/* fx_dense_packed with int8 weights: the arm_fully_connected_q7 arithmetic. */
static inline fx_status fx_dense_q7(const int8_t *x, uint32_t n_in, const int8_t *w, const int8_t *bias,
                                    uint32_t n_out, uint32_t bias_shift, uint32_t out_shift, int8_t *y)
{
    return fx_dense_packed(x, n_in, (const uint8_t *)w, 8u, bias, n_out, bias_shift, out_shift, y);
}

/* Output side of a stride-1 convolution: h + 2 pad - k + 1 (0 if it does not fit). */
static inline uint32_t fx_conv_out_dim(uint32_t h, uint32_t k, uint32_t pad)
{
    return h + 2u * pad >= k ? h + 2u * pad - k + 1u : 0u;
}

/* One conv output: the kh x kw x c_in window at (oy, ox) against filter o; padding is zero. */
static inline int32_t fx_conv_window(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                     const uint8_t *wt, uint32_t bits, uint32_t kh, uint32_t kw,
                                     uint32_t pad_h, uint32_t pad_w, uint32_t oy, uint32_t ox, uint32_t o,
                                     int32_t acc)
{
    uint32_t ky, kx, c;
    for (ky = 0; ky < kh; ky++) {
        int32_t iy = (int32_t)(oy + ky) - (int32_t)pad_h;
        if (iy < 0 || iy >= (int32_t)h) {
            continue; /* zero padding adds nothing */
        }
        for (kx = 0; kx < kw; kx++) {
            int32_t ix = (int32_t)(ox + kx) - (int32_t)pad_w;
            const int8_t *px;
            uint32_t wi;
            if (ix < 0 || ix >= (int32_t)w) {
                continue;
            }
            px = in + ((uint32_t)iy * w + (uint32_t)ix) * c_in;
            wi = ((o * kh + ky) * kw + kx) * c_in;
            for (c = 0; c < c_in; c++) {
                acc += (int32_t)px[c] * fx_weight(wt, wi + c, bits);
            }
        }
    }
    return acc;
}

/*
 * 2-D convolution, stride 1, HWC input [h][w][c_in], weights [c_out][kh][kw][c_in]
 * with `bits` bits each (8 = int8), output HWC [oh][ow][c_out] where
 * oh = h + 2 pad_h - kh + 1 and ow = w + 2 pad_w - kw + 1; per axis, pad = 0 is "valid",
 * pad = k/2 (odd k) is "same"; requantised by `rounding`. out must not alias in.
 * A 1-D conv over a (T, C) window is the case kh = h = 1 (one row).
 */
static inline fx_status fx_conv_hwc_nonsquare_packed_r(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                                       const uint8_t *wt, uint32_t bits, uint32_t c_out,
                                                       uint32_t kh, uint32_t kw, uint32_t pad_h, uint32_t pad_w,
                                                       const int8_t *bias, uint32_t bias_shift,
                                                       uint32_t out_shift, uint32_t rounding, int8_t *out)
{
    uint32_t oh = fx_conv_out_dim(h, kh, pad_h), ow = fx_conv_out_dim(w, kw, pad_w);
    uint32_t oy, ox, o;
    fx_status st = fx_check_layer(in, wt, bias, out, bits, bias_shift, out_shift, rounding);
    if (st != FX_OK) {
        return st;
    }
    if ((pad_h != 0u && (pad_h != kh / 2u || kh % 2u == 0u)) ||
        (pad_w != 0u && (pad_w != kw / 2u || kw % 2u == 0u))) {
        return FX_ERR_PAD;
    }
    if (c_in == 0u || c_out == 0u || kh == 0u || kw == 0u || oh == 0u || ow == 0u) {
        return FX_ERR_SHAPE;
    }
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (o = 0; o < c_out; o++) {
                int32_t acc = fx_acc_init_r(bias[o], bias_shift, out_shift, rounding);
                acc = fx_conv_window(in, h, w, c_in, wt, bits, kh, kw, pad_h, pad_w, oy, ox, o, acc);
                out[(oy * ow + ox) * c_out + o] = fx_requant_r(acc, out_shift, rounding);
            }
        }
    }
    return FX_OK;
}

/* fx_conv_hwc_nonsquare_packed_r with int8 weights and CMSIS-NN's rounding: the
 * arm_convolve_HWC_q7_basic_nonsquare arithmetic. */
static inline fx_status fx_conv_hwc_nonsquare_q7(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                                 const int8_t *wt, uint32_t c_out, uint32_t kh, uint32_t kw,
                                                 uint32_t pad_h, uint32_t pad_w, const int8_t *bias,
                                                 uint32_t bias_shift, uint32_t out_shift, int8_t *out)
{
    return fx_conv_hwc_nonsquare_packed_r(in, h, w, c_in, (const uint8_t *)wt, 8u, c_out, kh, kw, pad_h, pad_w,
                                          bias, bias_shift, out_shift, FX_ROUNDING_CMSIS, out);
}

/* The square case, k x k with pad on every side. */
static inline fx_status fx_conv_hwc_packed_r(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                             const uint8_t *wt, uint32_t bits, uint32_t c_out, uint32_t k,
                                             uint32_t pad, const int8_t *bias, uint32_t bias_shift,
                                             uint32_t out_shift, uint32_t rounding, int8_t *out)
{
    return fx_conv_hwc_nonsquare_packed_r(in, h, w, c_in, wt, bits, c_out, k, k, pad, pad, bias, bias_shift,
                                          out_shift, rounding, out);
}

/* fx_conv_hwc_packed_r with CMSIS-NN's rounding. */
static inline fx_status fx_conv_hwc_packed(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                           const uint8_t *wt, uint32_t bits, uint32_t c_out, uint32_t k,
                                           uint32_t pad, const int8_t *bias, uint32_t bias_shift,
                                           uint32_t out_shift, int8_t *out)
{
    return fx_conv_hwc_packed_r(in, h, w, c_in, wt, bits, c_out, k, pad, bias, bias_shift, out_shift,
                                FX_ROUNDING_CMSIS, out);
}

/* fx_conv_hwc_packed with int8 weights: the arm_convolve_HWC_q7_basic arithmetic. */
static inline fx_status fx_conv_hwc_q7(const int8_t *in, uint32_t h, uint32_t w, uint32_t c_in,
                                       const int8_t *wt, uint32_t c_out, uint32_t k, uint32_t pad,
                                       const int8_t *bias, uint32_t bias_shift, uint32_t out_shift,
                                       int8_t *out)
{
    return fx_conv_hwc_packed(in, h, w, c_in, (const uint8_t *)wt, 8u, c_out, k, pad, bias, bias_shift,
                              out_shift, out);
}

/* ReLU in place over n values. */
static inline void fx_relu_q7(int8_t *x, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (x[i] < 0) {
            x[i] = 0;
        }
    }
}

/*
 * Max pooling ph x pw, stride ph down and pw across, HWC [h][w][c] -> [h/ph][w/pw][c]
 * (floor: a ragged last row or column is dropped). The exponent is unchanged.
 * out must not alias in. arm_maxpool_q7_HWC has square windows only.
 */
static inline fx_status fx_maxpool_hwc_nonsquare_q7(const int8_t *in, uint32_t h, uint32_t w, uint32_t c,
                                                    uint32_t ph, uint32_t pw, int8_t *out)
{
    uint32_t oh, ow, oy, ox, ch, dy, dx;
    if (in == NULL || out == NULL) {
        return FX_ERR_NULL;
    }
    if (ph == 0u || pw == 0u || c == 0u || h < ph || w < pw) {
        return FX_ERR_SHAPE;
    }
    oh = h / ph;
    ow = w / pw;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (ch = 0; ch < c; ch++) {
                int8_t m = -128;
                for (dy = 0; dy < ph; dy++) {
                    for (dx = 0; dx < pw; dx++) {
                        int8_t v = in[((oy * ph + dy) * w + ox * pw + dx) * c + ch];
                        m = v > m ? v : m;
                    }
                }
                out[(oy * ow + ox) * c + ch] = m;
            }
        }
    }
    return FX_OK;
}

/* Max pooling p x p, stride p (arm_maxpool_q7_HWC's arithmetic on a square input). */
static inline fx_status fx_maxpool_hwc_q7(const int8_t *in, uint32_t h, uint32_t w, uint32_t c,
                                          uint32_t p, int8_t *out)
{
    return fx_maxpool_hwc_nonsquare_q7(in, h, w, c, p, p, out);
}

/*
 * Global average pooling, HWC [h][w][c] -> [c], in the input's exponent, with TFLite's
 * int8 AVERAGE_POOL_2D rounding (fxtrain/layers/gap.py average_round): over n = h * w
 * positions, the channel's int32 sum S gives (S + n/2) / n for S > 0, (S - n/2) / n
 * otherwise, C division truncating toward zero: to nearest, ties away from zero.
 * CMSIS-NN's legacy arm_avepool_q7_HWC rounds otherwise, so it is no equivalent.
 * The sum is int32 while 128 * n < 2^31 (calibration refuses more). out must not alias in.
 */
static inline fx_status fx_avgpool_global_q7(const int8_t *in, uint32_t h, uint32_t w, uint32_t c, int8_t *out)
{
    uint32_t n = h * w, i, ch;
    if (in == NULL || out == NULL) {
        return FX_ERR_NULL;
    }
    if (n == 0u || c == 0u || n > 16777215u) {
        return FX_ERR_SHAPE;
    }
    for (ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (i = 0; i < n; i++) {
            acc += (int32_t)in[i * c + ch];
        }
        acc = acc > 0 ? (acc + (int32_t)(n / 2u)) / (int32_t)n : (acc - (int32_t)(n / 2u)) / (int32_t)n;
        out[ch] = (int8_t)fx_sat(acc, -128, 127);
    }
    return FX_OK;
}

/* Index of the largest of n values; the first one wins a tie (numpy.argmax). */
static inline uint32_t fx_argmax_q7(const int8_t *x, uint32_t n)
{
    uint32_t i, best = 0;
    for (i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return best;
}

#ifdef __cplusplus
}
#endif

#endif /* FX_RUNTIME_H */
