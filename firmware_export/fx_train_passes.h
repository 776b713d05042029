/*
 * fx_train_passes.h -- the forward pass, the loss and the backward pass of fx_train_runtime.h
 * (included by it; not on its own).
 *
 * Phases, each a function of its own (FX_NOINLINE) so a profiler or an instruction
 * counter can attribute work to them: fx_forward, fx_loss, fx_backward, then fx_update
 * and fx_shuffle (fx_train_update.h). Each layer kind keeps its loops together below;
 * fx_forward and fx_backward dispatch on the kind and refuse one they do not know. The
 * integer results do not depend on the loop order, because every sum is exact.
 */
#ifndef FX_TRAIN_PASSES_H
#define FX_TRAIN_PASSES_H

/* ------------------------------------------------------------------- dense */

/* Sums of a dense layer into acc [nb][n_out], which holds the bias terms: every weight row
 * against every sample (sub-byte rows unpacked four at a time, once per pass). */
static inline void fx_dense_fwd(const fx_net *net, const fx_layer *L, const int8_t *x, uint32_t nb,
                                fx_acc_t *acc)
{
    const uint8_t *wl = fx_layer_w(net, L);
    uint32_t o, n, stride, n_in = L->n_in, n_out = L->n_out, block = FX_SLOT >= 8 ? n_out : 4u;
    for (o = 0; o < n_out; o += block) {
        uint32_t k = n_out - o < block ? n_out - o : block;
        const fx_wv_t *rows = fx_weight_rows(L, wl, o, k, net->rows, &stride);
        if (n_in % 4u == 0u) {
            fx_dot_w(rows, stride, k, x, n_in, nb, n_in, acc + o, n_out);
            continue;
        }
        for (n = 0; n < nb; n++) { /* a sample whose values do not start on a word: one at a time */
            fx_dot_w(rows, stride, k, fx_align_rows(x + n * n_in, 1u, n_in, net->opa), 0u, 1u, n_in,
                     acc + n * n_out + o, 0u);
        }
    }
}

/* Sums sent below a dense layer, back [nb][n_in] = err W: four input columns at a time, their
 * weights gathered into rows (a transposed block, zero past n_out), against every sample's error;
 * both are zero past n_out, so the sums run to the padded length. */
static inline void fx_dense_back(const fx_net *net, const fx_layer *L, const int8_t *err, uint32_t nb,
                                 fx_acc_t *back)
{
    const uint8_t *wl = net->w + L->w_byte;
    uint32_t i, o, r, n_in = L->n_in, n_out = L->n_out, es = FX_PAD4(n_out);
    /* the errors on words, zero-padded (copied only if a sample's are not whole words) */
    const int8_t *e = fx_align_rows(err, nb, n_out, net->opb);
    for (i = 0; i < nb * n_in; i++) {
        back[i] = 0;
    }
    if ((nb * n_in * sizeof(fx_acc_t) + n_in * es * sizeof(fx_wv_t) <= FX_ACC_BYTES)) {
        /* the whole transpose fits the accumulator past the sums: one pass, every row block at once */
        fx_wv_t *wt = (fx_wv_t *)FX_ALIGNED(back + nb * n_in);
        for (o = 0; o < n_out; o++) {
            const uint8_t *row = wl + o * L->row_bytes;
            for (i = 0; i < n_in; i++) {
                wt[i * es + o] = (fx_wv_t)fx_slot_get(row, i);
            }
        }
        for (; o < es; o++) { /* the padding: zero, so the sums may run to es */
            for (i = 0; i < n_in; i++) {
                wt[i * es + o] = 0;
            }
        }
        fx_dot_w(wt, es, n_in, e, es, nb, es, back, n_in);
        return;
    }
    for (i = 0; i < n_in; i += 4u) {
        uint32_t k = n_in - i < 4u ? n_in - i : 4u;
        for (o = 0; o < es; o++) {
            const uint8_t *row = wl + o * L->row_bytes;
            for (r = 0; r < k; r++) {
                net->rows[r * es + o] = o < n_out ? (fx_wv_t)fx_slot_get(row, i + r) : 0;
            }
        }
        fx_dot_w(net->rows, es, k, e, es, nb, es, back + i, n_in);
    }
}

/* -------------------------------------------------------------------- conv */

/* Sums of a conv layer into acc [nb][oh][ow][out_c], which holds the bias terms: the taps of a
 * row of output positions gathered into columns (im2col), against every filter. */
static inline void fx_conv_fwd(const fx_net *net, const fx_layer *L, const int8_t *x, uint32_t nb,
                               fx_acc_t *acc)
{
    uint32_t n, oy, ox, stride, out_c = L->out_c, f = L->fan_in, cs = FX_PAD4(f);
    const fx_wv_t *rows = fx_weight_rows(L, fx_layer_w(net, L), 0, out_c, net->rows, &stride);
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < L->out_h; oy++, acc += L->out_w * out_c) {
            for (ox = 0; ox < L->out_w; ox++) {
                int8_t *col = net->opa + ox * cs;
                fx_store32(col + cs - 4u, 0u); /* the padding zero, as the weight rows': sums run to cs */
                fx_im2col(L, x, n, oy, ox, col, 1u);
            }
            fx_dot_w(rows, stride, out_c, net->opa, cs, L->out_w, cs, acc, out_c);
        }
    }
}

