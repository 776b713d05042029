/*
 * fx_train_runtime.h -- fxtrain on-device training runtime: header-only C99, integers only.
 *
 * The C twin of fxtrain/engine (kernels.py, requant.py, passes.py, updates.py,
 * epoch.py): the same integer forward and backward passes, the same stochastic
 * rounding, and the same xorshift32 stream drawn in the same order, so a device
 * continues a run exactly as the simulator would. `fxtrain verify --train-step`
 * compares the two step by step.
 *
 * Include it only through a generated PREFIX_train.h, which sets the compile-time
 * choices below and declares every buffer statically (no heap):
 *   FX_ACC_WIDE, FX_GRAD_WIDE  1 where a sum's bound exceeds int32 (engine/bounds.py)
 *   FX_PERM_WIDE               1 above 65,536 training samples
 *   FX_METHOD                  FX_METHOD_SR, FX_METHOD_R or FX_METHOD_BC
 *   FX_SLOT, FX_BITS           storage slot (1, 2, 4, 8, 16) and weight bits
 *   FX_MOMENTUM                1 with momentum
 *   FX_GRAD_CHUNK, FX_ACC_BYTES  conv gradient positions per chunk; the accumulator's bytes
 *   FX_LOW                     the lowest layer that trains (fine-tuning; 0, the default, when all do)
 * BinaryConnect's shadow-weight update lives in fx_train_bc.h, included only for a bc
 * run, so this file and every sr or r export hold no floating-point code or type.
 *
 * Weights are packed in RAM at FX_SLOT bits each, LSB-first (the format of fx_runtime.h's
 * fx_weight), one row per dense output or conv filter, each row padded to a whole word so
 * the kernels (fx_train_kernels.h) can read it by words; sub-byte rows are unpacked once
 * per pass and the update repacks a row. Draw order per step, from the last layer to the
 * first: one draw per error value sent below, then (sr) one per weight, in weight order,
 * and one per bias. A dense layer's gradient is formed one output row at a time and
 * applied before the next row; a conv layer's, all of it first: the draws do not depend
 * on it. A single-channel unpadded conv forms it from byte-shifted copies of its input
 * and widened error planes, all in the accumulator (fx_gradient_rows).
 *
 * Fine-tuning (FX_LOW > 0): the layers under FX_LOW are frozen. Their packed rows and biases are
 * const, in flash (fx_net's fw and fb; the table's offsets of a layer are into the arrays that hold
 * it), they run forward only, and the backward walk stops at FX_LOW, which sends no error below
 * and draws nothing for one: the frozen layers make no draw at all.
 */
#ifndef FX_TRAIN_RUNTIME_H
#define FX_TRAIN_RUNTIME_H

#include "fx_runtime.h"

#ifndef FX_ACC_WIDE
#error "include fx_train_runtime.h through a generated PREFIX_train.h"
#endif
/* Fine-tuning: the layers under FX_LOW, the lowest that trains, are frozen (0: every layer trains). */
#ifndef FX_LOW
#define FX_LOW 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------- shared constants (fxtrain/engine) */

#define FX_METHOD_SR 0
#define FX_METHOD_R 1
#define FX_METHOD_BC 2
#define FX_KIND_DENSE 0
#define FX_KIND_CONV 1
#define FX_KIND_POOL 2
#define FX_KIND_GAP 3
/* Saturation counter kinds (engine/requant.py SAT_*): one row of FX_N_SAT per layer. */
#define FX_SAT_ACT 0
#define FX_SAT_ERR 1
#define FX_SAT_BIAS 2
#define FX_SAT_MOM 3
#define FX_SAT_WEIGHT 4
#define FX_N_SAT 5
/* A bias enters the forward sum clamped to +-2^30 (engine/bounds.py BIAS_TERM_LIMIT). */
#define FX_BIAS_TERM_LIMIT ((int64_t)1 << 30)
#define FX_BINARY_FRAC_BITS 16 /* a binary weight's updated value, in fixed point */
#define FX_MOM_FRAC_BITS 8     /* the int16 velocity resolves 1/256 of a grid step */
#define FX_SOFTMAX_EXPONENT (-7)
/* FNV-1a over 32-bit words: the per-tensor checksums verify prints (engine/numbers.py). */
#define FX_FNV_OFFSET 2166136261u
#define FX_FNV_PRIME 16777619u

