/*
 * fx_train_passes.h -- the passes, updates and epoch of fx_train_runtime.h (included by it; not on its own).
 *
 * Phases, each a function of its own (FX_NOINLINE) so a profiler or an instruction
 * counter can attribute work to them: fx_forward, fx_loss, fx_backward, fx_update
 * and fx_shuffle. Loop orders follow the simulator's; the integer results do not
 * depend on them, because every sum is exact (its bound fits its accumulator).
 */
#ifndef FX_TRAIN_PASSES_H
#define FX_TRAIN_PASSES_H

/* ---------------------------------------------------------------- forward */

static inline void fx_dense_fwd(const fx_layer *L, const uint8_t *wl, const int8_t *x, uint32_t nb,
                                fx_acc_t *acc)
{
    uint32_t n, o, i;
    for (n = 0; n < nb; n++) {
        const int8_t *xn = x + n * L->n_in;
        for (o = 0; o < L->n_out; o++) {
            fx_acc_t s = 0;
            for (i = 0; i < L->n_in; i++) {
                s += (fx_acc_t)xn[i] * (fx_acc_t)fx_w_get(wl, o * L->n_in + i);
            }
            acc[n * L->n_out + o] = s;
        }
    }
}

static inline void fx_conv_fwd(const fx_layer *L, const uint8_t *wl, const int8_t *x, uint32_t nb,
                               fx_acc_t *acc)
{
    uint32_t n, oy, ox, o, ky, kx, c;
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < L->out_h; oy++) {
            for (ox = 0; ox < L->out_w; ox++) {
                for (o = 0; o < L->out_c; o++) {
                    fx_acc_t s = 0;
                    for (ky = 0; ky < L->k; ky++) {
                        int32_t iy = (int32_t)(oy + ky) - (int32_t)L->pad;
                        if (iy < 0 || iy >= (int32_t)L->in_h) {
                            continue; /* zero padding adds nothing */
                        }
                        for (kx = 0; kx < L->k; kx++) {
                            int32_t ix = (int32_t)(ox + kx) - (int32_t)L->pad;
                            const int8_t *px;
                            if (ix < 0 || ix >= (int32_t)L->in_w) {
                                continue;
                            }
                            px = x + ((n * L->in_h + (uint32_t)iy) * L->in_w + (uint32_t)ix) * L->in_c;
                            for (c = 0; c < L->in_c; c++) {
                                s += (fx_acc_t)px[c] * (fx_acc_t)fx_w_get(wl, ((o * L->k + ky) * L->k + kx) * L->in_c + c);
                            }
                        }
                    }
                    acc[((n * L->out_h + oy) * L->out_w + ox) * L->out_c + o] = s;
                }
            }
        }
    }
}

static inline void fx_pool_fwd(const fx_layer *L, const int8_t *x, uint32_t nb, int8_t *y)
{
    uint32_t n, py, px, ch, ky, kx, p = L->k;
    for (n = 0; n < nb; n++) {
        for (py = 0; py < L->out_h; py++) {
            for (px = 0; px < L->out_w; px++) {
                for (ch = 0; ch < L->in_c; ch++) {
                    int8_t m = x[((n * L->in_h + py * p) * L->in_w + px * p) * L->in_c + ch];
                    for (ky = 0; ky < p; ky++) {
                        for (kx = 0; kx < p; kx++) {
                            int8_t v = x[((n * L->in_h + py * p + ky) * L->in_w + px * p + kx) * L->in_c + ch];
                            m = v > m ? v : m;
                        }
                    }
                    y[((n * L->out_h + py) * L->out_w + px) * L->in_c + ch] = m;
                }
            }
        }
    }
}