#if FX_WV_SIMD && !FX_ACC_WIDE
/* Whether fx_conv_fwd_dsp takes layer L: at most 12 taps (a column of three words), filters in pairs. */
#define FX_CONV_DSP(L) ((L)->fan_in <= 12u && (L)->out_c % 2u == 0u)

/* Whether a conv layer's columns are kernel rows of a word each (at most three rows of at most
 * four bytes, no padding): then a column slides along the input by c_in bytes per row. */
#define FX_CONV_ROWWORDS(L) ((L)->kh <= 3u && (L)->kw * (L)->in_c <= 4u && !((L)->pad_h | (L)->pad_w))

/* The columns of output row (n, oy), three words apart, as FX_CONV_ROWWORDS lays them out: word ky
 * of column ox holds the kw * c_in bytes of kernel row ky (zero above them, and zero words past
 * kh). Each word is the previous column's shifted down by c_in bytes, with c_in new bytes on top. */
static FX_NOINLINE void fx_im2col_rowwords(const fx_layer *L, const int8_t *x, uint32_t n, uint32_t oy,
                                           uint32_t *cols)
{
    /* the layer's fields in locals: the stores may alias *L, which would reload them every time */
    const uint32_t c_in = L->in_c, run = L->kw * c_in, kh = L->kh, ow = L->out_w, line = L->in_w * c_in;
    const uint32_t top = 8u * (run - c_in), drop = 8u * c_in;
    const uint8_t *base = (const uint8_t *)x + (n * L->in_h + oy) * line;
    uint32_t ky, ox, j;
    if (c_in == 1u && kh == 3u) { /* one channel, three kernel rows: all three words slide together */
        const uint8_t *s0 = base + run, *s1 = s0 + line, *s2 = s1 + line;
        uint32_t w0 = 0, w1 = 0, w2 = 0;
        for (j = 0; j < run; j++) {
            w0 |= (uint32_t)base[j] << (8u * j);
            w1 |= (uint32_t)base[line + j] << (8u * j);
            w2 |= (uint32_t)base[2u * line + j] << (8u * j);
        }
        cols[0] = w0, cols[1] = w1, cols[2] = w2;
        for (ox = 1; ox < ow; ox++) {
            cols += 3;
            w0 = (w0 >> 8) | ((uint32_t)*s0++ << top);
            w1 = (w1 >> 8) | ((uint32_t)*s1++ << top);
            w2 = (w2 >> 8) | ((uint32_t)*s2++ << top);
            cols[0] = w0, cols[1] = w1, cols[2] = w2;
        }
        return;
    }
    for (ky = 0; ky < 3u; ky++) {
        uint32_t *d = cols + ky, w = 0;
        const uint8_t *src = base + ky * line;
        if (ky >= kh) {
            for (ox = 0; ox < ow; ox++) {
                d[3u * ox] = 0;
            }
            continue;
        }
        for (j = 0; j < run; j++) {
            w |= (uint32_t)src[j] << (8u * j);
        }
        d[0] = w;
        src += run;
        if (c_in == 1u) {
            for (ox = 1; ox < ow; ox++) {
                w = (w >> 8) | ((uint32_t)*src++ << top);
                d[3u * ox] = w;
            }
            continue;
        }
        for (ox = 1; ox < ow; ox++) {
            uint32_t nw = 0;
            for (j = 0; j < c_in; j++) {
                nw |= (uint32_t)src[j] << (8u * j);
            }
            src += c_in;
            w = (drop == 32u ? 0u : w >> drop) | (nw << top);
            d[3u * ox] = w;
        }
    }
}

/* The im2col columns of output row (n, oy), 12 bytes apart, in weight order, zero past the taps. */
static FX_NOINLINE void fx_im2col_row12(const fx_layer *L, const int8_t *x, uint32_t n, uint32_t oy, int8_t *cols)
{
    const uint32_t ow = L->out_w;
    uint32_t ox;
    for (ox = 0; ox < ow; ox++) {
        int8_t *col = cols + 12u * ox;
        fx_store32(col, 0u);
        fx_store32(col + 4, 0u);
        fx_store32(col + 8, 0u);
        fx_im2col(L, x, n, oy, ox, col, 1u);
    }
}

/* A conv layer's sums into acc [nb][oh][ow][out_c] with fx_conv_cols_dsp, from its bias terms at
 * shift (their clamps counted into *clamped, once per position); returns the OR of the sums'
 * magnitudes. */
