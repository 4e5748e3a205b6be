/* Small-channel convs (narrow, depthwise), softmax, layer norm and small lookups, as ggml custom ops; see kernels.h. */
#include "kernels.h"

/* acc += w * x must become one FMA: ISO C mode (-std=c11) turns GCC's contraction off. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <float.h>
#include "kernels_util.h"
#include "kernels_simd.h"

/* ---- narrow convs (few output channels) ---------------------------------------------------
 * With one panel of 16 outputs or fewer, the outer-product tile has one weight vector per depth
 * step, so each FMA waits on a broadcast load. Here the vectors run along the depth instead:
 * 4 pixels x 4 outputs of 16-lane partial dot products (8 loads per 16 FMAs), summed across
 * their lanes at the end. */

typedef int32_t mask16 __attribute__((vector_size(64), aligned(4)));

/* Lane i of the result: the sum of the lanes of a[i]. */
static inline v16 lane_sums(v16 a[16]) {
    const mask16 lo1 = { 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23 };
    const mask16 hi1 = { 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 };
    const mask16 lo2 = { 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27 };
    const mask16 hi2 = { 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31 };
    const mask16 lo3 = { 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29 };
    const mask16 hi3 = { 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31 };
    const mask16 lo4 = { 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30 };
    const mask16 hi4 = { 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31 };
    v16 r1[8], r2[4], r3[2];
    for (int i = 0; i < 8; ++i) {
        r1[i] = __builtin_shuffle(a[2 * i], a[2 * i + 1], lo1) + __builtin_shuffle(a[2 * i], a[2 * i + 1], hi1);
    }
    for (int i = 0; i < 4; ++i) {
        r2[i] = __builtin_shuffle(r1[2 * i], r1[2 * i + 1], lo2) + __builtin_shuffle(r1[2 * i], r1[2 * i + 1], hi2);
    }
    for (int i = 0; i < 2; ++i) {
        r3[i] = __builtin_shuffle(r2[2 * i], r2[2 * i + 1], lo3) + __builtin_shuffle(r2[2 * i], r2[2 * i + 1], hi3);
    }
    return __builtin_shuffle(r3[0], r3[1], lo4) + __builtin_shuffle(r3[0], r3[1], hi4);
}

/* 4 pixels (tap rows px[q * taps + t]) x outputs [o0, o0 + 4) of the weight w [OC4][taps * c]. */
static inline v16 narrow_block(const float * const * px, int64_t taps, int64_t c, const float * w, int64_t o0) {
    v16 acc[16];
    for (int i = 0; i < 16; ++i) {
        acc[i] = (v16){};
    }
    const int64_t k = taps * c, full = c & ~(int64_t) 15;
    for (int64_t t = 0; t < taps; ++t) {
        const float * x[4];
        const float * wr[4];
        for (int q = 0; q < 4; ++q) {
            x[q] = px[q * taps + t];
            wr[q] = w + (o0 + q) * k + t * c;
        }
        for (int64_t ci = 0; ci < full; ci += 16) {
            v16 xv[4], wv[4];
            for (int q = 0; q < 4; ++q) {
                memcpy(&xv[q], x[q] + ci, sizeof(v16));
                memcpy(&wv[q], wr[q] + ci, sizeof(v16));
            }
            for (int q = 0; q < 4; ++q) {
                for (int o = 0; o < 4; ++o) {
                    acc[q * 4 + o] += xv[q] * wv[o];
                }
            }
        }
        if (full < c) {
            v16 xv[4], wv[4];
            for (int q = 0; q < 4; ++q) {
                xv[q] = load_n(x[q] + full, c - full);
                wv[q] = load_n(wr[q] + full, c - full);
            }
            for (int q = 0; q < 4; ++q) {
                for (int o = 0; o < 4; ++o) {
                    acc[q * 4 + o] += xv[q] * wv[o];
                }
            }
        }
    }
    return lane_sums(acc);   /* lane 4 q + o: pixel q, output o0 + o */
}

