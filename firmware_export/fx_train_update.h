/*
 * fx_train_update.h -- gradients, weight updates, the step and the epoch of fx_train_runtime.h (included by it).
 *
 * The weight gradient is a block of dot products over the batch: the layer's inputs and
 * errors are transposed once (batch-major rows, fx_gradient_operands), so each gradient
 * value is one row against another. A dense layer forms one output row of the gradient
 * at a time and applies it before the next (the gradient buffer holds one row); a conv
 * layer, whose filters are few, forms all of them first. Either way the draws come in
 * the simulator's order: per weight, in weight order, then per bias.
 */
#ifndef FX_TRAIN_UPDATE_H
#define FX_TRAIN_UPDATE_H

/* ------------------------------------------------------------- gradients */

/* Where a layer's transposed gradient operands go: the accumulator, which no one needs during the
 * update, when they fit it (FX_ACC_BYTES); else the operand scratch. */
static inline int8_t *fx_operand_base(const fx_net *net, uint32_t bytes, int8_t *scratch)
{
    return bytes <= FX_ACC_BYTES ? (int8_t *)net->acc : scratch;
}

/* A dense layer's inputs and errors transposed to xt [n_in][PAD4(nb)] and et [n_out][PAD4(nb)];
 * returns xt, and et in *et. */
static inline const int8_t *fx_gradient_operands(const fx_net *net, const fx_layer *L, const int8_t *x,
                                                 const int8_t *err, uint32_t nb, const int8_t **et)
{
    uint32_t bs = FX_PAD4(nb);
    int8_t *xt = fx_operand_base(net, (L->n_in + L->n_out) * bs, net->opa);
    int8_t *e = xt == (int8_t *)net->acc ? xt + L->n_in * bs : net->opb;
    fx_transpose8(x, L->n_in, L->n_in, nb, xt, bs);
    fx_transpose8(err, L->n_out, L->n_out, nb, e, bs);
    *et = e;
    return xt;
}

/* Gradient of dense output row o, grad[i] = sum over the batch of err[n][o] x[n][i], from the
 * transposed operands; returns the row's bias gradient. */
static inline fx_grad_t fx_gradient_row(const fx_layer *L, const int8_t *xt, const int8_t *et, uint32_t o,
                                        uint32_t nb, fx_grad_t *grad)
{
    uint32_t i, bs = FX_PAD4(nb);
    const int8_t *e = et + o * bs;
    fx_grad_t gb = 0;
    for (i = 0; i < nb; i++) {
        gb += e[i];
    }
    for (i = 0; i < L->n_in; i++) {
        grad[i] = 0;
    }
    fx_dot_g(xt, bs, L->n_in, e, 0u, 1u, nb, grad, 0u);
    return gb;
}

/* dst[k] = src[k * step] for k < len: two values a trip. */
static inline void fx_copy_strided(const int8_t *src, uint32_t step, int8_t *dst, uint32_t len)
{
    int8_t *end = dst + (len & ~1u);
    for (; dst != end; dst += 2, src += 2u * step) {
        int8_t v0 = src[0], v1 = src[step];
        dst[0] = v0;
        dst[1] = v1;
    }
    if (len & 1u) {
        *dst = *src;
    }
}

/* Rows of a conv gradient chunk's transposed taps for the len positions (n, oy, ox0 ...) of one
 * output row, at dst: a row per tap (ky, kx, c), FX_GRAD_CHUNK apart, zero where a tap hangs over
 * the padding. In HWC one tap of one output row's positions is input values c_in apart: a
 * strided copy, with zero ends where the row runs into the padding. */