static inline uint32_t fx_conv_fwd_dsp(const fx_net *net, const fx_layer *L, const int8_t *x, uint32_t nb,
                                       int32_t shift, int32_t *clamped, fx_acc_t *acc)
{
    const uint32_t out_c = L->out_c, ow = L->out_w, oh = L->out_h, f = L->fan_in, rw = FX_CONV_ROWWORDS(L);
    const uint32_t run = L->kw * L->in_c;
    const uint8_t *wl = fx_layer_w(net, L);
    int32_t *wx = (int32_t *)FX_ALIGNED(net->rows);
    uint32_t o, j, n, oy, mag = 0;
    int32_t c, cl = 0;
    for (o = 0; o < out_c; o++, wx += 7) {
        int32_t v[12];
        for (j = 0; j < 12u; j++) {
            v[j] = 0;
        }
        for (j = 0; j < f; j++) { /* tap j at its place in the column: a word per kernel row, or packed */
            v[rw ? j / run * 4u + j % run : j] = fx_slot_get(wl + o * L->row_bytes, j);
        }
        wx[0] = (int32_t)fx_bias_term(fx_layer_b(net, L)[o], shift, &c);
        cl += c;
        for (j = 0; j < 3u; j++) { /* SXTB16's pairs: bytes 0 and 2, bytes 1 and 3 */
            wx[1u + 2u * j] = (int32_t)(((uint32_t)v[4u * j] & 0xFFFFu) | ((uint32_t)v[4u * j + 2u] << 16));
            wx[2u + 2u * j] = (int32_t)(((uint32_t)v[4u * j + 1u] & 0xFFFFu) | ((uint32_t)v[4u * j + 3u] << 16));
        }
    }
    wx = (int32_t *)FX_ALIGNED(net->rows);
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < oh; oy++, acc += ow * out_c) {
            if (rw) {
                fx_im2col_rowwords(L, x, n, oy, (uint32_t *)FX_ALIGNED(net->opa));
            } else {
                fx_im2col_row12(L, x, n, oy, net->opa);
            }
            fx_conv_cols_dsp(net->opa, ow, wx, acc, out_c, &mag);
        }
    }
    *clamped = cl * (int32_t)(nb * oh * ow);
    return mag;
}
#else
#define FX_CONV_DSP(L) 0
#endif

/* Sums sent below a conv layer into back [nb][h][w][in_c]: the filters transposed once (a row
 * per tap and channel), then every output position adds its error into the taps it read. */
static inline void fx_conv_back(const fx_net *net, const fx_layer *L, const int8_t *err, uint32_t nb,
                                fx_acc_t *back)
{
    const uint8_t *wl = net->w + L->w_byte;
    uint32_t n, oy, ox, ky, kx, o, t, j, out_c = L->out_c, c_in = L->in_c, ts = FX_PAD4(out_c);
    for (o = 0; o < out_c; o++) {
        for (t = 0; t < L->fan_in; t++) {
            net->rows[t * ts + o] = (fx_wv_t)fx_slot_get(wl + o * L->row_bytes, t);
        }
    }
    const uint32_t total = nb * L->n_in;
    for (j = 0; j < total; j++) {
        back[j] = 0;
    }
    for (n = 0; n < nb; n++) {
        for (oy = 0; oy < L->out_h; oy++) {
            for (ox = 0; ox < L->out_w; ox++, err += out_c) {
                const int8_t *e = fx_align_rows(err, 1u, out_c, net->opb);
                for (ky = 0; ky < L->kh; ky++) {
                    int32_t iy = (int32_t)(oy + ky) - (int32_t)L->pad_h;
                    if (iy < 0 || iy >= (int32_t)L->in_h) {
                        continue; /* zero padding receives nothing */
                    }
                    for (kx = 0; kx < L->kw; kx++) {
                        int32_t ix = (int32_t)(ox + kx) - (int32_t)L->pad_w;
                        if (ix < 0 || ix >= (int32_t)L->in_w) {
                            continue;
                        }
                        fx_dot_w(net->rows + (ky * L->kw + kx) * c_in * ts, ts, c_in, e, 0u, 1u, out_c,
                                 back + ((n * L->in_h + (uint32_t)iy) * L->in_w + (uint32_t)ix) * c_in, 0u);
                    }
                }
            }
        }
    }
}

/* -------------------------------------------------------------------- pool */

#if FX_DSP
/* Max pooling of nb samples on a DSP core when the channels are whole words: per word of four
 * channels the window's largest by SSUB8 (a GE bit per byte where a >= b) and SEL, kept in a
 * register across the taps. */
static FX_NOINLINE void fx_pool_fwd_dsp(const fx_layer *L, const int8_t *x, uint32_t nb, int8_t *y)
{
    const uint32_t c = L->in_c, row = L->in_w * c, kh = L->kh, kw = L->kw, oh = L->out_h, ow = L->out_w;
    const uint32_t n_in = L->n_in, step = kw * c, rows = kh * row;
    uint32_t n, py, px, ky, kx, ch;
    for (n = 0; n < nb; n++) {
        const int8_t *xn = x + n * n_in;
        for (py = 0; py < oh; py++) {
            for (px = 0; px < ow; px++, y += c) {
                const int8_t *win = xn + py * rows + px * step;
                if (kh == 2u && kw == 2u) { /* the usual window, written out */
                    for (ch = 0; ch < c; ch += 4u) {
                        uint32_t a = fx_load32(win + ch), b = fx_load32(win + c + ch);
                        uint32_t d = fx_load32(win + row + ch), e = fx_load32(win + row + c + ch);
                        (void)__ssub8(a, b);
                        a = __sel(a, b);
                        (void)__ssub8(d, e);
                        d = __sel(d, e);
                        (void)__ssub8(a, d);
                        fx_store32(y + ch, __sel(a, d));
                    }
                    continue;
                }
                for (ch = 0; ch < c; ch += 4u) {
                    uint32_t m = fx_load32(win + ch);
                    for (ky = 0; ky < kh; ky++) {
                        const int8_t *t = win + ky * row + ch;
                        for (kx = ky ? 0u : 1u; kx < kw; kx++) {
                            uint32_t b = fx_load32(t + kx * c);
                            (void)__ssub8(m, b);
                            m = __sel(m, b);
                        }
                    }
                    fx_store32(y + ch, m);
                }
            }
        }
    }
}