void ggonnx_conv_narrow(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[0];
    const float * w = (const float *) dst->src[1]->data;
    const struct ggml_tensor * b = dst->src[2];
    const float lo = param_float(p[1]), hi = param_float(p[2]);
    const struct conv_geom g = { x, p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], dst->ne[1], dst->ne[2],
                                 0, 0, x->ne[0] };
    const int64_t taps = g.kw * g.kh, c = x->ne[0], oc = dst->ne[0], oc4 = (oc + 3) & ~(int64_t) 3;
    const int64_t pixels = ggml_nelements(dst) / oc, ldy = dst->nb[1] / sizeof(float);
    float * y = (float *) dst->data;
    int64_t q0, q1;
    split((pixels + 3) / 4, ith, nth, &q0, &q1);
    const float * rows[4 * MAX_TAPS];
    for (int64_t q = q0; q < q1; ++q) {
        const int64_t p0 = q * 4, np = MIN(4, pixels - p0);
        for (int64_t i = 0; i < 4; ++i) {   /* a short last block repeats its last pixel */
            tap_rows(&g, p0 + MIN(i, np - 1), rows + i * taps);
        }
        for (int64_t o0 = 0; o0 < oc4; o0 += 4) {
            v16 v = narrow_block(rows, taps, c, w, o0);
            float out[16];
            if (b) {
                const float * bias = (const float *) b->data + o0;
                const v16 bv = { bias[0], bias[1], bias[2], bias[3], bias[0], bias[1], bias[2], bias[3],
                                 bias[0], bias[1], bias[2], bias[3], bias[0], bias[1], bias[2], bias[3] };
                v += bv;
            }
            v = activate(v, (int) p[0], lo, hi);
            memcpy(out, &v, sizeof(out));
            const int64_t n_out = MIN(4, oc - o0);
            for (int64_t i = 0; i < np; ++i) {
                memcpy(y + (p0 + i) * ldy + o0, out + 4 * i, n_out * sizeof(float));
            }
        }
    }
}

/* ---- depthwise convs ------------------------------------------------------------------------
 * A task is one output row of one 16-channel block. The taps' weights stay in registers (the
 * kernel size is a compile-time constant for 3x3 and 5x5, so the tap loops unroll) and 4 output
 * pixels accumulate at once: 4 independent FMA chains, one weight vector per 4 FMAs. Pixels whose
 * taps all fall inside the row run without bounds checks; the few at the edges check each tap.
 * Bias and activation in the epilogue (ggml's depthwise kernel needs an Add and a Clamp pass). */

struct dw_geom {
    int64_t c, w_in, h_in, ow, oh, sw, sh, pw, ph, dw, dh;
    int64_t ldw, ldh, ldn;   /* input strides in floats: pixel, row, image */
};

/* mask n < 16: a tail block's lanes (plain loads and stores when full) */
static inline v16 dw_load(const float * p, int64_t m) {
#ifdef __AVX512F__
    if (m == 16) {   /* a plain load: through load_n GCC also stored every vector to the stack */
        return (v16) _mm512_loadu_ps(p);
    }
#endif
    return load_n(p, m);
}

/* A depthwise output row for one block of channels, in vectors VT of LANES floats (v16; v8 on
 * AVX2 builds, where GCC keeps 64-byte vectors in memory): loads LOAD(p, m), stores
 * STORE(p, v, m), activation ACT(v, act, lo, hi). */
