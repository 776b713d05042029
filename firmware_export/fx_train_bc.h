/*
 * fx_train_bc.h -- BinaryConnect's float32 update for fx_train_runtime.h (included by it for a bc run only).
 *
 * The shadow weights w_r are float32; the passes read their packed b-bit copy. Per
 * weight, in this order and no other (the simulator's updates.update_bc):
 *   d = step * (float)G;  with momentum: vel = beta * vel + d; d = vel;
 *   v = clip(w_r - d, +-qmax * 2^e_w);  w_r = v;  w = sat(floor(v * 2^-e_w + 0.5f))  (b = 1: sign of v)
 * The layer's constants are worked out once per layer (fx_bc_begin), so a row pays only for
 * the float arithmetic above and the conversions in and out of it.
 * Float results equal numba's bit for bit only if the compiler neither fuses nor
 * reorders these operations: build with -std=c99 (ISO C: no FMA contraction) or
 * with -ffp-contract=off, and never with -ffast-math. The checks below refuse a build
 * that cannot keep that promise. On a core without an FPU this is libgcc soft-float.
 */
#ifndef FX_TRAIN_BC_H
#define FX_TRAIN_BC_H

#if defined(__FAST_MATH__)
#error "fx_train_bc.h: BinaryConnect's update must not be built with -ffast-math (it reorders float operations)"
#endif
#if defined(__GNUC__) && !defined(__STRICT_ANSI__) && !defined(FX_FP_CONTRACT_OFF)
#error "fx_train_bc.h: build with -std=c99 (no FMA contraction in ISO C) or with -ffp-contract=off -DFX_FP_CONTRACT_OFF"
#endif

#include <math.h>

/* What every row of one layer's BinaryConnect step shares, worked out once per layer. */
typedef struct {
    float step; /* alpha * 2^e_g rounded once to float32, as numpy's float32(m * 2.0 ** (e_g - k)) */
    float inv;  /* 2^-e_w */
    float lim;  /* qmax * 2^e_w: the clip */
#if FX_MOMENTUM
    float beta; /* 1 - 2^-mom_j */
#endif
} fx_bc_step;

/* The layer's constants: powers of two and m (at most 16 bits) are exact in float32, so ldexpf
 * rounds m * 2^(e_g - k) once, as the simulator's float64 product rounded to float32 does. */
static inline fx_bc_step fx_bc_begin(const fx_net *net, const fx_layer *L, int32_t e_g)
{
    fx_bc_step c;
    c.step = ldexpf((float)net->m, e_g - net->k);
    c.inv = ldexpf(1.0f, -L->e_w);
    c.lim = (float)net->qmax * ldexpf(1.0f, L->e_w);
#if FX_MOMENTUM
    c.beta = 1.0f - ldexpf(1.0f, -net->mom_j);
#endif
    return c;
}

/* floor(t) for |t| < 2^31: the conversion truncates toward zero, and a negative fraction steps down.
 * Exactly floorf's result there, without a call or a 64-bit conversion. */
static inline int32_t fx_floor_small(float t)
{
    int32_t i = (int32_t)t;
    return i - ((float)i > t);
}

/* BinaryConnect step of output row o of layer L from its gradient grad[0..fan_in). */
static void fx_bc_update_row(const fx_net *net, const fx_layer *L, uint32_t o, const fx_bc_step *c,
                             const fx_grad_t *grad)
{
    uint8_t *row = net->w + L->w_byte + o * L->row_bytes;
    uint32_t j, f = L->fan_in, i0 = L->w_off + o * f;
    float *shadow = (float *)net->shadow + i0;
#if FX_MOMENTUM
    float *vel = (float *)net->mom + i0;
#endif
    const float step = c->step, lim = c->lim;
#if FX_BITS != 1
    const float inv = c->inv;
    const int32_t qmax = net->qmax;
#endif
    int32_t clipped = 0;
    for (j = 0; j < f; j++) {
        float d = step * (float)grad[j];
        float v;
#if FX_MOMENTUM
        vel[j] = c->beta * vel[j] + d;
        d = vel[j];
#endif
        v = shadow[j] - d;
        if (v > lim) { /* two compares clip and count: each is a libgcc call on a core without an FPU */
            v = lim;
            clipped++;
        } else if (v < -lim) {
            v = -lim;
            clipped++;
        }
        shadow[j] = v;
#if FX_BITS == 1
        fx_slot_set(row, j, v >= 0.0f ? 1 : -1);
#else
        /* |v * inv| <= qmax after the clip, so the floor fits 32 bits */
        {
            int32_t q = fx_floor_small(v * inv + 0.5f);
            fx_slot_set(row, j, q > qmax ? qmax : (q < -qmax ? -qmax : q));
        }
#endif
    }
    net->counters[(uint32_t)(L - net->layers) * FX_N_SAT + FX_SAT_WEIGHT] += clipped;
}

#endif /* FX_TRAIN_BC_H */