/* Integer forward pass of nb samples in acts[0] (exponent e_act[0]); counts saturations if asked. */
static FX_NOINLINE void fx_forward(const fx_net *net, uint32_t nb, int32_t count)
{
    uint32_t l, j, r;
    for (l = 0; l < net->n_layers; l++) {
        const fx_layer *L = &net->layers[l];
        uint32_t n = nb * L->n_out, rows = n / L->out_c;
        int32_t shift, s, clamped = 0, c, clipped = 0;
        if (L->kind == FX_KIND_POOL) {
            fx_pool_fwd(L, net->acts[l], nb, net->acts[l + 1]);
            net->e_act[l + 1] = net->e_act[l];
            continue;
        }
        if (L->kind == FX_KIND_DENSE) {
            fx_dense_fwd(L, net->w + L->w_byte, net->acts[l], nb, net->acc);
        } else {
            fx_conv_fwd(L, net->w + L->w_byte, net->acts[l], nb, net->acc);
        }
        shift = net->e_act[l] + L->e_w - L->e_b;
        for (j = 0; j < L->out_c; j++) {
            int64_t t = fx_bias_term(net->b[L->b_off + j], shift, &c);
            clamped += c;
            for (r = 0; r < rows; r++) {
                net->acc[r * L->out_c + j] += (fx_acc_t)t;
            }
        }
        s = fx_tensor_shift(net->acc, n);
        for (j = 0; j < n; j++) {
            int64_t v = fx_round_shift(net->acc[j], s);
            clipped += v > 127;
            net->acts[l + 1][j] = (int8_t)fx_sat(v, L->relu ? 0 : -128, 127);
        }
        if (count) {
            net->counters[l * FX_N_SAT + FX_SAT_BIAS] += clamped * (int32_t)rows;
            net->counters[l * FX_N_SAT + FX_SAT_ACT] += clipped;
        }
        net->e_act[l + 1] = net->e_act[l] + L->e_w + s;
    }
}

/* --------------------------------------------------------------- the loss */

/* Cross-entropy error p - onehot in Q7 from the int8 logits, integers only (requant.softmax_error_int). */
static FX_NOINLINE void fx_loss(const fx_net *net, uint32_t nb, int8_t *err)
{
    uint32_t last = net->n_layers, n, j, c = net->n_classes;
    const int8_t *z = net->acts[last];
    int32_t to_q8 = 15 - FX_EXP2_FRAC_BITS - net->e_act[last], clipped = 0;
    for (n = 0; n < nb; n++) {
        int8_t zmax = z[n * c];
        int64_t total = 0;
        for (j = 0; j < c; j++) {
            zmax = z[n * c + j] > zmax ? z[n * c + j] : zmax;
        }
        for (j = 0; j < c; j++) {
            int64_t t = (int64_t)z[n * c + j] - zmax;
            net->probs[j] = fx_exp2_neg(-fx_round_shift(t * FX_LOG2E_Q15, to_q8));
            total += net->probs[j];
        }
        for (j = 0; j < c; j++) {
            int64_t e = ((int64_t)net->probs[j] * 128 + total / 2) / total - (j == net->labels[n] ? 128 : 0);
            clipped += e > 127;
            err[n * c + j] = (int8_t)fx_sat(e, -128, 127);
        }
    }
    net->counters[(last - 1) * FX_N_SAT + FX_SAT_ERR] += clipped;
}

/* ---------------------------------------------------------------- backward */

static inline void fx_dense_back(const fx_layer *L, const uint8_t *wl, const int8_t *err, uint32_t nb,
                                 fx_acc_t *back)
{
    uint32_t n, o, i;
    for (n = 0; n < nb; n++) {
        for (i = 0; i < L->n_in; i++) {
            back[n * L->n_in + i] = 0;
        }
        for (o = 0; o < L->n_out; o++) {
            fx_acc_t e = err[n * L->n_out + o];
            if (e != 0) {
                for (i = 0; i < L->n_in; i++) {
                    back[n * L->n_in + i] += e * (fx_acc_t)fx_w_get(wl, o * L->n_in + i);
                }
            }
        }
    }
}