#define DEFINE_DW_ROW(NAME, VT, LOAD, STORE, ACT)                                                   \
static inline __attribute__((always_inline)) void NAME(                                             \
        const struct dw_geom * g, const float * x, const float * w, const float * bias, float * y,  \
        int64_t c0, int64_t oy, int act, float lo, float hi, const int KH, const int KW, const int64_t m) {\
    /* x: image base; y: output row base (pixel 0, channel 0); rows ky0 <= ky < ky1 in bounds */    \
    const int64_t iy0 = oy * g->sh - g->ph;                                                         \
    int64_t ky0 = 0, ky1 = KH;                                                                      \
    while (ky0 < KH && iy0 + ky0 * g->dh < 0) {                                                     \
        ++ky0;                                                                                      \
    }                                                                                               \
    while (ky1 > ky0 && iy0 + (ky1 - 1) * g->dh >= g->h_in) {                                       \
        --ky1;                                                                                      \
    }                                                                                               \
    VT wv[KH * KW];                                                                                 \
    for (int t = 0; t < KH * KW; ++t) {                                                             \
        wv[t] = LOAD(w + t * g->c + c0, m);                                                         \
    }                                                                                               \
    const VT b0 = bias ? LOAD(bias + c0, m) : (VT){};                                               \
    const float * rows[KH];                                                                         \
    for (int ky = 0; ky < KH; ++ky) {                                                               \
        rows[ky] = x + (iy0 + ky * g->dh) * g->ldh + c0;   /* only read for ky0 <= ky < ky1 */      \
    }                                                                                               \
    const int64_t sw = g->sw, dw = g->dw, pw = g->pw, ldw = g->ldw;                                 \
    /* interior: 0 <= ox*sw - pw and ox*sw - pw + (KW-1)*dw < w_in */                               \
    int64_t in0 = (pw + sw - 1) / sw, in1 = (g->w_in - 1 - (KW - 1) * dw + pw) / sw + 1;            \
    if (g->w_in - 1 - (KW - 1) * dw + pw < 0) {                                                     \
        in1 = 0;                                                                                    \
    }                                                                                               \
    in0 = MIN(in0, g->ow);                                                                          \
    in1 = MAX(in0, MIN(in1, g->ow));                                                                \
    for (int64_t ox = 0; ox < g->ow; ++ox) {                                                        \
        if (ox == in0) {   /* the unchecked 4-pixel loop, then the rest of the interior */          \
            for (; ox + 4 <= in1; ox += 4) {                                                        \
                VT a0 = b0, a1 = b0, a2 = b0, a3 = b0;                                              \
                for (int ky = 0; ky < KH; ++ky) {                                                   \
                    if (ky < ky0 || ky >= ky1) {                                                    \
                        continue;                                                                   \
                    }                                                                               \
                    const float * r = rows[ky] + (ox * sw - pw) * ldw;                              \
                    for (int kx = 0; kx < KW; ++kx) {                                               \
                        const float * q = r + kx * dw * ldw;                                        \
                        const VT wt = wv[ky * KW + kx];                                             \
                        a0 += wt * LOAD(q, m);                                                      \
                        a1 += wt * LOAD(q + sw * ldw, m);                                           \
                        a2 += wt * LOAD(q + 2 * sw * ldw, m);                                       \
                        a3 += wt * LOAD(q + 3 * sw * ldw, m);                                       \
                    }                                                                               \
                }                                                                                   \
                float * o = y + ox * g->c + c0;                                                     \
                STORE(o, ACT(a0, act, lo, hi), m);                                                  \
                STORE(o + g->c, ACT(a1, act, lo, hi), m);                                           \
                STORE(o + 2 * g->c, ACT(a2, act, lo, hi), m);                                       \
                STORE(o + 3 * g->c, ACT(a3, act, lo, hi), m);                                       \
            }                                                                                       \
            if (ox >= g->ow) {                                                                      \
                break;                                                                              \
            }                                                                                       \
        }                                                                                           \
        VT a = b0;   /* one pixel, each tap checked */                                              \
        for (int ky = 0; ky < KH; ++ky) {                                                           \
            if (ky < ky0 || ky >= ky1) {                                                            \
                continue;                                                                           \
            }                                                                                       \
            for (int kx = 0; kx < KW; ++kx) {                                                       \
                const int64_t ix = ox * sw - pw + kx * dw;                                          \
                if (ix >= 0 && ix < g->w_in) {                                                      \
                    a += wv[ky * KW + kx] * LOAD(rows[ky] + ix * ldw, m);                           \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        STORE(y + ox * g->c + c0, ACT(a, act, lo, hi), m);                                          \
    }                                                                                               \
}

DEFINE_DW_ROW(dw_row, v16, dw_load, store_n, activate)

#ifdef __AVX512F__
/* a full 16-lane block is one cache line of an output with C a multiple of 16 */
DEFINE_DW_ROW(dw_row_streamed, v16, dw_load, store_n_streamed, activate)
#endif

#ifdef GGONNX_AVX2
typedef float v8 __attribute__((vector_size(32), aligned(4)));

static inline v8 dw_load8(const float * p, int64_t m) {
    return (v8) load8_n(p, m);
}

static inline void store8(float * p, v8 v, int64_t m) {
    store8_n(p, (__m256) v, m);
}

static inline __attribute__((always_inline)) v8 activate_v8(v8 v, int act, float lo, float hi) {
    return (v8) activate8((__m256) v, act, lo, hi);
}

DEFINE_DW_ROW(dw_row8, v8, dw_load8, store8, activate_v8)

/* a full block's row with the activation a constant too: a runtime choice among the inlined
 * activations at every store held registers the loop needed (mobilenet_v3_small 4% slower) */
#define DW_ROW8_ACT(K)                                                                              \
    switch (act) {                                                                                  \
    case GGONNX_ACT_NONE: dw_row8(&g, xn, w, bias, y, c0, oy, GGONNX_ACT_NONE, lo, hi, K, K, 8); break; \
    case GGONNX_ACT_CLAMP: dw_row8(&g, xn, w, bias, y, c0, oy, GGONNX_ACT_CLAMP, lo, hi, K, K, 8); break; \
    case GGONNX_ACT_HARDSWISH: dw_row8(&g, xn, w, bias, y, c0, oy, GGONNX_ACT_HARDSWISH, lo, hi, K, K, 8); break; \
    case GGONNX_ACT_SILU: dw_row8(&g, xn, w, bias, y, c0, oy, GGONNX_ACT_SILU, lo, hi, K, K, 8); break; \
    default: dw_row8(&g, xn, w, bias, y, c0, oy, act, lo, hi, K, K, 8); break;                       \
    }
#endif

/* kernel sizes other than 3x3 and 5x5: the weights read from memory (L1) */
static void dw_row_any(const struct dw_geom * g, const float * x, const float * w, const float * bias, float * y,
                       int64_t c0, int64_t oy, int act, float lo, float hi, int64_t kh, int64_t kw, int64_t m) {
    const int64_t iy0 = oy * g->sh - g->ph;
    for (int64_t ox = 0; ox < g->ow; ++ox) {
        v16 a = bias ? dw_load(bias + c0, m) : (v16){};
        for (int64_t ky = 0; ky < kh; ++ky) {
            const int64_t iy = iy0 + ky * g->dh;
            if (iy < 0 || iy >= g->h_in) {
                continue;
            }
            for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix = ox * g->sw - g->pw + kx * g->dw;
                if (ix >= 0 && ix < g->w_in) {
                    a += dw_load(w + (ky * kw + kx) * g->c + c0, m) * dw_load(x + iy * g->ldh + ix * g->ldw + c0, m);
                }
            }
        }
        store_n(y + ox * g->c + c0, activate(a, act, lo, hi), m);
    }
}

/* The rows the next output row reads first (input rows past this row's window) and its output
 * (y_next, NULL when streamed), fetched into L2 while this row computes, part `blk` of `nblk` per
 * channel block: a block's loads stride over whole pixels (C floats), one line in C/16, which the
 * hardware prefetchers do not run ahead of (mobilenet_v2 at batch 8 reads its 112x112 maps from
 * memory). */
static void dw_prefetch_next_row(const struct dw_geom * g, const float * x, float * y_next, int64_t oy, int64_t kh,
                                 int64_t blk, int64_t nblk) {
    const int64_t row_bytes = g->w_in * g->ldw * (int64_t) sizeof(float);
    const int64_t last = oy * g->sh - g->ph + (kh - 1) * g->dh;   /* this row's last input row */
    const int64_t b0 = row_bytes * blk / nblk, b1 = row_bytes * (blk + 1) / nblk;
    for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t iy = (oy + 1) * g->sh - g->ph + ky * g->dh;
        if (iy <= last || iy < 0 || iy >= g->h_in) {
            continue;
        }
        const char * row = (const char *) (x + iy * g->ldh);
        for (int64_t b = b0 & ~(int64_t) 63; b < b1; b += 64) {
            __builtin_prefetch(row + b, 0, 2);
        }
    }
    if (y_next == NULL) {   /* a streamed output */
        return;
    }
    const int64_t out_bytes = g->ow * g->c * (int64_t) sizeof(float);
    const char * out = (const char *) y_next;
    for (int64_t b = (out_bytes * blk / nblk) & ~(int64_t) 63; b < out_bytes * (blk + 1) / nblk; b += 64) {
        __builtin_prefetch(out + b, 1, 2);
    }
}

void ggonnx_conv_dw(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[0];
    const float * w = (const float *) dst->src[1]->data;
    const float * bias = dst->src[2] ? (const float *) dst->src[2]->data : NULL;
    const float lo = param_float(p[1]), hi = param_float(p[2]);
    const int act = (int) p[0];
    const int64_t kw = p[3], kh = p[4];
    const struct dw_geom g = {
        .c = x->ne[0], .w_in = x->ne[1], .h_in = x->ne[2], .ow = dst->ne[1], .oh = dst->ne[2],
        .sw = p[5], .sh = p[6], .pw = p[7], .ph = p[8], .dw = p[9], .dh = p[10],
        .ldw = x->nb[1] / (int64_t) sizeof(float), .ldh = x->nb[2] / (int64_t) sizeof(float),
        .ldn = x->nb[3] / (int64_t) sizeof(float),
    };
#ifdef GGONNX_AVX2
    const int64_t lanes = 8;
#else
    const int64_t lanes = 16;
#endif
    const int64_t nblk = (g.c + lanes - 1) / lanes;
#ifdef __AVX512F__
    const int stream = (int64_t) ggml_nbytes(dst) >= ggonnx_stream_min_bytes();
#else
    const int stream = 0;
#endif
    int64_t t0, t1;
    split(g.oh * dst->ne[3] * nblk, ith, nth, &t0, &t1);   /* tasks: (image, row, channel block) */
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t c0 = (t % nblk) * lanes, r = t / nblk, oy = r % g.oh, n = r / g.oh;
        const int64_t m = MIN(lanes, g.c - c0);
        const float * xn = (const float *) x->data + n * g.ldn;
        float * y = at4(dst, 0, 0, oy, n);
        if (oy + 1 < g.oh) {
            dw_prefetch_next_row(&g, xn, stream ? NULL : at4(dst, 0, 0, oy + 1, n), oy, kh, t % nblk, nblk);
        }
#ifdef GGONNX_AVX2
        /* full blocks with the lane count a constant: plain loads, not a branch per load
         * (192 channels at 28x28 ran at 22 GFLOP/s) */
        if (kh == 3 && kw == 3 && m == 8) {
            DW_ROW8_ACT(3)
        } else if (kh == 5 && kw == 5 && m == 8) {
            DW_ROW8_ACT(5)
        } else if (kh == 3 && kw == 3) {
            dw_row8(&g, xn, w, bias, y, c0, oy, act, lo, hi, 3, 3, m);
        } else if (kh == 5 && kw == 5) {
            dw_row8(&g, xn, w, bias, y, c0, oy, act, lo, hi, 5, 5, m);
        } else if (kh == 7 && kw == 7) {
            dw_row8(&g, xn, w, bias, y, c0, oy, act, lo, hi, 7, 7, m);
        } else {
            dw_row_any(&g, xn, w, bias, y, c0, oy, act, lo, hi, kh, kw, m);
        }
#else
#ifdef __AVX512F__
        if (stream && kh == 3 && kw == 3 && m == 16) {
            dw_row_streamed(&g, xn, w, bias, y, c0, oy, act, lo, hi, 3, 3, 16);
        } else if (stream && kh == 5 && kw == 5 && m == 16) {
            dw_row_streamed(&g, xn, w, bias, y, c0, oy, act, lo, hi, 5, 5, 16);
        } else
#endif
        if (kh == 3 && kw == 3 && m == 16) {
            dw_row(&g, xn, w, bias, y, c0, oy, act, lo, hi, 3, 3, 16);
        } else if (kh == 5 && kw == 5 && m == 16) {
            dw_row(&g, xn, w, bias, y, c0, oy, act, lo, hi, 5, 5, 16);
        } else if (kh == 3 && kw == 3) {
            dw_row(&g, xn, w, bias, y, c0, oy, act, lo, hi, 3, 3, m);
        } else {
            dw_row_any(&g, xn, w, bias, y, c0, oy, act, lo, hi, kh, kw, m);
        }
#endif
    }
#ifdef __AVX512F__
    if (stream) {
        _mm_sfence();   /* the streamed lines visible before the node's barrier */
    }
#endif
}