/* The error of each window to the input that won it, four channels a word: the window's largest
 * (SSUB8 and SEL), then per tap in row-major order the bytes equal to it (t - max >= 0) that no
 * earlier tap took. Windows that tile the input write every byte of it. */
static FX_NOINLINE void fx_pool_back_dsp(const fx_layer *L, const int8_t *x, const int8_t *err, uint32_t nb,
                                         int8_t *out)
{
    const uint32_t c = L->in_c, row = L->in_w * c, kh = L->kh, kw = L->kw, oh = L->out_h, ow = L->out_w;
    const uint32_t n_in = L->n_in, step = kw * c, rows = kh * row;
    uint32_t n, py, px, ky, kx, ch;
    for (n = 0; n < nb; n++) {
        for (py = 0; py < oh; py++) {
            for (px = 0; px < ow; px++, err += c) {
                const uint32_t base = n * n_in + py * rows + px * step;
                if (kh == 2u && kw == 2u) { /* the usual window, written out */
                    for (ch = 0; ch < c; ch += 4u) {
                        const int8_t *win = x + base + ch;
                        int8_t *o = out + base + ch;
                        uint32_t a = fx_load32(win), b = fx_load32(win + c), d = fx_load32(win + row);
                        uint32_t g = fx_load32(win + row + c), e = fx_load32(err + ch), m, h, eq, taken;
                        (void)__ssub8(a, b);
                        m = __sel(a, b);
                        (void)__ssub8(d, g);
                        h = __sel(d, g);
                        (void)__ssub8(m, h);
                        m = __sel(m, h);
                        (void)__ssub8(a, m);
                        taken = __sel(0xFFFFFFFFu, 0u);
                        fx_store32(o, e & taken);
                        (void)__ssub8(b, m);
                        eq = __sel(0xFFFFFFFFu, 0u) & ~taken;
                        taken |= eq;
                        fx_store32(o + c, e & eq);
                        (void)__ssub8(d, m);
                        eq = __sel(0xFFFFFFFFu, 0u) & ~taken;
                        fx_store32(o + row, e & eq);
                        fx_store32(o + row + c, e & ~(taken | eq));
                    }
                    continue;
                }
                for (ch = 0; ch < c; ch += 4u) {
                    const int8_t *win = x + base + ch;
                    uint32_t m = fx_load32(win), e = fx_load32(err + ch), taken = 0;
                    for (ky = 0; ky < kh; ky++) {
                        for (kx = ky ? 0u : 1u; kx < kw; kx++) {
                            uint32_t b = fx_load32(win + ky * row + kx * c);
                            (void)__ssub8(m, b);
                            m = __sel(m, b);
                        }
                    }
                    for (ky = 0; ky < kh; ky++) {
                        for (kx = 0; kx < kw; kx++) {
                            const uint32_t at = ky * row + kx * c;
                            uint32_t eq;
                            (void)__ssub8(fx_load32(win + at), m);
                            eq = __sel(0xFFFFFFFFu, 0u) & ~taken;
                            taken |= eq;
                            fx_store32(out + base + ch + at, e & eq);
                        }
                    }
                }
            }
        }
    }
}
#endif

/* Max pooling kh x kw, stride the window, HWC: the largest of each window, per channel. The
 * channels of a tap are contiguous, so each tap is one pass over them (four at a time with
 * SSUB8 and SEL on a DSP core, where the channels are whole words). */
static inline void fx_pool_fwd(const fx_layer *L, const int8_t *x, uint32_t nb, int8_t *y)
{
    /* the layer's fields in locals: an int8 store may alias *L, which would reload them every time */
    const uint32_t c = L->in_c, row = L->in_w * c, kh = L->kh, kw = L->kw, oh = L->out_h, ow = L->out_w;
    const uint32_t n_in = L->n_in, step = kw * c, rows = kh * row;
    uint32_t n, py, px, ky, kx, ch;
    for (n = 0; n < nb; n++) {
        const int8_t *xn = x + n * n_in;
        for (py = 0; py < oh; py++) {
            for (px = 0; px < ow; px++, y += c) {
                const int8_t *win = xn + py * rows + px * step;
                for (ch = 0; ch < c; ch++) {
                    y[ch] = win[ch];
                }
                for (ky = 0; ky < kh; ky++) {
                    for (kx = 0; kx < kw; kx++) {
                        const int8_t *t = win + ky * row + kx * c;
                        ch = 0;
#if FX_DSP
                        if (c % 4u == 0u) { /* every tap and output then starts on a word */
                            for (; ch < c; ch += 4u) {
                                uint32_t a = fx_load32(y + ch), b = fx_load32(t + ch);
                                (void)__ssub8(a, b); /* GE bits: a >= b per byte */
                                fx_store32(y + ch, __sel(a, b));
                            }
                        }
#endif
                        for (; ch < c; ch++) {
                            y[ch] = t[ch] > y[ch] ? t[ch] : y[ch];
                        }
                    }
                }
            }
        }
    }
}