static FX_NOINLINE void fx_tap_runs(const fx_layer *L, const int8_t *x, uint32_t n, uint32_t oy, uint32_t ox0,
                                    uint32_t len, int8_t *dst)
{
    /* the layer's fields in locals: an int8 store may alias *L, which would reload them every time */
    const uint32_t c_in = L->in_c, kw = L->kw, kh = L->kh, in_w = L->in_w, in_h = L->in_h, kc = kw * c_in;
    const int32_t pad_w = (int32_t)L->pad_w, iy0 = (int32_t)oy - (int32_t)L->pad_h;
    uint32_t ky, kx, c, k;
    for (ky = 0; ky < kh; ky++) {
        const int32_t iy = iy0 + (int32_t)ky;
        const int8_t *row;
        if (iy < 0 || iy >= (int32_t)in_h) {
            for (c = 0; c < kc; c++, dst += FX_GRAD_CHUNK) {
                for (k = 0; k < len; k++) {
                    dst[k] = 0;
                }
            }
            continue;
        }
        row = x + (n * in_h + (uint32_t)iy) * in_w * c_in;
        if (pad_w == 0 && ox0 + len + kw <= in_w + 1u) { /* the whole run inside the image: copies only */
            const int8_t *src = row + ox0 * c_in;
            for (c = 0; c < kc; c++, dst += FX_GRAD_CHUNK) {
                fx_copy_strided(src + c, c_in, dst, len);
            }
            continue;
        }
        for (kx = 0; kx < kw; kx++) {
            const int32_t ix0 = (int32_t)(ox0 + kx) - pad_w;
            /* [ka, kb): the positions whose tap is inside the image */
            uint32_t ka = ix0 < 0 ? (uint32_t)-ix0 : 0u;
            uint32_t kb = ix0 + (int32_t)len > (int32_t)in_w ? (uint32_t)((int32_t)in_w - ix0) : len;
            ka = ka < len ? ka : len;
            kb = kb > ka ? kb : ka;
            for (c = 0; c < c_in; c++, dst += FX_GRAD_CHUNK) {
                for (k = 0; k < ka; k++) {
                    dst[k] = 0;
                }
                fx_copy_strided(row + (uint32_t)(ix0 + (int32_t)ka) * c_in + c, c_in, dst + ka, kb - ka);
                for (k = kb; k < len; k++) {
                    dst[k] = 0;
                }
            }
        }
    }
}

/* The errors of m positions, e [m][out_c], transposed to et [out_c][FX_GRAD_CHUNK]; each filter's
 * sum goes to gbias. With whole words of filters (and e on a word), a word of four filters' errors
 * is read at once and its bytes go to four rows. */
static FX_NOINLINE void fx_error_rows(const int8_t *e, uint32_t m, uint32_t out_c, int8_t *et, fx_grad_t *gbias)
{
    uint32_t o, j;
    if (out_c % 4u == 0u) {
        for (o = 0; o < out_c; o += 4u) {
            const int8_t *src = e + o;
            int8_t *d = et + o * FX_GRAD_CHUNK;
            int32_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
            for (j = 0; j < m; j++, src += out_c) {
                uint32_t w = fx_load32(src);
                int32_t v0 = (int8_t)w, v1 = (int8_t)(w >> 8), v2 = (int8_t)(w >> 16), v3 = fx_asr32((int32_t)w, 24);
                d[j] = (int8_t)v0;
                d[j + FX_GRAD_CHUNK] = (int8_t)v1;
                d[j + 2u * FX_GRAD_CHUNK] = (int8_t)v2;
                d[j + 3u * FX_GRAD_CHUNK] = (int8_t)v3;
                g0 += v0;
                g1 += v1;
                g2 += v2;
                g3 += v3;
            }
            gbias[o] += g0;
            gbias[o + 1u] += g1;
            gbias[o + 2u] += g2;
            gbias[o + 3u] += g3;
        }
        return;
    }
    for (o = 0; o < out_c; o++) {
        const int8_t *src = e + o;
        int8_t *d = et + o * FX_GRAD_CHUNK;
        int32_t g0 = 0, g1 = 0;
        for (j = 0; j + 2u <= m; j += 2u, src += 2u * out_c) {
            int8_t v0 = src[0], v1 = src[out_c];
            d[j] = v0;
            d[j + 1u] = v1;
            g0 += v0;
            g1 += v1;
        }
        if (j < m) {
            d[j] = *src;
            g0 += *src;
        }
        gbias[o] += g0 + g1;
    }
}