static inline void fx_conv_back(const fx_layer *L, const uint8_t *wl, const int8_t *err, uint32_t nb,
                                fx_acc_t *back)
{
    uint32_t n, oy, ox, o, ky, kx, c, j;
    for (j = 0; j < nb * L->n_in; j++) {
        back[j] = 0;
    }
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < L->out_h; oy++) {
            for (ox = 0; ox < L->out_w; ox++) {
                for (o = 0; o < L->out_c; o++) {
                    fx_acc_t e = err[((n * L->out_h + oy) * L->out_w + ox) * L->out_c + o];
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
                            fx_acc_t *pb;
                            if (ix < 0 || ix >= (int32_t)L->in_w) {
                                continue;
                            }
                            pb = back + ((n * L->in_h + (uint32_t)iy) * L->in_w + (uint32_t)ix) * L->in_c;
                            for (c = 0; c < L->in_c; c++) {
                                pb[c] += e * (fx_acc_t)fx_w_get(wl, ((o * L->k + ky) * L->k + kx) * L->in_c + c);
                            }
                        }
                    }
                }
            }
        }
    }
}

static inline void fx_pool_back(const fx_layer *L, const int8_t *x, const int8_t *err, uint32_t nb, int8_t *out)
{
    uint32_t n, py, px, ch, ky, kx, j, p = L->k;
    for (j = 0; j < nb * L->n_in; j++) {
        out[j] = 0;
    }
    for (n = 0; n < nb; n++) {
        for (py = 0; py < L->out_h; py++) {
            for (px = 0; px < L->out_w; px++) {
                for (ch = 0; ch < L->in_c; ch++) {
                    uint32_t best = ((n * L->in_h + py * p) * L->in_w + px * p) * L->in_c + ch;
                    for (ky = 0; ky < p; ky++) {
                        for (kx = 0; kx < p; kx++) {
                            j = ((n * L->in_h + py * p + ky) * L->in_w + px * p + kx) * L->in_c + ch;
                            best = x[j] > x[best] ? j : best; /* the first maximum, row-major */
                        }
                    }
                    out[best] = err[((n * L->out_h + py) * L->out_w + px) * L->in_c + ch];
                }
            }
        }
    }
}

/*
 * Backward through layer l given its output error err (exponent e_err): mask the ReLU,
 * then send the error below, stochastically rounded to int8 (one draw per value).
 * Returns the exponent of the error below. The weight gradient comes in fx_update.
 */
static FX_NOINLINE int32_t fx_backward(const fx_net *net, uint32_t l, int32_t e_err, int8_t *err, int8_t *below,
                                       uint32_t nb)
{
    const fx_layer *L = &net->layers[l];
    uint32_t j, n = nb * L->n_in;
    int32_t s, clipped = 0;
    if (L->kind == FX_KIND_POOL) {
        fx_pool_back(L, net->acts[l], err, nb, below);
        return e_err;
    }
    if (L->relu) {
        for (j = 0; j < nb * L->n_out; j++) {
            err[j] = net->acts[l + 1][j] <= 0 ? 0 : err[j];
        }
    }
    if (l == 0) {
        return e_err;
    }
    if (L->kind == FX_KIND_DENSE) {
        fx_dense_back(L, net->w + L->w_byte, err, nb, net->acc);
    } else {
        fx_conv_back(L, net->w + L->w_byte, err, nb, net->acc);
    }
    s = fx_tensor_shift(net->acc, n);
    for (j = 0; j < n; j++) {
        int64_t v = fx_sr_shift(net->acc[j], s, fx_xorshift32(net->rng));
        clipped += v > 127 || v < -128;
        below[j] = (int8_t)fx_sat(v, -128, 127);
    }
    net->counters[(l - 1) * FX_N_SAT + FX_SAT_ERR] += clipped;
    return e_err + L->e_w + s;
}

#include "fx_train_update.h"

#endif /* FX_TRAIN_PASSES_H */