/* The error of each window to the input that won it (the first maximum, row-major); zero elsewhere. */
static inline void fx_pool_back(const fx_layer *L, const int8_t *x, const int8_t *err, uint32_t nb, int8_t *out)
{
    const uint32_t c = L->in_c, row = L->in_w * c, kh = L->kh, kw = L->kw, oh = L->out_h, ow = L->out_w;
    const uint32_t n_in = L->n_in, step = kw * c, rows = kh * row, total = nb * n_in;
    uint32_t n, py, px, ch, ky, kx, j;
    for (j = 0; j < total; j++) {
        out[j] = 0;
    }
    for (n = 0; n < nb; n++) {
        for (py = 0; py < oh; py++) {
            for (px = 0; px < ow; px++, err += c) {
                const uint32_t base = n * n_in + py * rows + px * step;
                const int8_t *win = x + base;
                if (kh == 2u && kw == 2u) { /* the usual window, its four taps in row-major order */
                    for (ch = 0; ch < c; ch++) {
                        const int8_t *p = win + ch;
                        uint32_t best = 0;
                        int32_t top = p[0];
                        best = p[c] > top ? (top = p[c], c) : best;
                        best = p[row] > top ? (top = p[row], row) : best;
                        best = p[row + c] > top ? row + c : best;
                        out[base + best + ch] = err[ch];
                    }
                    continue;
                }
                for (ch = 0; ch < c; ch++) {
                    uint32_t best = 0;
                    int32_t top = win[ch];
                    for (ky = 0; ky < kh; ky++) {
                        const int8_t *p = win + ky * row + ch;
                        for (kx = 0; kx < kw; kx++, p += c) {
                            if (*p > top) { /* strictly greater: the first maximum keeps it */
                                top = *p;
                                best = ky * row + kx * c;
                            }
                        }
                    }
                    out[base + best + ch] = err[ch];
                }
            }
        }
    }
}

/* --------------------------------------------------------------------- gap */

/* Global average pooling (gap.py), TFLite's int8 AVERAGE_POOL_2D: each channel's sum S over the
 * n = h*w positions, (S + n/2) / n for S >= 0 and (S - n/2) / n below, C's division truncating (to
 * nearest, ties away from zero). |S| <= 128 n < 2^31 (the parser holds n to it), so the rounding
 * runs on the magnitude in 32 bits: one division per output (a UDIV where the core has one). The
 * channel's sum stays in a register while its positions stream past, c bytes apart. */
static FX_NOINLINE void fx_gap_fwd(const fx_layer *L, const int8_t *x, uint32_t nb, int8_t *y)
{
    const uint32_t c = L->in_c, n = L->in_h * L->in_w, half = n / 2u;
    uint32_t s, ch, p;
    for (s = 0; s < nb; s++, x += n * c, y += c) {
        for (ch = 0; ch < c; ch++) {
            const int8_t *v = x + ch;
            int32_t sum = 0;
            uint32_t q;
            for (p = 0; p < n; p++, v += c) {
                sum += *v;
            }
            q = ((sum < 0 ? 0u - (uint32_t)sum : (uint32_t)sum) + half) / n;
            y[ch] = (int8_t)(sum < 0 ? -(int32_t)q : (int32_t)q);
        }
    }
}

/* floor(r * n / 2^32). ARMv6-M has no 32x32->64 multiply (gcc would call __aeabi_lmul for every
 * value below gap): there two 16-bit products, exact for n < 2^16 (the floor of the low product's
 * top half loses nothing the outer floor keeps); elsewhere one UMULL. */
#ifndef FX_MULHI_SPLIT
#if defined(__ARM_ARCH_6M__)
#define FX_MULHI_SPLIT 1
#else
#define FX_MULHI_SPLIT 0
#endif
#endif
static inline uint32_t fx_mulhi(uint32_t r, uint32_t n)
{
#if FX_MULHI_SPLIT
    if (n < 65536u) {
        return ((r >> 16) * n + (((r & 0xFFFFu) * n) >> 16)) >> 16;
    }
#endif
    return (uint32_t)(((uint64_t)r * n) >> 32);
}