/*
 * The conv gradient by whole kernel rows, for a single-channel input without padding whose rows
 * are whole words. Output position (oy, ox) is widened to (oy, ix) for every input column ix, its
 * error zero past ow: then tap (ky, kx) of a sample's positions, in order, is one contiguous run
 * of its input, from ky * in_w + kx on, so no taps need gathering. The input is copied four
 * times, shifted by 0 to 3 bytes, so every such run starts on a word in one of the copies; the
 * dots run a quarter or so longer over the zero errors. All of it lives in the accumulator:
 */
/* the bytes of one shifted copy, with a word of slack: a run may read up to kw - 1 bytes past a sample */
#define FX_SHIFT_SPAN(L, nb) (FX_PAD4((nb) * (L)->n_in) + 4u)
/* the widened positions of a sample */
#define FX_WIDE_POS(L) ((L)->out_h * (L)->in_w)

static inline uint32_t fx_gradient_rows_fit(const fx_layer *L, uint32_t nb)
{
    uint32_t bytes = 4u * FX_SHIFT_SPAN(L, nb) + L->out_c * nb * FX_WIDE_POS(L)
                     + L->out_c * L->fan_in * (uint32_t)sizeof(fx_grad_t);
    /* int32 sums only: the accumulator is not laid out for int64 ones past the copies and planes */
    return !FX_GRAD_WIDE && L->in_c == 1u && !(L->pad_h | L->pad_w) && L->in_w % 4u == 0u && L->kw <= 5u
           && bytes <= FX_ACC_BYTES;
}

/* dst + s * span (s = 0..3): x [0, n) shifted down by s bytes, zero past its end. x and dst on words. */
static FX_NOINLINE void fx_shifted_copies(const int8_t *x, uint32_t n, int8_t *dst, uint32_t span)
{
    const uint32_t nw = n / 4u;
    uint32_t s, k, i;
    for (s = 0; s < 4u; s++, dst += span) {
        k = 0;
        if (s == 0u) {
            for (; k < nw; k++) {
                fx_store32(dst + 4u * k, fx_load32(x + 4u * k));
            }
        } else if (nw > 0u) {
            uint32_t lo = fx_load32(x);
            for (; k + 1u < nw; k++) {
                uint32_t hi = fx_load32(x + 4u * k + 4u);
                fx_store32(dst + 4u * k, (lo >> (8u * s)) | (hi << (32u - 8u * s)));
                lo = hi;
            }
        }
        for (i = 4u * k; i < span; i++) {
            dst[i] = i + s < n ? x[i + s] : 0;
        }
    }
}

/* The errors e [nb][oh][ow][out_c] as planes et [out_c][nb][oh][in_w], zero past ow; each
 * filter's sum to gbias. With whole words of filters (e on a word), a word of four filters' errors
 * is read at once and its bytes go to four planes. */