#if FX_ACC_WIDE
typedef int64_t fx_acc_t;
#else
typedef int32_t fx_acc_t;
#endif
#if FX_GRAD_WIDE
typedef int64_t fx_grad_t;
#else
typedef int32_t fx_grad_t;
#endif
/* The weights' value type in the kernels: int8, or int16 for 16-bit slots. */
#if FX_SLOT == 16
typedef int16_t fx_wv_t;
#else
typedef int8_t fx_wv_t;
#endif
#if FX_PERM_WIDE
typedef uint32_t fx_perm_t;
#else
typedef uint16_t fx_perm_t;
#endif

#if defined(__GNUC__)
#define FX_NOINLINE __attribute__((noinline)) /* keep each phase a function of its own */
#else
#define FX_NOINLINE
#endif

/* Every buffer a kernel reads by words is declared on a word; FX_ALIGNED(p) tells the compiler. */
#if defined(__GNUC__)
#define FX_WORD_ALIGNED __attribute__((aligned(4)))
#else
#define FX_WORD_ALIGNED
#endif
#if defined(__GNUC__)
#define FX_ALIGNED(p) __builtin_assume_aligned((p), 4)
#else
#define FX_ALIGNED(p) (p)
#endif

/* n rounded up to a multiple of 4: a row stride that keeps every row on a word. */
#define FX_PAD4(n) (((uint32_t)(n) + 3u) & ~3u)

/* One layer, as network.py's desc row. Shapes are (h, w, c); a dense layer sees (1, 1, n).
 * A kernel (conv) or window (pool) is kh x kw; pad_h and pad_w are the zero rows above and
 * columns left of the input ("same" pads as many below and right). Weight row o (a dense
 * output or a conv filter) starts at byte w_byte + o * row_bytes: rows are padded to whole
 * words so the kernels can read them a word at a time. */
typedef struct {
    uint8_t kind, relu, kh, kw, pad_h, pad_w;
    uint32_t in_h, in_w, in_c, out_h, out_w, out_c;
    uint32_t n_in, n_out, n_w, fan_in; /* values per sample; weights; weights per output */
    uint32_t w_off, w_byte, row_bytes, b_off; /* first weight, its byte, bytes per weight row, first bias */
    int32_t e_w, e_b;                  /* weight and bias exponents, fixed at initialisation */
} fx_layer;

/* A network and every buffer it trains in, all static (declared by PREFIX_train.h). */
typedef struct {
    const fx_layer *layers;
    uint32_t n_layers, batch, n_features, n_classes, widest, max_samples;
    int32_t qmax, k, mom_j, e_x;
    int64_t m; /* the per-sample step alpha / batch = m * 2^-k */
    uint8_t *w;
    int32_t *b;
    void *shadow;          /* bc: its shadow weights (fx_train_bc.h) */
    void *mom;             /* momentum velocity: int16 (sr, r), or bc's (fx_train_bc.h) */
    int8_t *const *acts;   /* acts[0]: input batch; acts[l + 1]: output of layer l */
    uint8_t *labels;
    fx_acc_t *acc;
    int8_t *err;           /* error ping-pong: two halves of PAD4(batch * widest), widest of the trained layers */
    int8_t *opa, *opb;     /* word-aligned operand scratch: activations / im2col, and errors */
    fx_wv_t *rows;         /* weight rows unpacked from sub-byte slots, or a transposed block */
    fx_grad_t *grad, *gbias;
    int32_t *probs, *e_act, *counters;
    fx_perm_t *perm;
    uint32_t *rng;
#if FX_LOW
    const uint8_t *fw;     /* the frozen layers' packed rows and biases, in flash */
    const int32_t *fb;
#endif
} fx_net;