/* The error below gap (gap.py): each position of channel ch receives x / n stochastically rounded,
 * x = e * 2^t with t = floor(log2 n), one draw per value in buffer order (sample, position,
 * channel), by sr_div: with q = floor(x / n) and rem = x - q n, q + 1 exactly when
 * floor(r n / 2^32) >= n - rem. q and n - rem depend on the sample and channel alone, so they are
 * worked out once per sample into the accumulator (free in this pass: 2c words of it) and a value
 * below costs a draw, a high product and a compare. |x| <= 128 n < 2^31; the result is within
 * [-128, 127] (|x / n| <= |e|), so nothing saturates. Returns t, which the exponent loses. */
static FX_NOINLINE int32_t fx_gap_back(const fx_net *net, const fx_layer *L, const int8_t *err, uint32_t nb,
                                       int8_t *below)
{
    const uint32_t c = L->in_c, n = L->in_h * L->in_w;
    const int32_t t = fx_bitlen64(n) - 1;
    int32_t *q = (int32_t *)FX_ALIGNED(net->acc);
    uint32_t *k = (uint32_t *)q + c, s, p, ch, r = *net->rng;
    for (s = 0; s < nb; s++, err += c) {
        for (ch = 0; ch < c; ch++) {
            const int32_t x = (int32_t)err[ch] * (int32_t)(1u << t);
            const uint32_t m = x < 0 ? 0u - (uint32_t)x : (uint32_t)x, qa = m / n, ra = m - qa * n;
            /* floor for a negative x: one below the truncated quotient unless n divides it */
            q[ch] = x >= 0 ? (int32_t)qa : -(int32_t)qa - (ra != 0u);
            k[ch] = x >= 0 ? n - ra : (ra != 0u ? ra : n);
        }
        for (p = 0; p < n; p++, below += c) {
            for (ch = 0; ch < c; ch++) {
                r = fx_xorshift32(&r);
                below[ch] = (int8_t)(q[ch] + (int32_t)(fx_mulhi(r, n) >= k[ch]));
            }
        }
    }
    *net->rng = r;
    return t;
}

/* ------------------------------------------------------------- forward */

/* acc[r][j] = layer L's bias term of channel j, for every position r: the sums start from it.
 * Returns how many bias terms were clamped to +-2^30, once per position. */
static inline int32_t fx_bias_terms(const fx_net *net, const fx_layer *L, int32_t shift, uint32_t positions)
{
    const uint32_t out_c = L->out_c;
    uint32_t j, r;
    int32_t c, clamped = 0;
    fx_grad_t *t = net->gbias; /* free until the update: holds one term per channel */
    fx_acc_t *acc = net->acc;
    for (j = 0; j < out_c; j++) {
        t[j] = (fx_grad_t)fx_bias_term(fx_layer_b(net, L)[j], shift, &c);
        clamped += c;
    }
    for (r = 0; r < positions; r++, acc += out_c) {
        for (j = 0; j < out_c; j++) {
            acc[j] = (fx_acc_t)t[j];
        }
    }
    return clamped * (int32_t)positions;
}

/* v clamped to [0, 127] (ReLU) or [-128, 127]: USAT or SSAT where the core has them */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define FX_CLAMP8(v, relu) ((relu) ? (int32_t)__usat((v), 7) : __ssat((v), 8))
#else
#define FX_CLAMP8(v, relu) ((v) > 127 ? 127 : ((v) < ((relu) ? 0 : -128) ? ((relu) ? 0 : -128) : (v)))
#endif

/* Four values from acc, each (a >> s1) halved plus its low bit (floor(a / 2^s) plus the bit below
 * the cut: half up, with no sum that could overflow), clamped and stored as one word at y. 127 - v
 * is negative exactly when v went past 127, so its sign bit counts the clips. */
#define FX_REQUANT4(acc, s1, relu, y, clipped)                                                       \
    do {                                                                                             \
        int32_t t0 = fx_asr32((acc)[0], s1), t1 = fx_asr32((acc)[1], s1);                            \
        int32_t t2 = fx_asr32((acc)[2], s1), t3 = fx_asr32((acc)[3], s1);                            \
        int32_t v0 = fx_asr32(t0, 1u) + (t0 & 1), v1 = fx_asr32(t1, 1u) + (t1 & 1);                  \
        int32_t v2 = fx_asr32(t2, 1u) + (t2 & 1), v3 = fx_asr32(t3, 1u) + (t3 & 1);                  \
        (clipped) += (int32_t)(((uint32_t)(127 - v0) >> 31) + ((uint32_t)(127 - v1) >> 31)          \
                               + ((uint32_t)(127 - v2) >> 31) + ((uint32_t)(127 - v3) >> 31));      \
        v0 = FX_CLAMP8(v0, relu), v1 = FX_CLAMP8(v1, relu), v2 = FX_CLAMP8(v2, relu), v3 = FX_CLAMP8(v3, relu); \
        fx_store32((y), ((uint32_t)v0 & 0xFFu) | (((uint32_t)v1 & 0xFFu) << 8)                       \
                            | (((uint32_t)v2 & 0xFFu) << 16) | ((uint32_t)v3 << 24));                \
    } while (0)

/* acc[0..n) rounded half up by 2^s into int8 (ReLU: into [0, 127]); returns how many went past 127;
 * y starts on a word: four values a trip where s > 0, stored as one word. */