static FX_NOINLINE void fx_error_planes(const fx_layer *L, const int8_t *e, uint32_t nb, int8_t *et, fx_grad_t *gbias)
{
    const uint32_t out_c = L->out_c, ow = L->out_w, in_w = L->in_w, rows = nb * L->out_h, plane = rows * in_w;
    uint32_t o, r, ox, j;
    for (j = 0; j < out_c * plane; j += 4u) { /* the widened positions' errors stay zero */
        fx_store32(et + j, 0u);
    }
    if (out_c % 4u == 0u) {
        for (o = 0; o < out_c; o += 4u) {
            int8_t *d = et + o * plane;
            const int8_t *src = e + o;
            int32_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
            for (r = 0; r < rows; r++, d += in_w) {
                for (ox = 0; ox < ow; ox++, src += out_c) {
                    const uint32_t w = fx_load32(src);
                    int32_t v0, v1, v2, v3;
                    if (w == 0u) { /* most are: max pooling sends a window's error to one input */
                        continue;
                    }
                    v0 = (int8_t)w, v1 = (int8_t)(w >> 8), v2 = (int8_t)(w >> 16), v3 = fx_asr32((int32_t)w, 24);
                    d[ox] = (int8_t)v0;
                    d[ox + plane] = (int8_t)v1;
                    d[ox + 2u * plane] = (int8_t)v2;
                    d[ox + 3u * plane] = (int8_t)v3;
                    g0 += v0;
                    g1 += v1;
                    g2 += v2;
                    g3 += v3;
                }
            }
            gbias[o] = g0;
            gbias[o + 1u] = g1;
            gbias[o + 2u] = g2;
            gbias[o + 3u] = g3;
        }
        return;
    }
    for (o = 0; o < out_c; o++) {
        int8_t *d = et + o * plane;
        const int8_t *src = e + o;
        int32_t g = 0;
        for (r = 0; r < rows; r++, d += in_w) {
            for (ox = 0; ox < ow; ox++, src += out_c) {
                d[ox] = *src;
                g += *src;
            }
        }
        gbias[o] = g;
    }
}

/* All of the gradient, grad [out_c][fan_in] and gbias [out_c], as fx_gradient_rows_fit allows:
 * per sample and kernel column kx, every filter's error plane against the kh input runs of taps
 * (ky, kx), into sums ordered [kx][ky][filter], put in weight order at the end. */
static inline void fx_gradient_rows(const fx_net *net, const fx_layer *L, const int8_t *x, const int8_t *err,
                                    uint32_t nb, fx_grad_t *grad, fx_grad_t *gbias)
{
    const uint32_t out_c = L->out_c, f = L->fan_in, kh = L->kh, kw = L->kw, in_w = L->in_w, n_in = L->n_in;
    const uint32_t span = FX_SHIFT_SPAN(L, nb), wide = FX_WIDE_POS(L), plane = nb * wide;
    int8_t *copies = (int8_t *)net->acc, *et = copies + 4u * span;
    fx_grad_t *g = (fx_grad_t *)FX_ALIGNED(et + out_c * plane); /* [kx][ky][o] */
    uint32_t n, kx, ky, o;
    fx_shifted_copies(x, nb * n_in, copies, span);
    fx_error_planes(L, err, nb, et, gbias);
    for (o = 0; o < out_c * f; o++) {
        g[o] = 0;
    }
    for (n = 0; n < nb; n++) {
        for (kx = 0; kx < kw; kx++) {
            const uint32_t a = n * n_in + kx, sh = a & 3u;
            fx_dot_g(et + n * wide, plane, out_c, copies + sh * span + (a - sh), in_w, kh, wide, g + kx * kh * out_c,
                     out_c);
        }
    }
    for (o = 0; o < out_c; o++) {
        for (ky = 0; ky < kh; ky++) {
            for (kx = 0; kx < kw; kx++) {
                grad[o * f + ky * kw + kx] = g[(kx * kh + ky) * out_c + o];
            }
        }
    }
}

/* All of a conv layer's gradient, grad [out_c][fan_in] and gbias [out_c]: the output positions of
 * the batch in chunks of FX_GRAD_CHUNK, each chunk's taps and errors transposed (a row per tap,
 * a row per filter; the taps a run of positions along an output row at a time), then every
 * filter's errors against every tap row. */
