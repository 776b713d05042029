/*
 * fx_train_bc.h -- BinaryConnect's float32 update for fx_train_runtime.h (included by it for a bc run only).
 *
 * The shadow weights w_r are float32; the passes read their packed b-bit copy. Per
 * weight, in this order and no other (the simulator's updates.update_bc):
 *   d = step * (float)G;  with momentum: vel = beta * vel + d; d = vel;
 *   v = clip(w_r - d, +-qmax * 2^e_w);  w_r = v;  w = sat(floor(v * 2^-e_w + 0.5f))  (b = 1: sign of v)
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

/* BinaryConnect step of output row o of layer l; its gradient's exponent is e_g. */
static void fx_bc_update_row(const fx_net *net, uint32_t l, uint32_t o, int32_t e_g, const fx_grad_t *grad)
{
    const fx_layer *L = &net->layers[l];
    uint8_t *wl = net->w + L->w_byte;
    float *shadow = (float *)net->shadow + L->w_off;
#if FX_MOMENTUM
    float *vel = (float *)net->mom + L->w_off;
    const float beta = 1.0f - ldexpf(1.0f, -net->mom_j);
#endif
    /* alpha * 2^e_g rounded once to float32, as numpy's float32(m * 2.0 ** (e_g - k)) */
    const float step = (float)ldexp((double)net->m, e_g - net->k);
#if FX_BITS != 1
    const float inv = ldexpf(1.0f, -L->e_w);
#endif
    const float lim = (float)net->qmax * ldexpf(1.0f, L->e_w);
    int32_t *cnt = net->counters + l * FX_N_SAT;
    uint32_t j, i0 = o * L->fan_in;
    for (j = 0; j < L->fan_in; j++) {
        uint32_t i = i0 + j;
        float d = step * (float)grad[j];
        float v;
#if FX_MOMENTUM
        vel[i] = beta * vel[i] + d;
        d = vel[i];
#endif
        v = shadow[i] - d;
        cnt[FX_SAT_WEIGHT] += v > lim || v < -lim;
        v = v < -lim ? -lim : v;
        v = v > lim ? lim : v;
        shadow[i] = v;
#if FX_BITS == 1
        fx_w_set(wl, i, v >= 0.0f ? 1 : -1);
#else
        fx_w_set(wl, i, (int32_t)fx_sat((int64_t)floorf(v * inv + 0.5f), -net->qmax, net->qmax));
#endif
    }
}

#endif /* FX_TRAIN_BC_H */