static inline int32_t fx_requantise(const fx_acc_t *acc, uint32_t n, int32_t s, uint32_t relu, int8_t *y)
{
    uint32_t j = 0;
    int32_t clipped = 0, lo = relu ? 0 : -128;
#if !FX_ACC_WIDE
    if (s > 0) {
        const uint32_t s1 = (uint32_t)s - 1u, n4 = n & ~3u;
        if (relu) {
            for (; j < n4; j += 4u) {
                FX_REQUANT4(acc + j, s1, 1, y + j, clipped);
            }
        } else {
            for (; j < n4; j += 4u) {
                FX_REQUANT4(acc + j, s1, 0, y + j, clipped);
            }
        }
    }
#endif
    for (; j < n; j++) {
        /* floor(a / 2^s) plus the bit below the cut: half up, with no sum that could overflow */
#if FX_ACC_WIDE
        int32_t v = (int32_t)fx_floor_shift(acc[j], s) + (s ? (int32_t)((acc[j] >> (s - 1)) & 1) : 0);
#else
        int32_t v = fx_asr32(acc[j], (uint32_t)s) + (s ? (int32_t)(((uint32_t)acc[j] >> (s - 1)) & 1u) : 0);
#endif
        clipped += v > 127;
        v = v > 127 ? 127 : v;
        y[j] = (int8_t)(v < lo ? lo : v);
    }
    return clipped;
}

/* Integer forward pass of nb samples in acts[0] (exponent e_act[0]); counts saturations if asked. */
static FX_NOINLINE void fx_forward(const fx_net *net, uint32_t nb, int32_t count)
{
    uint32_t l;
    for (l = 0; l < net->n_layers; l++) {
        const fx_layer *L = &net->layers[l];
        uint32_t n = nb * L->n_out;
        int32_t clamped, clipped, s;
        if (L->kind == FX_KIND_POOL || L->kind == FX_KIND_GAP) { /* the output keeps the input's exponent */
            if (L->kind == FX_KIND_GAP) {
                fx_gap_fwd(L, net->acts[l], nb, net->acts[l + 1]);
            } else
#if FX_DSP
            if (L->in_c % 4u == 0u) {
                fx_pool_fwd_dsp(L, net->acts[l], nb, net->acts[l + 1]);
            } else
#endif
            fx_pool_fwd(L, net->acts[l], nb, net->acts[l + 1]);
            net->e_act[l + 1] = net->e_act[l];
            continue;
        }
#if FX_WV_SIMD && !FX_ACC_WIDE
        if (L->kind == FX_KIND_CONV && FX_CONV_DSP(L)) {
            /* the bias terms and the shift's scan ride along with the sums */
            s = fx_shift_of(fx_conv_fwd_dsp(net, L, net->acts[l], nb, net->e_act[l] + L->e_w - L->e_b, &clamped,
                                            net->acc));
        } else
#endif
        {
            clamped = fx_bias_terms(net, L, net->e_act[l] + L->e_w - L->e_b, n / L->out_c);
            if (L->kind == FX_KIND_DENSE) {
                fx_dense_fwd(net, L, net->acts[l], nb, net->acc);
            } else if (L->kind == FX_KIND_CONV) {
                fx_conv_fwd(net, L, net->acts[l], nb, net->acc);
            } else {
                fx_unknown_kind(net, L);
                return;
            }
            s = fx_tensor_shift(net->acc, n);
        }
        clipped = fx_requantise(net->acc, n, s, L->relu, net->acts[l + 1]);
        if (count) {
            net->counters[l * FX_N_SAT + FX_SAT_BIAS] += clamped;
            net->counters[l * FX_N_SAT + FX_SAT_ACT] += clipped;
        }
        net->e_act[l + 1] = net->e_act[l] + L->e_w + s;
    }
}

/* --------------------------------------------------------------- the loss */

/* Cross-entropy error p - onehot in Q7 from the int8 logits, integers only (requant.softmax_error_int).
 * Each p is at most 2^15 and their total at most classes * 2^15, so p * 128 + total / 2 fits 32 bits:
 * the division is a 32-bit one (one UDIV where the core has it). */
static FX_NOINLINE void fx_loss(const fx_net *net, uint32_t nb, int8_t *err)
{
    uint32_t last = net->n_layers, n, j, c = net->n_classes;
    const int8_t *z = net->acts[last];
    int32_t to_q8 = 15 - FX_EXP2_FRAC_BITS - net->e_act[last], clipped = 0;
    for (n = 0; n < nb; n++, z += c, err += c) {
        int32_t zmax = z[0];
        uint32_t total = 0;
        for (j = 1; j < c; j++) {
            zmax = z[j] > zmax ? z[j] : zmax;
        }
        for (j = 0; j < c; j++) {
            int64_t t = (int64_t)z[j] - zmax;
            net->probs[j] = fx_exp2_neg(-fx_round_shift(t * FX_LOG2E_Q15, to_q8));
            total += (uint32_t)net->probs[j];
        }
        for (j = 0; j < c; j++) {
            int32_t e = (int32_t)(((uint32_t)net->probs[j] * 128u + total / 2u) / total)
                        - (j == net->labels[n] ? 128 : 0);
            clipped += e > 127;
            err[j] = (int8_t)(e > 127 ? 127 : e);
        }
    }
    net->counters[(last - 1) * FX_N_SAT + FX_SAT_ERR] += clipped;
}