/* Layer L's packed weight rows and its biases: in flash under FX_LOW (frozen), else in RAM. */
#if FX_LOW
#define FX_FROZEN(net, L) ((uint32_t)((L) - (net)->layers) < FX_LOW)
#define fx_layer_w(net, L) ((FX_FROZEN(net, L) ? (net)->fw : (const uint8_t *)(net)->w) + (L)->w_byte)
#define fx_layer_b(net, L) ((FX_FROZEN(net, L) ? (net)->fb : (const int32_t *)(net)->b) + (L)->b_off)
#else
#define fx_layer_w(net, L) ((net)->w + (L)->w_byte)
#define fx_layer_b(net, L) ((net)->b + (L)->b_off)
#endif

/* ------------------------------------------------------- packed weights */

/* Value j of a packed weight row at FX_SLOT bits (a constant: the branches fold away). Slots of
 * 1, 2, 4 and 8 bits are the inference runtime's format, decoded by its fx_weight. */
static inline int32_t fx_slot_get(const uint8_t *row, uint32_t j)
{
    if (FX_SLOT == 16) {
        uint32_t v = (uint32_t)row[2u * j] | ((uint32_t)row[2u * j + 1u] << 8);
        return (int32_t)v - (int32_t)((v & 0x8000u) << 1);
    }
    return fx_weight(row, j, FX_SLOT);
}

/* Rewrite value j of a packed row with v (in range for FX_BITS; b = 1 stores +1 as bit 1). */
static inline void fx_slot_set(uint8_t *row, uint32_t j, int32_t v)
{
    uint32_t u = (uint32_t)v, sh;
    switch (FX_SLOT) {
    case 1:
        sh = j & 7u;
        row[j >> 3] = (uint8_t)((row[j >> 3] & ~(1u << sh)) | ((uint32_t)(v > 0) << sh));
        break;
    case 2:
        sh = (j & 3u) * 2u;
        row[j >> 2] = (uint8_t)((row[j >> 2] & ~(3u << sh)) | ((u & 3u) << sh));
        break;
    case 4:
        sh = (j & 1u) * 4u;
        row[j >> 1] = (uint8_t)((row[j >> 1] & ~(15u << sh)) | ((u & 15u) << sh));
        break;
    case 8:
        row[j] = (uint8_t)(u & 0xFFu);
        break;
    default:
        row[2u * j] = (uint8_t)(u & 0xFFu);
        row[2u * j + 1u] = (uint8_t)((u >> 8) & 0xFFu);
        break;
    }
}

/* Weight i of layer L (row i / fan_in, slot i % fan_in), from the layer's packed rows wl. */
static inline int32_t fx_w_get(const fx_layer *L, const uint8_t *wl, uint32_t i)
{
    return fx_slot_get(wl + (i / L->fan_in) * L->row_bytes, i % L->fan_in);
}

/* Field k (0 = lowest) of FX_SLOT bits in byte b, sign-extended by two shifts; b = 1: bit 1 is +1 */
#define FX_FIELD(b, k)                                                                               \
    (FX_SLOT == 1 ? 2 * (int32_t)(((b) >> (k)) & 1u) - 1                                             \
                  : fx_asr32((int32_t)((uint32_t)(b) << (32u - FX_SLOT * ((k) + 1u))), 32u - FX_SLOT))
/* Field k of value v, in place in a byte (v in range for FX_BITS). */
#define FX_PUT(v, k) ((FX_SLOT == 1 ? (uint32_t)((v) > 0) : (uint32_t)(v) & ((1u << FX_SLOT) - 1u)) << (FX_SLOT * (k)))

/* The f values of one packed row, a whole byte of slots at a time (written out: the loop over a
 * byte's slots would cost more than the slots); values past f, up to a word, come out zero. */