/* ---- softmax ------------------------------------------------------------------------------
 * Along ne0 of contiguous rows: max, exp (exp16) and sum, scale; each row stays in L1 (ggml's
 * soft_max spent 13% of whisper's encoder). */

/* exp, exactly 0 where exp16 would clamp (masked attention scores of -inf or -1e9) */
static inline v16 exp_or_zero(v16 d) {
    return select16(lt16(d, SPLAT(-87.3f)), SPLAT(0.0f), exp16(d));
}

/* y = s * x + mask (the mask's row broadcast over x's rows, as ggml_repeat), what a scaling and
 * an Add of an attention mask before the softmax computed as two nodes */
static void masked_scores(float * y, const float * x, const struct ggml_tensor * mask, int64_t r,
                          const struct ggml_tensor * src, float s) {
    const int64_t n = src->ne[0];
    int64_t i1, i2, i3;
    row_coords(src, r, &i1, &i2, &i3);
    const float * m = at4(mask, 0, i1 % mask->ne[1], i2 % mask->ne[2], i3 % mask->ne[3]);
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t k = MIN(16, n - i);
        store_n(y + i, load_n(x + i, k) * SPLAT(s) + load_n(m + i, k), k);
    }
}

void ggonnx_softmax(struct ggml_tensor * dst, int ith, int nth, void * params) {
    /* params[0]: float bits of a scale > 0 applied to x first (0: none): softmax(s*x) is
     * exp(s*(x - max x)) normalized, so the scaling costs no pass over memory of its own.
     * src[1], if present: a mask added after the scaling, softmax(s*x + mask); the row is then
     * scaled and masked into dst first, and the passes below run on it with scale 1. */
    const int64_t scale_bits = ((const int64_t *) params)[0];
    const struct ggml_tensor * src = dst->src[0], * mask = dst->src[1];
    const v16 scale = SPLAT(scale_bits && mask == NULL ? param_float(scale_bits) : 1.0f);
    const int64_t n = src->ne[0], rows = ggml_nrows(src), full = n & ~(int64_t) 15;
    const v16 lanes = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    const vi16 tail = lt16(lanes, SPLAT((float) (n - full)));   /* the last block's valid lanes */
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const float * x = (const float *) src->data + r * n;
        float * y = (float *) dst->data + r * n;
        if (mask != NULL) {
            masked_scores(y, x, mask, r, src, scale_bits ? param_float(scale_bits) : 1.0f);
            x = y;
        }
        v16 mv = SPLAT(-INFINITY);
        for (int64_t i = 0; i < full; i += 16) {
            const v16 v = load_n(x + i, 16);
            mv = select16(lt16(mv, v), v, mv);
        }
        if (full < n) {
            const v16 v = select16(tail, load_n(x + full, n - full), SPLAT(-INFINITY));
            mv = select16(lt16(mv, v), v, mv);
        }
        float m = mv[0];
        for (int i = 1; i < 16; ++i) {
            m = mv[i] > m ? mv[i] : m;
        }
        v16 sv = {};
        for (int64_t i = 0; i < full; i += 16) {
            const v16 e = exp_or_zero((load_n(x + i, 16) - SPLAT(m)) * scale);
            store_n(y + i, e, 16);
            sv += e;
        }
        if (full < n) {
            const v16 e = select16(tail, exp_or_zero((load_n(x + full, n - full) - SPLAT(m)) * scale), SPLAT(0.0f));
            store_n(y + full, e, n - full);
            sv += e;
        }
        const float sum = hsum16(sv);
        const v16 inv = SPLAT(1.0f / sum);
        for (int64_t i = 0; i < n; i += 16) {
            const int64_t k = MIN(16, n - i);
            store_n(y + i, load_n(y + i, k) * inv, k);
        }
    }
}

