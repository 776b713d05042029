/*
 * fx_train_update.h -- gradients, weight updates, the step and the epoch of fx_train_runtime.h (included by it).
 */
#ifndef FX_TRAIN_UPDATE_H
#define FX_TRAIN_UPDATE_H

/* Gradient of output row o (filter o for conv) into grad[0..fan_in), and its bias gradient. */
static inline fx_grad_t fx_gradient_row(const fx_layer *L, const int8_t *x, const int8_t *err, uint32_t nb,
                                        uint32_t o, fx_grad_t *grad)
{
    uint32_t n, i, oy, ox, ky, kx, c;
    fx_grad_t gb = 0;
    for (i = 0; i < L->fan_in; i++) {
        grad[i] = 0;
    }
    if (L->kind == FX_KIND_DENSE) {
        for (n = 0; n < nb; n++) {
            fx_grad_t e = err[n * L->n_out + o];
            gb += e;
            if (e != 0) {
                for (i = 0; i < L->n_in; i++) {
                    grad[i] += e * (fx_grad_t)x[n * L->n_in + i];
                }
            }
        }
        return gb;
    }
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < L->out_h; oy++) {
            for (ox = 0; ox < L->out_w; ox++) {
                fx_grad_t e = err[((n * L->out_h + oy) * L->out_w + ox) * L->out_c + o];
                gb += e;
                if (e == 0) {
                    continue;
                }
                for (ky = 0; ky < L->k; ky++) {
                    int32_t iy = (int32_t)(oy + ky) - (int32_t)L->pad;
                    if (iy < 0 || iy >= (int32_t)L->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < L->k; kx++) {
                        int32_t ix = (int32_t)(ox + kx) - (int32_t)L->pad;
                        const int8_t *px;
                        if (ix < 0 || ix >= (int32_t)L->in_w) {
                            continue;
                        }
                        px = x + ((n * L->in_h + (uint32_t)iy) * L->in_w + (uint32_t)ix) * L->in_c;
                        for (c = 0; c < L->in_c; c++) {
                            grad[(ky * L->k + kx) * L->in_c + c] += e * (fx_grad_t)px[c];
                        }
                    }
                }
            }
        }
    }
    return gb;
}

#if FX_METHOD != FX_METHOD_BC
/* One weight's step on the b-bit grid: w - Q(x / 2^s), or b = 1's coin flip (updates.py _grid_step). */
static inline int32_t fx_grid_step(int32_t w, int64_t x, int32_t s, int32_t qmax, uint32_t *rng, int32_t *clipped)
{
    int64_t v;
#if FX_BITS == 1
    const int64_t one = (int64_t)1 << FX_BINARY_FRAC_BITS;
    (void)qmax;
    v = (int64_t)w * one - fx_round_shift(x, s - FX_BINARY_FRAC_BITS);
    *clipped += v > one || v < -one;
    v = fx_sat(v, -one, one);
#if FX_METHOD == FX_METHOD_SR
    return (int32_t)(2 * fx_sr_shift(v + one, FX_BINARY_FRAC_BITS + 1, fx_xorshift32(rng)) - 1);
#else
    return v >= 0 ? 1 : -1;
#endif
#else
    v = (int64_t)w - fx_rounded(x, s, rng);
    *clipped += v > qmax || v < -qmax;
    return (int32_t)fx_sat(v, -qmax, qmax);
#endif
}

/* SR or R update of row o's weights from its gradient (and momentum), in weight order. */
static inline void fx_update_row(const fx_net *net, uint32_t l, uint32_t o, int32_t s, const fx_grad_t *grad)
{
    const fx_layer *L = &net->layers[l];
    uint8_t *wl = net->w + L->w_byte;
    int32_t *cnt = net->counters + l * FX_N_SAT;
    uint32_t j, i0 = o * L->fan_in;
    for (j = 0; j < L->fan_in; j++) {
        int64_t mg = net->m * (int64_t)grad[j];
        int32_t w = fx_w_get(wl, i0 + j);
#if FX_MOMENTUM
        int16_t *vel = (int16_t *)net->mom + L->w_off + i0 + j;
        int64_t v = (int64_t)*vel - fx_round_shift(*vel, net->mom_j) + fx_rounded(mg, s - FX_MOM_FRAC_BITS, net->rng);
        cnt[FX_SAT_MOM] += v > 32767 || v < -32768;
        *vel = (int16_t)fx_sat(v, -32768, 32767);
        w = fx_grid_step(w, *vel, FX_MOM_FRAC_BITS, net->qmax, net->rng, &cnt[FX_SAT_WEIGHT]);
#else
        w = fx_grid_step(w, mg, s, net->qmax, net->rng, &cnt[FX_SAT_WEIGHT]);
#endif
        fx_w_set(wl, i0 + j, w);
    }
}
#endif