static inline void fx_gradient_conv(const fx_net *net, const fx_layer *L, const int8_t *x, const int8_t *err,
                                    uint32_t nb, fx_grad_t *grad, fx_grad_t *gbias)
{
    const uint32_t f = L->fan_in, out_c = L->out_c, ow = L->out_w, oh = L->out_h, total = nb * oh * ow;
    uint32_t p0, j, n = 0, oy = 0, ox = 0; /* (n, oy, ox) of the next position, stepped along */
    int8_t *ct = fx_operand_base(net, (f + out_c) * FX_GRAD_CHUNK, net->opa);
    int8_t *et = ct == (int8_t *)net->acc ? ct + f * FX_GRAD_CHUNK : net->opb;
    for (j = 0; j < out_c * f; j++) {
        grad[j] = 0;
    }
    for (j = 0; j < out_c; j++) {
        gbias[j] = 0;
    }
    for (p0 = 0; p0 < total; p0 += FX_GRAD_CHUNK) {
        uint32_t m = total - p0 < FX_GRAD_CHUNK ? total - p0 : FX_GRAD_CHUNK;
        fx_error_rows(err + p0 * out_c, m, out_c, et, gbias);
        for (j = 0; j < m;) { /* a run of positions along one output row */
            uint32_t len = ow - ox < m - j ? ow - ox : m - j;
            fx_tap_runs(L, x, n, oy, ox, len, ct + j);
            j += len;
            ox += len;
            if (ox == ow) {
                ox = 0;
                if (++oy == oh) {
                    oy = 0;
                    n++;
                }
            }
        }
        fx_dot_g(ct, FX_GRAD_CHUNK, f, et, FX_GRAD_CHUNK, out_c, m, grad, f);
    }
}

/* --------------------------------------------------------------- updates */

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

/* The general update of one row: any shift, momentum, binary weights, int64 steps. */
static inline int32_t fx_update_general(const fx_net *net, const fx_layer *L, uint32_t o, int32_t s,
                                        const fx_grad_t *grad, uint8_t *row)
{
    int32_t clipped = 0;
    uint32_t j;
#if FX_MOMENTUM
    int16_t *vel = (int16_t *)net->mom + L->w_off + o * L->fan_in;
#else
    (void)L;
    (void)o;
#endif
    for (j = 0; j < L->fan_in; j++) {
        int64_t mg = net->m * (int64_t)grad[j];
        int32_t w = fx_slot_get(row, j);
#if FX_MOMENTUM
        int64_t v = (int64_t)vel[j] - fx_round_shift(vel[j], net->mom_j) + fx_rounded(mg, s - FX_MOM_FRAC_BITS, net->rng);
        net->counters[(uint32_t)(L - net->layers) * FX_N_SAT + FX_SAT_MOM] += v > 32767 || v < -32768;
        vel[j] = (int16_t)fx_sat(v, -32768, 32767);
        w = fx_grid_step(w, vel[j], FX_MOM_FRAC_BITS, net->qmax, net->rng, &clipped);
#else
        w = fx_grid_step(w, mg, s, net->qmax, net->rng, &clipped);
#endif
        fx_slot_set(row, j, w);
    }
    return clipped;
}

/* The rounding's addend for one weight: SR's draw below 2^s, or R's half. */
#if FX_METHOD == FX_METHOD_SR
#define FX_ADDEND(r, a) ((r) ^= (r) << 13, (r) ^= (r) >> 17, (r) ^= (r) << 5, (int32_t)((r) & (a)))
#else
#define FX_ADDEND(r, a) ((void)(r), (int32_t)(a))
#endif

/* One weight on the grid: clamp v to +-qmax. On the DSP cores SSAT clamps to [-qmax - 1, qmax] in
 * one instruction and the second, negated, closes the bottom: the grid is symmetric. */
static inline int32_t fx_clamp_q(int32_t v, int32_t qmax)
{
#if FX_DSP
    (void)qmax;
    return -__ssat(-__ssat(v, FX_BITS), FX_BITS);
#else
    v = v > qmax ? qmax : v;
    return v < -qmax ? -qmax : v;
#endif
}