static inline void fx_unpack_row(const uint8_t *row, uint32_t f, fx_wv_t *d)
{
    uint32_t j = 0;
#if FX_SLOT == 1
    /* d on a word: four bits a word, each moved into its byte by one product (the four shifted
     * copies of a 4-bit value do not overlap), then bit 1 -> +1 and 0 -> -1 as ~(bit * 0xFE) */
    for (; j + 8u <= f; j += 8u) {
        const uint32_t b = row[j / 8u], lo = ~((((b & 15u) * 0x00204081u) & 0x01010101u) * 0xFEu);
        const uint32_t hi = ~((((b >> 4) * 0x00204081u) & 0x01010101u) * 0xFEu);
        memcpy(FX_ALIGNED(d + j), &lo, sizeof lo);
        memcpy(FX_ALIGNED(d + j + 4u), &hi, sizeof hi);
    }
#endif
#if FX_SLOT < 8
    const uint32_t per = 8u / FX_SLOT, full = f / per * per;
    for (; j < full; j += per) {
        uint32_t b = row[j / per];
        d[j] = (fx_wv_t)FX_FIELD(b, 0u);
        d[j + 1u] = (fx_wv_t)FX_FIELD(b, 1u);
#if FX_SLOT <= 2
        d[j + 2u] = (fx_wv_t)FX_FIELD(b, 2u);
        d[j + 3u] = (fx_wv_t)FX_FIELD(b, 3u);
#endif
#if FX_SLOT == 1
        d[j + 4u] = (fx_wv_t)FX_FIELD(b, 4u);
        d[j + 5u] = (fx_wv_t)FX_FIELD(b, 5u);
        d[j + 6u] = (fx_wv_t)FX_FIELD(b, 6u);
        d[j + 7u] = (fx_wv_t)FX_FIELD(b, 7u);
#endif
    }
#endif
    for (; j < f; j++) {
        d[j] = (fx_wv_t)fx_slot_get(row, j);
    }
    for (; j < FX_PAD4(f); j++) {
        d[j] = 0;
    }
}

/* Pack f values (in range for FX_BITS) into a row: the inverse of fx_unpack_row. */
static inline void fx_pack_row(const fx_wv_t *v, uint32_t f, uint8_t *row)
{
    uint32_t j = 0;
#if FX_SLOT < 8
    const uint32_t per = 8u / FX_SLOT, full = f / per * per;
    for (; j < full; j += per) {
        uint32_t b = FX_PUT(v[j], 0u) | FX_PUT(v[j + 1u], 1u);
#if FX_SLOT <= 2
        b |= FX_PUT(v[j + 2u], 2u) | FX_PUT(v[j + 3u], 3u);
#endif
#if FX_SLOT == 1
        b |= FX_PUT(v[j + 4u], 4u) | FX_PUT(v[j + 5u], 5u) | FX_PUT(v[j + 6u], 6u) | FX_PUT(v[j + 7u], 7u);
#endif
        row[j / per] = (uint8_t)b;
    }
#endif
    for (; j < f; j++) {
        fx_slot_set(row, j, v[j]);
    }
}

/* Unpack rows [o, o + n) of layer L into values on the word stride FX_PAD4(fan_in), zero padded. */
static inline void fx_unpack_rows(const fx_layer *L, const uint8_t *wl, uint32_t o, uint32_t n, fx_wv_t *dst)
{
    uint32_t r;
    for (r = 0; r < n; r++) {
        fx_unpack_row(wl + (o + r) * L->row_bytes, L->fan_in, dst + r * FX_PAD4(L->fan_in));
    }
}

/* Rows [o, o + n) of layer L as values: straight from storage for 8- and 16-bit slots (rows are
 * padded to words), else unpacked into scratch. *stride gets the row stride in values. */
static inline const fx_wv_t *fx_weight_rows(const fx_layer *L, const uint8_t *wl, uint32_t o, uint32_t n,
                                            fx_wv_t *scratch, uint32_t *stride)
{
    if (FX_SLOT >= 8) {
        *stride = L->row_bytes / (uint32_t)sizeof(fx_wv_t);
        return (const fx_wv_t *)FX_ALIGNED(wl + o * L->row_bytes);
    }
    *stride = FX_PAD4(L->fan_in);
    fx_unpack_rows(L, wl, o, n, scratch);
    return scratch;
}

/* ------------------------------------------------------- rounding helpers */