/* ---------------------------------------------------------------- backward */

/* back[0..n) stochastically rounded by 2^s into int8, one draw per value in order; returns how
 * many saturated. floor(a / 2^s) plus the carry of (a mod 2^s) + draw: no sum can overflow. */
static inline int32_t fx_error_below(const fx_acc_t *back, uint32_t n, int32_t s, uint32_t *rng, int8_t *below)
{
    uint32_t j = 0, r = *rng;
    int32_t clipped = 0;
#if !FX_ACC_WIDE && defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    if (s > 0) { /* SSAT clamps; a clamped value differs from its sum, which counts it */
        const uint32_t mask = (1u << s) - 1u;
        for (; j < n; j++) {
            int32_t v, c;
            r ^= r << 13, r ^= r >> 17, r ^= r << 5;
            v = fx_asr32(back[j], (uint32_t)s) + (int32_t)((((uint32_t)back[j] & mask) + (r & mask)) >> s);
            c = __ssat(v, 8);
            clipped += c != v;
            below[j] = (int8_t)c;
        }
    }
#endif
    for (; j < n; j++) {
        int32_t v;
        r = fx_xorshift32(&r);
#if FX_ACC_WIDE
        v = (int32_t)fx_sr_shift(back[j], s, r);
#else
        if (s == 0) {
            v = back[j];
        } else {
            uint32_t mask = (1u << s) - 1u;
            v = fx_asr32(back[j], (uint32_t)s) + (int32_t)((((uint32_t)back[j] & mask) + (r & mask)) >> s);
        }
#endif
        clipped += v > 127 || v < -128;
        v = v > 127 ? 127 : v;
        below[j] = (int8_t)(v < -128 ? -128 : v);
    }
    *rng = r;
    return clipped;
}

/* err[j] = 0 where the ReLU's output y[j] is not positive: a word of four values a trip (both
 * buffers start on a word). On a DSP core SSUB8 sets a GE bit per byte where 0 >= y and SEL takes
 * zero there; elsewhere the sign and the low seven bits of each byte give the same mask. */
static inline void fx_relu_mask(const int8_t *y, uint32_t m, int8_t *err)
{
    uint32_t j = 0;
#if FX_DSP
    for (; j + 8u <= m; j += 8u) { /* two words a trip */
        uint32_t y0 = fx_load32(y + j), y1 = fx_load32(y + j + 4u), e0 = fx_load32(err + j), e1 = fx_load32(err + j + 4u);
        (void)__ssub8(0u, y0);
        fx_store32(err + j, __sel(0u, e0));
        (void)__ssub8(0u, y1);
        fx_store32(err + j + 4u, __sel(0u, e1));
    }
#endif
    for (; j + 4u <= m; j += 4u) {
        uint32_t yw = fx_load32(y + j), e = fx_load32(err + j);
#if FX_DSP
        (void)__ssub8(0u, yw);
        fx_store32(err + j, __sel(0u, e));
#else
        uint32_t pos = (((yw & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) & ~yw & 0x80808080u) >> 7; /* 1 per byte > 0 */
        fx_store32(err + j, e & (pos * 0xFFu));
#endif
    }
    for (; j < m; j++) {
        err[j] = y[j] <= 0 ? 0 : err[j];
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
    uint32_t n = nb * L->n_in;
    int32_t s;
    if (L->kind == FX_KIND_POOL) {
#if FX_DSP
        if (L->in_c % 4u == 0u && L->out_h * L->kh == L->in_h && L->out_w * L->kw == L->in_w) {
            fx_pool_back_dsp(L, net->acts[l], err, nb, below);
            return e_err;
        }
#endif
        fx_pool_back(L, net->acts[l], err, nb, below);
        return e_err;
    }
    if (L->kind == FX_KIND_GAP) { /* draws whether or not a layer below trains, as the simulator */
        return e_err - fx_gap_back(net, L, err, nb, below);
    }
    if (L->relu) {
        fx_relu_mask(net->acts[l + 1], nb * L->n_out, err);
    }
    if (l == FX_LOW) { /* the lowest layer that trains sends no error below */
        return e_err;
    }
    if (L->kind == FX_KIND_DENSE) {
        fx_dense_back(net, L, err, nb, net->acc);
    } else if (L->kind == FX_KIND_CONV) {
        fx_conv_back(net, L, err, nb, net->acc);
    } else {
        fx_unknown_kind(net, L);
        return e_err;
    }
    s = fx_tensor_shift(net->acc, n);
    net->counters[(l - 1) * FX_N_SAT + FX_SAT_ERR] += fx_error_below(net->acc, n, s, net->rng, below);
    return e_err + L->e_w + s;
}

#include "fx_train_update.h"

#endif /* FX_TRAIN_PASSES_H */