#if FX_DSP && FX_METHOD == FX_METHOD_SR && !FX_GRAD_WIDE && FX_BITS > 1 && FX_BITS <= 8
/*
 * SR's update of n4 (a multiple of 4) int8 weights on a DSP core, a word of four weights a trip:
 * per weight the draw (three EORs), m G + (draw & mask) (one MLA), the shift, then the clamp to
 * +-qmax as SSAT of the negated value, negated and SSAT again (the grid is symmetric, SSAT's range
 * is not), and a compare that counts the clamp; the four results go back as one word. Written out
 * because gcc 12 spends a third more instructions on the same C; inlined, so a row pays no call. Returns how
 * many saturated.
 */
static inline int32_t fx_update_sr_dsp(int8_t *w, const int32_t *grad, uint32_t n4, int32_t m, uint32_t s,
                                            uint32_t mask, uint32_t *rng)
{
    uint32_t r = *rng, ww, ow, g0, g1, t;
    int32_t clipped = 0;
    const int8_t *end = w + n4;
    if (n4 == 0u) {
        return 0;
    }
#define FX_SR_WEIGHT(g, lsb)                                                   \
    "eor %[r], %[r], %[r], lsl #13\n\t"                                        \
    "eor %[r], %[r], %[r], lsr #17\n\t"                                        \
    "eor %[r], %[r], %[r], lsl #5\n\t"                                         \
    "and %[t], %[r], %[mask]\n\t"                                             \
    "mla %[t], %[m], %[" g "], %[t]\n\t"                                       \
    "asr %[t], %[t], %[s]\n\t"                                                \
    "sxtb %[" g "], %[ww], ror #" lsb "\n\t"                                   \
    "sub %[t], %[t], %[" g "]\n\t"                                            \
    "ssat %[" g "], %[b], %[t]\n\t"                                           \
    "rsb %[" g "], %[" g "], #0\n\t"                                          \
    "ssat %[" g "], %[b], %[" g "]\n\t"                                       \
    "cmn %[" g "], %[t]\n\t"                                                  \
    "it ne\n\t"                                                               \
    "addne %[cnt], %[cnt], #1\n\t"                                            \
    "bfi %[ow], %[" g "], #" lsb ", #8\n\t"
    __asm__ volatile(
        ".syntax unified\n\t"
        "1:\n\t"
        "ldr %[ww], [%[w]]\n\t"
        "ldrd %[g0], %[g1], [%[grad]], #8\n\t"
        FX_SR_WEIGHT("g0", "0")
        FX_SR_WEIGHT("g1", "8")
        "ldrd %[g0], %[g1], [%[grad]], #8\n\t"
        FX_SR_WEIGHT("g0", "16")
        FX_SR_WEIGHT("g1", "24")
        "str %[ow], [%[w]], #4\n\t"
        "cmp %[w], %[end]\n\t"
        "bne 1b\n\t"
        : [r] "+r"(r), [cnt] "+r"(clipped), [w] "+r"(w), [grad] "+r"(grad), [ww] "=&r"(ww), [ow] "=&r"(ow),
          [g0] "=&r"(g0), [g1] "=&r"(g1), [t] "=&r"(t)
        : [mask] "r"(mask), [m] "r"(m), [s] "r"(s), [end] "r"(end), [b] "I"(FX_BITS)
        : "cc", "memory");
#undef FX_SR_WEIGHT
    *rng = r;
    return clipped;
}
#endif

/*
 * The common update, branch-free per weight: w = sat(w - (m G + addend) / 2^s) in 32 bits, when
 * the layer's bound on m |G| plus 2^s fits them (fx_update decides), on int8 values in place, two
 * weights a trip. Returns how many saturated.
 */