static inline int32_t fx_bitlen64(uint64_t x)
{
    int32_t n = 0;
    while (x) {
        x >>= 1;
        n++;
    }
    return n;
}

/* The shift that brings max|a[0..n)| into int8: max(0, bitlen - 7) (requant.tensor_shift).
 * bitlen of an OR is the largest bitlen, so OR-ing the magnitudes finds it without compares. */
static inline int32_t fx_tensor_shift(const fx_acc_t *a, uint32_t n)
{
    uint32_t j;
    int32_t b;
#if FX_ACC_WIDE
    uint64_t m = 0;
    for (j = 0; j < n; j++) {
        uint64_t sgn = (uint64_t)(a[j] < 0 ? -1 : 0);
        m |= ((uint64_t)a[j] ^ sgn) - sgn;
    }
#else
    uint32_t m = 0, m1 = 0;
    for (j = 0; j + 2u <= n; j += 2u) { /* two values a trip, two ORs: a shorter chain */
        uint32_t s0 = (uint32_t)fx_asr32(a[j], 31), s1 = (uint32_t)fx_asr32(a[j + 1u], 31);
        m |= ((uint32_t)a[j] ^ s0) - s0;
        m1 |= ((uint32_t)a[j + 1u] ^ s1) - s1;
    }
    for (; j < n; j++) {
        uint32_t sgn = (uint32_t)fx_asr32(a[j], 31);
        m |= ((uint32_t)a[j] ^ sgn) - sgn;
    }
    m |= m1;
#endif
    b = fx_bitlen64(m) - 7;
    return b > 0 ? b : 0;
}

/* The same shift from the OR of the magnitudes, m. */
static inline int32_t fx_shift_of(uint32_t m)
{
    int32_t b = fx_bitlen64(m) - 7;
    return b > 0 ? b : 0;
}

/* The method's rounding of x / 2^s: SR with one draw, R half up (updates.py _rounded). */
static inline int64_t fx_rounded(int64_t x, int32_t s, uint32_t *rng)
{
#if FX_METHOD == FX_METHOD_SR
    return fx_sr_shift(x, s, fx_xorshift32(rng));
#else
    (void)rng;
    return fx_round_shift(x, s);
#endif
}

/* b re-exponented by shift and clamped to +-2^30, never forming a product past int64. */
static inline int64_t fx_bias_term(int32_t b, int32_t shift, int32_t *clamped)
{
    int64_t v = b;
    if (shift < 0) {
        int64_t room = FX_BIAS_TERM_LIMIT >> (-shift > 62 ? 62 : -shift);
        *clamped = v > room || v < -room;
        if (*clamped) {
            return v > 0 ? FX_BIAS_TERM_LIMIT : -FX_BIAS_TERM_LIMIT;
        }
        return fx_shl64(v, -shift);
    }
    v = fx_round_shift(v, shift);
    *clamped = v > FX_BIAS_TERM_LIMIT || v < -FX_BIAS_TERM_LIMIT;
    return fx_sat(v, -FX_BIAS_TERM_LIMIT, FX_BIAS_TERM_LIMIT);
}

static inline int32_t fx_exp2_neg(int64_t a_q8)
{
    int64_t ip = a_q8 >> FX_EXP2_FRAC_BITS; /* a_q8 >= 0 here */
    if (ip >= 31) {
        return 0;
    }
    return fx_exp2_neg_q15((uint8_t)(a_q8 & ((1 << FX_EXP2_FRAC_BITS) - 1))) >> ip;
}

/* A layer kind this runtime does not know: stop, rather than run it as another kind. The
 * generated table holds only known kinds, so reaching this is a broken build. */
static inline void fx_unknown_kind(const fx_net *net, const fx_layer *L)
{
    (void)net;
    (void)L;
#if defined(__GNUC__)
    __builtin_trap();
#else
    for (;;) {
    }
#endif
}

#include "fx_train_kernels.h"
#if FX_TRAIN_BC
#include "fx_train_bc.h"
#endif

#include "fx_train_passes.h"

#ifdef __cplusplus
}
#endif

#endif /* FX_TRAIN_RUNTIME_H */