/*
 * Gradients and updates of layer l, one output row at a time (the row's gradient is
 * applied before the next row is formed), then the biases: the simulator's draw order.
 */
static FX_NOINLINE void fx_update(const fx_net *net, uint32_t l, int32_t e_err, const int8_t *err, uint32_t nb)
{
    const fx_layer *L = &net->layers[l];
    int32_t e_g = e_err + net->e_act[l]; /* gradient exponent: error times input */
    int32_t s = L->e_w + net->k - e_g, *cnt = net->counters + l * FX_N_SAT;
    uint32_t o;
    for (o = 0; o < L->out_c; o++) {
        net->gbias[o] = fx_gradient_row(L, net->acts[l], err, nb, o, net->grad);
#if FX_METHOD == FX_METHOD_BC
        (void)s;
        fx_bc_update_row(net, l, o, e_g, net->grad);
#else
        fx_update_row(net, l, o, s, net->grad);
#endif
    }
    for (o = 0; o < L->out_c; o++) { /* the bias gradient's exponent is the error's alone */
        int64_t v = (int64_t)net->b[L->b_off + o]
                    - fx_rounded(net->m * (int64_t)net->gbias[o], L->e_b + net->k - e_err, net->rng);
        cnt[FX_SAT_BIAS] += v > INT32_MAX || v < INT32_MIN;
        net->b[L->b_off + o] = (int32_t)fx_sat(v, INT32_MIN, INT32_MAX);
    }
}

/* ------------------------------------------------------------- the step */

/* One training step on the batch already in acts[0] and labels. */
static inline void fx_step(const fx_net *net)
{
    uint32_t l, cur = 0, half = net->batch * net->widest;
    int32_t e_err = FX_SOFTMAX_EXPONENT;
    net->e_act[0] = net->e_x;
    fx_forward(net, net->batch, 1);
    fx_loss(net, net->batch, net->err);
    for (l = net->n_layers; l-- > 0;) {
        int8_t *err = net->err + cur * half, *below = net->err + (1u - cur) * half;
        int32_t e_below = fx_backward(net, l, e_err, err, below, net->batch);
        if (net->layers[l].kind != FX_KIND_POOL) {
            fx_update(net, l, e_err, err, net->batch);
        }
        e_err = e_below;
        cur = 1u - cur;
    }
}

/* Fisher-Yates with one draw per position, j = r mod (i + 1) (epoch.shuffle). */
static FX_NOINLINE void fx_shuffle(fx_perm_t *perm, uint32_t n, uint32_t *rng)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        perm[i] = (fx_perm_t)i;
    }
    for (i = n - 1; i > 0; i--) {
        uint32_t j = fx_xorshift32(rng) % (i + 1u);
        fx_perm_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* A new epoch over n samples: a new order from the generator, fresh saturation counters. */
static inline void fx_epoch_begin(const fx_net *net, uint32_t n)
{
    uint32_t j;
    fx_shuffle(net->perm, n, net->rng);
    for (j = 0; j < net->n_layers * FX_N_SAT; j++) {
        net->counters[j] = 0;
    }
}

/* Step on batch b of the epoch: samples perm[b * batch ...] of X [n][n_features] and Y [n]. */
static inline void fx_epoch_step(const fx_net *net, const int8_t *X, const uint8_t *Y, uint32_t b)
{
    uint32_t i, f;
    for (i = 0; i < net->batch; i++) {
        uint32_t src = net->perm[b * net->batch + i];
        for (f = 0; f < net->n_features; f++) {
            net->acts[0][i * net->n_features + f] = X[src * net->n_features + f];
        }
        net->labels[i] = Y[src];
    }
    fx_step(net);
}

/* Classes (first argmax) of n samples in training arithmetic, batch samples at a time. */
static inline void fx_predict_batches(const fx_net *net, const int8_t *X, uint32_t n, uint8_t *classes)
{
    uint32_t start, i, j, c = net->n_classes;
    for (start = 0; start < n; start += net->batch) {
        uint32_t nb = n - start < net->batch ? n - start : net->batch;
        const int8_t *z = net->acts[net->n_layers];
        for (i = 0; i < nb * net->n_features; i++) {
            net->acts[0][i] = X[start * net->n_features + i];
        }
        net->e_act[0] = net->e_x;
        fx_forward(net, nb, 0);
        for (i = 0; i < nb; i++) {
            uint32_t best = 0;
            for (j = 1; j < c; j++) {
                best = z[i * c + j] > z[i * c + best] ? j : best;
            }
            classes[start + i] = (uint8_t)best;
        }
    }
}

/* FNV-1a over 32-bit words: h after one more value. */
static inline uint32_t fx_fnv(uint32_t h, uint32_t v)
{
    return (h ^ v) * FX_FNV_PRIME;
}

#endif /* FX_TRAIN_UPDATE_H */