static inline int32_t fx_update_values(int8_t *w, const fx_grad_t *grad, uint32_t n, int32_t m, int32_t s,
                                       int32_t qmax, uint32_t *rng)
{
    uint32_t j, r = *rng;
    int32_t clipped = 0;
#if FX_METHOD == FX_METHOD_SR
    const uint32_t a = (1u << s) - 1u; /* the draw's low s bits */
#else
    const int32_t a = (int32_t)1 << (s - 1);
#endif
#if FX_DSP && FX_METHOD == FX_METHOD_SR && !FX_GRAD_WIDE && FX_BITS > 1 && FX_BITS <= 8
    clipped = fx_update_sr_dsp(w, grad, n & ~3u, m, (uint32_t)s, a, &r);
    j = n & ~3u;
#else
    j = 0;
#endif
    for (; j + 2u <= n; j += 2u) {
        int32_t v0, v1, c0, c1;
        v0 = w[j] - fx_asr32(m * (int32_t)grad[j] + FX_ADDEND(r, a), (uint32_t)s);
        v1 = w[j + 1u] - fx_asr32(m * (int32_t)grad[j + 1u] + FX_ADDEND(r, a), (uint32_t)s);
        c0 = fx_clamp_q(v0, qmax);
        c1 = fx_clamp_q(v1, qmax);
        clipped += (c0 != v0) + (c1 != v1);
        w[j] = (int8_t)c0;
        w[j + 1u] = (int8_t)c1;
    }
    if (j < n) {
        int32_t v = w[j] - fx_asr32(m * (int32_t)grad[j] + FX_ADDEND(r, a), (uint32_t)s), c = fx_clamp_q(v, qmax);
        clipped += c != v;
        w[j] = (int8_t)c;
    }
    *rng = r;
    return clipped;
}

#if FX_BITS == 1
/*
 * Binary weights in 32 bits (updates.py _grid_step for b = 1): the value w 2^16 minus the step
 * rounded half up to 2^-16, clipped to +-2^16, then SR's coin (+1 with probability (v + 1) / 2,
 * one draw) or R's sign. fx_update_fast admits it only where s >= 17, so the step is a right
 * shift, and m G + 2^s fits 31 bits. Returns how many were clipped.
 */
static inline int32_t fx_update_binary(int8_t *w, const fx_grad_t *grad, uint32_t n, int32_t m, int32_t s,
                                       uint32_t *rng)
{
    const int32_t one = (int32_t)1 << FX_BINARY_FRAC_BITS, sh = s - FX_BINARY_FRAC_BITS, half = 1 << (sh - 1);
    uint32_t j, r = *rng;
    int32_t clipped = 0;
    for (j = 0; j < n; j++) {
        int32_t v = w[j] * one - fx_asr32(m * (int32_t)grad[j] + half, (uint32_t)sh), c;
        c = v > one ? one : (v < -one ? -one : v);
        clipped += c != v;
#if FX_METHOD == FX_METHOD_SR
        r = fx_xorshift32(&r);
        /* (c + one + draw's low 17 bits) >> 17 is 0 or 1, all in 32 bits: c + one <= 2^17 */
        w[j] = (int8_t)(2 * (int32_t)(((uint32_t)(c + one) + (r & ((2u << FX_BINARY_FRAC_BITS) - 1u)))
                                      >> (FX_BINARY_FRAC_BITS + 1)) - 1);
#else
        w[j] = (int8_t)(c >= 0 ? 1 : -1);
#endif
    }
    *rng = r;
    return clipped;
}
#endif

/* SR or R update of row o's weights from its gradient, in weight order; `fast` from fx_update. */
static inline void fx_update_row(const fx_net *net, const fx_layer *L, uint32_t o, int32_t s,
                                 const fx_grad_t *grad, uint32_t fast)
{
    uint8_t *row = net->w + L->w_byte + o * L->row_bytes;
    int32_t *cnt = net->counters + (uint32_t)(L - net->layers) * FX_N_SAT;
#if !FX_MOMENTUM && FX_SLOT <= 8
    if (fast) {
        uint32_t f = L->fan_in;
        int8_t *v = FX_SLOT == 8 ? (int8_t *)row : net->rows;
        if (FX_SLOT != 8) {
            fx_unpack_rows(L, net->w + L->w_byte, o, 1u, net->rows);
        }
#if FX_BITS == 1
        cnt[FX_SAT_WEIGHT] += fx_update_binary(v, grad, f, (int32_t)net->m, s, net->rng);
#else
        cnt[FX_SAT_WEIGHT] += fx_update_values(v, grad, f, (int32_t)net->m, s, net->qmax, net->rng);
#endif
        if (FX_SLOT != 8) {
            fx_pack_row(v, f, row);
        }
        return;
    }
#endif
    (void)fast;
    cnt[FX_SAT_WEIGHT] += fx_update_general(net, L, o, s, grad, row);
}