/* ---- a classifier's label step: argmax / argmin along ne0, and a lookup table -------------- */

void ggonnx_arg_extreme(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int is_min = (int) p[0], last = (int) p[1], nan_wins = (int) p[2];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t n = src->ne[0], rows = src->ne[1] * src->ne[2] * src->ne[3];
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        row_coords(src, r, &i1, &i2, &i3);
        const char * row = (const char *) src->data + i1 * src->nb[1] + i2 * src->nb[2] + i3 * src->nb[3];
        int64_t best = last ? n - 1 : 0;
        float bv = *(const float *) (row + best * src->nb[0]);
        /* nan_wins: a NaN wins where it is first met; else the strict scan of onnxruntime's ML
         * kernels, where a NaN never wins and a NaN first keeps index 0 */
        for (int64_t k = 1; k < n && (bv == bv || !nan_wins); ++k) {
            const int64_t i = last ? n - 1 - k : k;
            const float v = *(const float *) (row + i * src->nb[0]);
            if ((nan_wins && v != v) || (is_min ? v < bv : v > bv)) {
                best = i;
                bv = v;
            }
        }
        *(float *) ((char *) dst->data + i1 * dst->nb[1] + i2 * dst->nb[2] + i3 * dst->nb[3]) = (float) best;
    }
}