/* Whether fx_update_values can take layer L's step: 0 < s <= 30, and the largest m |G| (|err|, |x|
 * at most 128, over every sum a weight's gradient adds) plus 2^s stays below 2^31 */
static inline uint32_t fx_update_fast(const fx_net *net, const fx_layer *L, uint32_t nb, int32_t s)
{
    uint64_t g = (uint64_t)nb * L->out_h * L->out_w * 16384u;
    /* binary weights scale the step by 2^-(s - 16): a right shift only from s = 17 on */
    return s >= (FX_BITS == 1 ? 17 : 1) && s <= 30 && (uint64_t)net->m * g + ((uint64_t)1 << s) < ((uint64_t)1 << 31);
}
#endif

/*
 * Gradients and updates of layer l, one output row at a time (the row's gradient is
 * applied before the next row), then the biases: the simulator's draw order.
 */
static FX_NOINLINE void fx_update(const fx_net *net, uint32_t l, int32_t e_err, const int8_t *err, uint32_t nb)
{
    const fx_layer *L = &net->layers[l];
    int32_t e_g = e_err + net->e_act[l]; /* gradient exponent: error times input */
    int32_t s = L->e_w + net->k - e_g, *cnt = net->counters + l * FX_N_SAT;
    uint32_t o, conv = L->kind == FX_KIND_CONV;
#if FX_METHOD == FX_METHOD_BC
    fx_bc_step bc = fx_bc_begin(net, L, e_g);
    (void)s;
#else
    uint32_t fast = fx_update_fast(net, L, nb, s);
#endif
    const int8_t *xt = NULL, *et = NULL;
    if (conv) {
        if (fx_gradient_rows_fit(L, nb)) {
            fx_gradient_rows(net, L, net->acts[l], err, nb, net->grad, net->gbias);
        } else {
            fx_gradient_conv(net, L, net->acts[l], err, nb, net->grad, net->gbias);
        }
    } else if (L->kind == FX_KIND_DENSE) {
        xt = fx_gradient_operands(net, L, net->acts[l], err, nb, &et);
    } else {
        fx_unknown_kind(net, L);
        return;
    }
    for (o = 0; o < L->out_c; o++) {
        const fx_grad_t *g = conv ? net->grad + o * L->fan_in : net->grad;
        if (!conv) {
            net->gbias[o] = fx_gradient_row(L, xt, et, o, nb, net->grad);
        }
#if FX_METHOD == FX_METHOD_BC
        fx_bc_update_row(net, L, o, &bc, g);
#else
        fx_update_row(net, L, o, s, g, fast);
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
    uint32_t l, cur = 0, half = FX_PAD4(net->batch * net->widest); /* each half on a word */
    int32_t e_err = FX_SOFTMAX_EXPONENT;
    net->e_act[0] = net->e_x;
    fx_forward(net, net->batch, 1);
    fx_loss(net, net->batch, net->err);
    for (l = net->n_layers; l-- > FX_LOW;) { /* the frozen layers under FX_LOW: forward only */
        int8_t *err = net->err + cur * half, *below = net->err + (1u - cur) * half;
        int32_t e_below = fx_backward(net, l, e_err, err, below, net->batch);
        if (net->layers[l].kind != FX_KIND_POOL && net->layers[l].kind != FX_KIND_GAP) { /* no weights */
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