void ggonnx_lookup(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * table = dst->src[0], * idx = dst->src[1];
    const int64_t n = ggml_nelements(dst), size = table->ne[0];
    const float * t = (const float *) table->data, * x = (const float *) idx->data;
    float * y = (float *) dst->data;
    int64_t i0, i1;
    split(n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; ++i) {
        const float f = x[i];   /* in [0, size) by the lowering's bound; clamped all the same (NaN: 0) */
        y[i] = t[f >= (float) size ? size - 1 : f >= 0.0f ? (int64_t) f : 0];
    }
}

void ggonnx_one_hot(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * values = dst->src[0], * cats = dst->src[1];
    const int64_t m = ggml_nelements(values), k = ggml_nelements(cats);
    const float * x = (const float *) values->data, * c = (const float *) cats->data;
    float * y = (float *) dst->data;
    int64_t i0, i1;
    split(m, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; ++i) {
        const float v = x[i];
        for (int64_t j = 0; j < k; ++j) {
            y[i * k + j] = v == c[j] ? 1.0f : 0.0f;
        }
    }
}

void ggonnx_take_columns(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * src = dst->src[0], * ids = dst->src[1];
    const int64_t c = src->ne[0], k = dst->ne[0], rows = ggml_nrows(dst);
    const float * x = (const float *) src->data, * f = (const float *) ids->data;
    float * y = (float *) dst->data;
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const float * row = x + r * c;
        float * out = y + r * k;
        for (int64_t j = 0; j < k; ++j) {
            out[j] = row[f[j] >= (float) c ? c - 1 : f[j] >= 0.0f ? (int64_t) f[j] : 0];
        }
    }
}

void ggonnx_norm_affine(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * src = dst->src[0];
    const float * g = (const float *) dst->src[1]->data;
    const float * b = dst->src[2] != NULL ? (const float *) dst->src[2]->data : NULL;
    const int64_t n = src->ne[0], rows = ggml_nrows(src);
    const float eps = param_float(p[0]);
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const float * x = (const float *) src->data + r * n;
        float * y = (float *) dst->data + r * n;
        v16 acc = SPLAT(0.0f);
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            acc += load_n(x + i, 16);
        }
        float sum = hsum16(acc);
        for (; i < n; ++i) {
            sum += x[i];
        }
        const float mean = sum / (float) n;
        const v16 vmean = SPLAT(mean);
        acc = SPLAT(0.0f);
        for (i = 0; i + 16 <= n; i += 16) {
            const v16 d = load_n(x + i, 16) - vmean;
            acc += d * d;
        }
        float var = hsum16(acc);
        for (; i < n; ++i) {
            var += (x[i] - mean) * (x[i] - mean);
        }
        const float rstd = 1.0f / sqrtf(var / (float) n + eps);
        const v16 vr = SPLAT(rstd);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 v = (load_n(x + i, 16) - vmean) * vr * load_n(g + i, 16);
            if (b != NULL) {
                v += load_n(b + i, 16);
            }
            store_n(y + i, v, 16);
        }
        for (; i < n; ++i) {
            y[i] = (x[i] - mean) * rstd * g[i] + (b != NULL ? b[i] : 0.0f);
        }
    }
}
