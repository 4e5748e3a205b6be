/* Channels-last kernels run as ggml custom ops; see kernels.h for layouts and parameters.
 * Inner loops run over contiguous channels, which the compiler vectorizes. */
#include "kernels.h"

/* acc += w * x must become one FMA: ISO C mode (-std=c11) turns GCC's contraction off. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <float.h>
#include <math.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "kernels_util.h"

void ggonnx_im2col_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2];
    const int64_t k = dst->ne[0], ow = dst->ne[1], oh = dst->ne[2];
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);   /* rows of output pixels */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        float * out = (float *) ((char *) dst->data + oy * dst->nb[2] + n * dst->nb[3]);
        for (int64_t ox = 0; ox < ow; ++ox, out += k) {
            float * o = out;
            for (int64_t ky = 0; ky < kh; ++ky) {
                const int64_t iy = oy * sh - ph + ky * dh;
                for (int64_t kx = 0; kx < kw; ++kx, o += c) {
                    const int64_t ix = ox * sw - pw + kx * dw;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                        memset(o, 0, c * sizeof(float));
                    } else {
                        memcpy(o, pixel(src, ix, iy, n), c * sizeof(float));
                    }
                }
            }
        }
    }
}

void ggonnx_pool_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const int64_t mode = p[8], ew = p[9], eh = p[10];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2];
    const int64_t ow = dst->ne[1], oh = dst->ne[2];
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
            float * o = (float *) ((char *) dst->data + ox * dst->nb[1] + oy * dst->nb[2] + n * dst->nb[3]);
            const float init = mode == 0 ? -FLT_MAX : 0.0f;
            for (int64_t ci = 0; ci < c; ++ci) {
                o[ci] = init;
            }
            int64_t taps = 0;
            for (int64_t ky = 0; ky < kh; ++ky) {
                const int64_t iy = oy * sh - ph + ky * dh;
                if (iy < 0 || iy >= h) {
                    continue;
                }
                for (int64_t kx = 0; kx < kw; ++kx) {
                    const int64_t ix = ox * sw - pw + kx * dw;
                    if (ix < 0 || ix >= w) {
                        continue;
                    }
                    const float * in = pixel(src, ix, iy, n);
                    ++taps;
                    if (mode == 0) {
                        for (int64_t ci = 0; ci < c; ++ci) {
                            o[ci] = o[ci] > in[ci] ? o[ci] : in[ci];
                        }
                    } else {
                        for (int64_t ci = 0; ci < c; ++ci) {
                            o[ci] += in[ci];
                        }
                    }
                }
            }
            if (mode == 0) {
                continue;
            }
            int64_t count = taps;
            if (mode == 2) {  /* the window clipped to the input plus its explicit pads */
                const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
                const int64_t ny = MIN(y0 + kh, h + eh) - MAX(y0, -ph);
                const int64_t nx = MIN(x0 + kw, w + ew) - MAX(x0, -pw);
                count = MAX(ny, 0) * MAX(nx, 0);
            }
            const float scale = count > 0 ? 1.0f / (float) count : 0.0f;
            for (int64_t ci = 0; ci < c; ++ci) {
                o[ci] *= scale;
            }
        }
    }
}

void ggonnx_global_pool_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t mode = ((const int64_t *) params)[0];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2], batch = src->ne[3];
    /* work items: (image, block of 64 channels) */
    const int64_t block = 64, blocks = (c + block - 1) / block;
    int64_t i0, i1;
    split(blocks * batch, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; ++i) {
        const int64_t n = i / blocks, c0 = (i % blocks) * block, c1 = MIN(c, c0 + block);
        float * o = (float *) ((char *) dst->data + n * dst->nb[3]);
        for (int64_t ci = c0; ci < c1; ++ci) {
            o[ci] = mode == 0 ? -FLT_MAX : 0.0f;
        }
        for (int64_t y = 0; y < h; ++y) {
            for (int64_t x = 0; x < w; ++x) {
                const float * in = pixel(src, x, y, n);
                if (mode == 0) {
                    for (int64_t ci = c0; ci < c1; ++ci) {
                        o[ci] = o[ci] > in[ci] ? o[ci] : in[ci];
                    }
                } else {
                    for (int64_t ci = c0; ci < c1; ++ci) {
                        o[ci] += in[ci];
                    }
                }
            }
        }
        if (mode != 0) {
            const float scale = 1.0f / (float) (w * h);
            for (int64_t ci = c0; ci < c1; ++ci) {
                o[ci] *= scale;
            }
        }
    }
}

/* ---- packed GEMM ------------------------------------------------------------------------ */

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t vi16 __attribute__((vector_size(64), aligned(4)));

#define SPLAT(s) ((v16){ s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s })

/* where(mask, a, b) for a lane mask from a vector comparison (C has no vector ?:) */
static inline v16 select16(vi16 mask, v16 a, v16 b) {
    return (v16) (((vi16) a & mask) | ((vi16) b & ~mask));
}
#define PANEL GGONNX_GEMM_PANEL
#define NR 12   /* pixels per micro-tile */

struct epilogue {
    const float * bias;       /* NULL: none */
    const float * residual;   /* added before the activation, laid out as the output; NULL: none */
    const float * y;          /* the output's start: a residual element sits at the same offset */
    int act;
    float lo, hi;
};

/* Store the first n floats of v (n <= 16). */
static inline void store_n(float * dst, v16 v, int64_t n) {
    if (n == 16) {
        memcpy(dst, &v, sizeof(v));
    } else {
        float tmp[16];
        memcpy(tmp, &v, sizeof(v));
        memcpy(dst, tmp, n * sizeof(float));
    }
}

static inline v16 clamp16(v16 x, v16 lo, v16 hi) {
    x = select16(x < lo, lo, x);
    return select16(x > hi, hi, x);
}

/* exp(x) to about 1 ulp: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its degree-6 Taylor
 * polynomial (error below 1.2e-7 relative), 2^n through the exponent bits. x is clamped to
 * [-87.3, 88.3] so that n stays a normal exponent; NaN stays NaN. */
static inline v16 exp16(v16 x) {
    x = clamp16(x, SPLAT(-87.3f), SPLAT(88.3f));
    const v16 magic = SPLAT(12582912.0f);              /* 1.5 * 2^23: adding it rounds to an integer */
    const v16 t = x * SPLAT(1.44269504f) + magic;
    const v16 n = t - magic;
    const v16 r = (x - n * SPLAT(0.693145752f)) - n * SPLAT(1.42860677e-6f);   /* ln2 in two parts */
    v16 p = SPLAT(1.0f / 720.0f);
    p = p * r + SPLAT(1.0f / 120.0f);
    p = p * r + SPLAT(1.0f / 24.0f);
    p = p * r + SPLAT(1.0f / 6.0f);
    p = p * r + SPLAT(0.5f);
    p = p * r + SPLAT(1.0f);
    p = p * r + SPLAT(1.0f);
    const vi16 bits = ((vi16) t - (vi16) magic + 127) << 23;   /* the integer n, as 2^n */
    return p * (v16) bits;
}

/* Exactly 0 below -88.3 (where exp16 clamps), as for -inf: silu(-inf) is then NaN, as in numpy. */
static inline v16 sigmoid16(v16 x) {
    return select16(x < SPLAT(-88.3f), SPLAT(0.0f), SPLAT(1.0f) / (SPLAT(1.0f) + exp16(-x)));
}

/* The activation of an epilogue (kernels.h: GGONNX_ACT_*); lo, hi are its two parameters. */
static inline v16 activate(v16 acc, int act, float lo, float hi) {
    if (act == GGONNX_ACT_CLAMP) {
        return clamp16(acc, SPLAT(lo), SPLAT(hi));
    }
    if (act == GGONNX_ACT_HARDSWISH) {
        return acc * clamp16(acc * SPLAT(1.0f / 6.0f) + SPLAT(0.5f), SPLAT(0.0f), SPLAT(1.0f));
    }
    if (act == GGONNX_ACT_HARDSIGMOID) {
        return clamp16(acc * SPLAT(lo) + SPLAT(hi), SPLAT(0.0f), SPLAT(1.0f));
    }
    if (act == GGONNX_ACT_SIGMOID) {
        return sigmoid16(acc);
    }
    if (act == GGONNX_ACT_ROUND) {
        /* adding and taking away 1.5 * 2^23 rounds to the nearest integer, ties to even, in the
         * default rounding mode; clamped first so the trick's range (2^22) holds */
        const v16 magic = SPLAT(12582912.0f);
        const v16 y = clamp16(acc, SPLAT(lo - 1.0f), SPLAT(hi + 1.0f));
        return clamp16((y + magic) - magic, SPLAT(lo), SPLAT(hi));
    }
    if (act == GGONNX_ACT_SILU) {
        return acc * sigmoid16(acc);
    }
    if (act == GGONNX_ACT_GELU_ERF) {
        /* 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): erfc by a Chebyshev fit of
         * fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc), so the negative
         * tail, where 1 + erf cancels, stays accurate: measured 1.2e-6 relative where
         * |gelu| > 1e-3, 1.4e-5 in the far tail (exp of a rounded -a^2); ggml's erff is scalar */
        const v16 z = acc * SPLAT(-0.70710678f);
        const v16 a = select16(z < SPLAT(0.0f), -z, z);
        const v16 t = SPLAT(1.0f) / (SPLAT(1.0f) + SPLAT(0.5f) * a);
        v16 p = SPLAT(0.17087277f);
        p = p * t + SPLAT(-0.82215223f);
        p = p * t + SPLAT(1.48851587f);
        p = p * t + SPLAT(-1.13520398f);
        p = p * t + SPLAT(0.27886807f);
        p = p * t + SPLAT(-0.18628806f);
        p = p * t + SPLAT(0.09678418f);
        p = p * t + SPLAT(0.37409196f);
        p = p * t + SPLAT(1.00002368f);
        p = p * t + SPLAT(-1.26551223f);
        const v16 erfc_a = t * exp16(p - a * a);
        return SPLAT(0.5f) * acc * select16(z < SPLAT(0.0f), SPLAT(2.0f) - erfc_a, erfc_a);
    }
    if (act == GGONNX_ACT_GELU_TANH) {   /* 0.5 x (1 + tanh(z)) = x sigmoid(2 z) */
        const v16 z2 = SPLAT(1.5957691216f) * (acc + SPLAT(0.044715f) * acc * acc * acc);
        return acc * sigmoid16(z2);
    }
    return acc;
}

/* The epilogue of the n (<= 16) outputs at y (output channel o0 on). */
static inline v16 finish(v16 acc, const struct epilogue * ep, int64_t o0, const float * y, int64_t n) {
    if (ep->bias) {
        v16 b;
        memcpy(&b, ep->bias + o0, sizeof(b));
        acc += b;
    }
    if (ep->residual) {
        v16 r = {};
        memcpy(&r, ep->residual + (y - ep->y), n * sizeof(float));
        acc += r;
    }
    return activate(acc, ep->act, ep->lo, ep->hi);
}

void ggonnx_activation(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const float lo = param_float(p[1]), hi = param_float(p[2]);
    const int act = (int) p[0];
    const float * x = (const float *) dst->src[0]->data;
    float * y = (float *) dst->data;
    const int64_t n = ggml_nelements(dst), blocks = (n + 15) / 16;
    int64_t b0, b1;
    split(blocks, ith, nth, &b0, &b1);
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t i = b * 16, m = MIN(16, n - i);
        v16 v = {};
        memcpy(&v, x + i, m * sizeof(float));
        store_n(y + i, activate(v, act, lo, hi), m);
    }
}

/* Where a tile's input comes from: for each of its pixels, ``taps`` rows (one per kernel tap:
 * an input pixel, or zeros in the padding); pixel p's row for tap t is rows[p * taps + t]. A
 * plain GEMM has one tap of K floats per pixel. A tile reads one depth chunk: taps [t0, t1)
 * and, of each tap's row, the c floats from coff on. */
struct tile_src {
    const float * const * rows;
    int64_t taps, t0, t1, c;
    int64_t coff;    /* channel offset into each row (a chunk of channels; a grouped panel's groups) */
    int64_t wskip;   /* weight floats to skip after each tap: the packed rows past this chunk's c */
};

static inline v16 load_n(const float * src, int64_t n) {
    v16 v = {};
    memcpy(&v, src, n * sizeof(float));
    return v;
}

/* Micro-tiles: MV vectors (16 OC each) x NP pixels over one depth chunk. w: the chunk's first
 * packed row of the panel at output channel o0; wpanel: floats from one panel to the next. The
 * first chunk starts from zero, later ones add to y; the last applies the epilogue. */
#define TILE_LOAD(MV, NP)                                                                          \
    v16 acc[MV][NP];                                                                               \
    for (int m = 0; m < MV; ++m) {                                                                 \
        const int64_t om = o0 + m * PANEL, n = MIN(PANEL, MAX(0, oc - om));                       \
        for (int p = 0; p < NP; ++p) acc[m][p] = first || n == 0 ? (v16){} : load_n(y + p * ldy + om, n); \
    }                                                                                              \
    const float * wp[MV];                                                                          \
    for (int m = 0; m < MV; ++m) wp[m] = w + m * wpanel;

#define TILE_STORE(MV, NP)                                                                         \
    for (int m = 0; m < MV; ++m) {                                                                 \
        const int64_t om = o0 + m * PANEL;                                                         \
        if (om >= oc) break;                                                                       \
        const int64_t n = MIN(PANEL, oc - om);                                                     \
        for (int p = 0; p < NP; ++p)                                                               \
            store_n(y + p * ldy + om, last ? finish(acc[m][p], ep, om, y + p * ldy + om, n) : acc[m][p], n); \
    }

#define TILE_STEP(MV, NP, X)                                                                       \
    v16 wv[MV];                                                                                    \
    for (int m = 0; m < MV; ++m) memcpy(&wv[m], wp[m], sizeof(v16));                               \
    for (int m = 0; m < MV; ++m) wp[m] += PANEL;                                                   \
    for (int p = 0; p < NP; ++p) {                                                                 \
        const v16 xb = SPLAT(X);                                                                   \
        for (int m = 0; m < MV; ++m) acc[m][p] += wv[m] * xb;                                      \
    }

/* Reading each pixel's tap rows in place (grouped convs: every panel reads its own channels). */
#define DEFINE_TILE(MV, NP)                                                                        \
static void tile_##MV##_##NP(const float * w, int64_t wpanel, const struct tile_src * src,          \
                             float * y, int64_t ldy, int64_t o0, int64_t oc,                      \
                             const struct epilogue * ep, int first, int last) {                   \
    TILE_LOAD(MV, NP)                                                                              \
    for (int64_t t = src->t0; t < src->t1; ++t) {                                                  \
        const float * xr[NP];                                                                      \
        for (int p = 0; p < NP; ++p) xr[p] = src->rows[p * src->taps + t] + src->coff;             \
        for (int64_t ci = 0; ci < src->c; ++ci) {                                                  \
            TILE_STEP(MV, NP, xr[p][ci])                                                           \
        }                                                                                          \
        for (int m = 0; m < MV; ++m) wp[m] += src->wskip;                                          \
    }                                                                                              \
    TILE_STORE(MV, NP)                                                                             \
}

DEFINE_TILE(4, 6)
DEFINE_TILE(2, 12)
DEFINE_TILE(2, 4)
DEFINE_TILE(2, 1)
DEFINE_TILE(1, 12)
DEFINE_TILE(1, 4)
DEFINE_TILE(1, 1)

/* Conv geometry for an implicit GEMM: output pixel p of dst [OC, OW, OH, N] reads, per tap,
 * one input pixel of src [C, W, H, N]; a plain GEMM has k = 1 and no strides or pads.
 * Grouped convs (ocg > 0 output channels per group of cg inputs): each panel of 16 output
 * channels reads the cspan input channels of the groups it covers, from (16 j / ocg) * cg on. */
struct conv_geom {
    const struct ggml_tensor * src;
    int64_t kw, kh, sw, sh, pw, ph, dw, dh, ow, oh;
    int64_t ocg, cg, cspan;
};

/* Zero rows for taps in the padding (C up to GGONNX_CONV_MAX_C floats). */
static const float zero_row[GGONNX_CONV_MAX_C];

static void tap_rows(const struct conv_geom * g, int64_t p, const float ** rows) {
    const struct ggml_tensor * s = g->src;
    const int64_t ox = p % g->ow, oy = (p / g->ow) % g->oh, n = p / (g->ow * g->oh);
    for (int64_t ky = 0; ky < g->kh; ++ky) {
        const int64_t iy = oy * g->sh - g->ph + ky * g->dh;
        for (int64_t kx = 0; kx < g->kw; ++kx) {
            const int64_t ix = ox * g->sw - g->pw + kx * g->dw;
            *rows++ = (iy < 0 || iy >= s->ne[2] || ix < 0 || ix >= s->ne[1]) ? zero_row : pixel(s, ix, iy, n);
        }
    }
}

#define MAX_TAPS 64
/* Cache blocking (GotoBLAS style): the panels a depth chunk reads stay in L2 (up to PANEL_BYTES
 * of weights) while the tiles of a block of PIXEL_BLOCK pixels pass them, instead of every
 * weight streaming past each tile of 12 pixels; depths beyond KC floats run in chunks whose
 * partial sums add up in the output. Chosen by A/B runs against the unblocked kernel
 * (fcn_resnet50 b1 1.33 -> 1.19x onnxruntime, resnet18 b1 1.20 -> 1.12x; smaller chunks, or
 * 96-pixel blocks, were no better). */
#define KC 4096
#define PANEL_BYTES (512 * 1024)
#define PIXEL_BLOCK (NR * 22)
#define MAX_CHUNKS (MAX_TAPS * (GGONNX_CONV_MAX_C / KC + 1))

/* One depth chunk: taps [t0, t1), channels [c0, c1) of each tap's row. */
struct chunk {
    int64_t t0, t1, c0, c1;
};

/* The chunks of a depth of taps * cspan floats (cspan packed rows per tap), at most max_out. */
static int64_t depth_chunks(int64_t taps, int64_t cspan, struct chunk * out, int64_t max_out) {
    int64_t n = 0;
    if (cspan >= KC) {      /* each tap alone, its channels in about equal chunks */
        const int64_t parts = MIN((cspan + KC - 1) / KC, max_out / taps);
        const int64_t per = (cspan + parts - 1) / parts;
        for (int64_t t = 0; t < taps; ++t) {
            for (int64_t c0 = 0; c0 < cspan; c0 += per) {
                out[n++] = (struct chunk) { t, t + 1, c0, MIN(cspan, c0 + per) };
            }
        }
    } else {                /* whole taps, as many as fit a chunk */
        const int64_t per = MAX(1, KC / cspan);
        for (int64_t t = 0; t < taps; t += per) {
            out[n++] = (struct chunk) { t, MIN(taps, t + per), 0, cspan };
        }
    }
    return n;
}

/* Pixels [p0, p1) against panels [j0, j1) for one depth chunk, reading the tap rows of the
 * pixels (rows, from p0 on) in place. Dense panels go in pairs; grouped ones one by one, each
 * over its own groups' channels. (Packing the rows first, as BLAS does, cost more here than it
 * saved: 14% of resnet18's time went to the packing.) */
static void gemm_block(const float * wpk, int64_t k, int64_t oc, const struct conv_geom * g,
                       const float * const * rows, float * y, int64_t ldy, int64_t p0, int64_t p1,
                       int64_t j0, int64_t j1, const struct chunk * ch, int first, int last,
                       const struct epilogue * ep) {
    const int64_t taps = g->kw * g->kh, c = g->src->ne[0];
    const int64_t wchunk = (ch->t0 * g->cspan + ch->c0) * PANEL;   /* the chunk's first row in a panel */
    const int64_t wpanel = k * PANEL;
    for (int64_t p = p0; p < p1;) {
        const int64_t np = p1 - p >= 12 ? 12 : p1 - p >= 4 ? 4 : 1;
        const float * const * prow = rows + (p - p0) * taps;
        float * yp = y + p * ldy;
        for (int64_t j = j0; j < j1; j += g->ocg ? 1 : 2) {
            const int two = !g->ocg && j + 1 < j1;
            const float * w = wpk + j * wpanel + wchunk;
            const int64_t o0 = j * PANEL;
            if (!g->ocg && np == 12 && j + 3 < j1) {
                /* 64 outputs x 6 pixels: 10 loads per 24 FMAs (the 32 x 12 tile needs 14) */
                const struct tile_src lo = { prow, taps, ch->t0, ch->t1, ch->c1 - ch->c0, ch->c0,
                                             (g->cspan - (ch->c1 - ch->c0)) * PANEL };
                const struct tile_src hi = { prow + 6 * taps, taps, ch->t0, ch->t1, ch->c1 - ch->c0, ch->c0,
                                             (g->cspan - (ch->c1 - ch->c0)) * PANEL };
                tile_4_6(w, wpanel, &lo, yp, ldy, o0, oc, ep, first, last);
                tile_4_6(w, wpanel, &hi, yp + 6 * ldy, ldy, o0, oc, ep, first, last);
                j += 2;
                continue;
            }
            int64_t used = ch->c1 - ch->c0, coff = ch->c0;
            if (g->ocg) {  /* this panel's groups' channels */
                const int64_t goff = (j * PANEL / g->ocg) * g->cg;
                used = MAX(0, MIN(ch->c1, c - goff) - ch->c0);
                coff = goff + ch->c0;
            }
            const struct tile_src src = { prow, taps, ch->t0, ch->t1, used, coff, (g->cspan - used) * PANEL };
            if (np == 12) {
                (two ? tile_2_12 : tile_1_12)(w, wpanel, &src, yp, ldy, o0, oc, ep, first, last);
            } else if (np == 4) {
                (two ? tile_2_4 : tile_1_4)(w, wpanel, &src, yp, ldy, o0, oc, ep, first, last);
            } else {
                (two ? tile_2_1 : tile_1_1)(w, wpanel, &src, yp, ldy, o0, oc, ep, first, last);
            }
        }
        p += np;
    }
}

/* Pixels [p0, p1) against panels [j0, j1): pixel block by pixel block, then chunk by chunk,
 * then panel block by panel block. */
static void gemm_range(const float * wpk, int64_t k, int64_t oc, const struct conv_geom * g, float * y,
                       int64_t ldy, int64_t p0, int64_t p1, int64_t j0, int64_t j1,
                       const struct epilogue * ep) {
    const int64_t taps = g->kw * g->kh;
    struct chunk chunks[MAX_CHUNKS];
    const int64_t n_chunks = depth_chunks(taps, g->cspan, chunks, MAX_CHUNKS);
    /* tap rows of a block of pixels, computed once for all its chunks and panels; the block's
     * chunk of input (PIXEL_BLOCK x KC floats) stays in L2 while the panel blocks pass */
    const float * rows[PIXEL_BLOCK * MAX_TAPS];
    for (int64_t pb = p0; pb < p1; pb += PIXEL_BLOCK) {
        const int64_t pe = MIN(p1, pb + PIXEL_BLOCK);
        for (int64_t q = pb; q < pe; ++q) {
            tap_rows(g, q, rows + (q - pb) * taps);
        }
        for (int64_t ci = 0; ci < n_chunks; ++ci) {
            const struct chunk * ch = &chunks[ci];
            const int64_t chunk_bytes = (ch->t1 - ch->t0) * (ch->c1 - ch->c0) * PANEL * (int64_t) sizeof(float);
            const int64_t per_block = MAX(2, PANEL_BYTES / MAX(1, chunk_bytes)) & ~(int64_t) 1;
            for (int64_t jb = j0; jb < j1; jb += per_block) {
                gemm_block(wpk, k, oc, g, rows, y, ldy, pb, pe, jb, MIN(j1, jb + per_block), ch, ci == 0,
                           ci == n_chunks - 1, ep);
            }
        }
    }
}

static void gemm_run(struct ggml_tensor * dst, int ith, int nth, const int64_t * p, const struct conv_geom * g,
                     int64_t k) {
    const struct ggml_tensor * w = dst->src[1];
    const struct ggml_tensor * b = dst->src[2];
    const struct ggml_tensor * res = dst->src[3];
    struct epilogue ep = { b ? (const float *) b->data : NULL, res ? (const float *) res->data : NULL,
                           (const float *) dst->data, (int) p[0], 0.0f, 0.0f };
    ep.lo = param_float(p[1]);
    ep.hi = param_float(p[2]);
    const int64_t oc = dst->ne[0], pixels = ggml_nelements(dst) / oc;
    const int64_t panels = (oc + PANEL - 1) / PANEL;
    const int64_t ldy = dst->nb[1] / sizeof(float);
    float * yd = (float *) dst->data;
    const float * wd = (const float *) w->data;
    const int64_t tiles = (pixels + NR - 1) / NR;
    if (tiles >= 2 * nth || panels < 2 * nth) {
        /* split the pixels; the weight blocks stream past each thread's pixels */
        int64_t t0, t1;
        split(tiles, ith, nth, &t0, &t1);
        gemm_range(wd, k, oc, g, yd, ldy, t0 * NR, MIN(pixels, t1 * NR), 0, panels, &ep);
    } else {
        /* few pixels, many channels (late layers): split the panels (in pairs) */
        int64_t q0, q1;
        split((panels + 1) / 2, ith, nth, &q0, &q1);
        gemm_range(wd, k, oc, g, yd, ldy, 0, pixels, 2 * q0, MIN(panels, 2 * q1), &ep);
    }
}

void ggonnx_gemm_packed(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const struct ggml_tensor * x = dst->src[0];
    /* pixels of x [K, P] as a 1x1 conv over a [K, P, 1, 1] image */
    const struct conv_geom g = { x, 1, 1, 1, 1, 0, 0, 1, 1, x->ne[1], 1, 0, 0, x->ne[0] };
    gemm_run(dst, ith, nth, (const int64_t *) params, &g, x->ne[0]);
}

void ggonnx_conv_packed(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[0];
    const int64_t ocg = p[11], cg = p[12];
    const int64_t cspan = ocg == 0 ? x->ne[0] : ocg >= PANEL ? cg : PANEL / ocg * cg;
    const struct conv_geom g = { x, p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], dst->ne[1], dst->ne[2],
                                 ocg, cg, cspan };
    gemm_run(dst, ith, nth, p, &g, cspan * p[3] * p[4]);
}

/* ---- narrow convs (few output channels) ---------------------------------------------------
 * With one panel of 16 outputs or fewer, the outer-product tile has one weight vector per depth
 * step, so each FMA waits on a broadcast load. Here the vectors run along the depth instead:
 * 4 pixels x 4 outputs of 16-lane partial dot products (8 loads per 16 FMAs), summed across
 * their lanes at the end. */

typedef int32_t mask16 __attribute__((vector_size(64), aligned(4)));

/* The first n (< 16) floats of src, the rest zero. */
static inline v16 load_tail(const float * src, int64_t n) {
#ifdef __AVX512F__
    return (v16) _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), src);
#else
    v16 v = {};
    for (int64_t i = 0; i < n; ++i) {
        v[i] = src[i];
    }
    return v;
#endif
}

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
                xv[q] = load_tail(x[q] + full, c - full);
                wv[q] = load_tail(wr[q] + full, c - full);
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
 * 16 channels x 4 output pixels of a row at a time: each tap's weight vector loads once for
 * the 4 pixels; bias and activation in the epilogue (ggml's depthwise kernel needs an Add and a
 * Clamp pass after it). */

void ggonnx_conv_dw(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[0];
    const float * w = (const float *) dst->src[1]->data;
    const float * bias = dst->src[2] ? (const float *) dst->src[2]->data : NULL;
    const float lo = param_float(p[1]), hi = param_float(p[2]);
    const int act = (int) p[0];
    const int64_t kw = p[3], kh = p[4], sw = p[5], sh = p[6], pw = p[7], ph = p[8], dw = p[9], dh = p[10];
    const int64_t c = x->ne[0], w_in = x->ne[1], h_in = x->ne[2];
    const int64_t ow = dst->ne[1], oh = dst->ne[2];
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        for (int64_t ox0 = 0; ox0 < ow; ox0 += 4) {
            const int64_t nq = MIN(4, ow - ox0);
            for (int64_t c0 = 0; c0 < c; c0 += 16) {
                const int64_t m = MIN(16, c - c0);
                const v16 b0 = bias ? (m == 16 ? load_n(bias + c0, 16) : load_tail(bias + c0, m)) : (v16){};
                v16 acc[4] = { b0, b0, b0, b0 };
                for (int64_t ky = 0; ky < kh; ++ky) {
                    const int64_t iy = oy * sh - ph + ky * dh;
                    if (iy < 0 || iy >= h_in) {
                        continue;
                    }
                    for (int64_t kx = 0; kx < kw; ++kx) {
                        const float * wt = w + (ky * kw + kx) * c + c0;
                        const v16 wv = m == 16 ? load_n(wt, 16) : load_tail(wt, m);
                        for (int64_t q = 0; q < nq; ++q) {
                            const int64_t ix = (ox0 + q) * sw - pw + kx * dw;
                            if (ix < 0 || ix >= w_in) {
                                continue;
                            }
                            const float * in = pixel(x, ix, iy, n) + c0;
                            acc[q] += wv * (m == 16 ? load_n(in, 16) : load_tail(in, m));
                        }
                    }
                }
                for (int64_t q = 0; q < nq; ++q) {
                    store_n(at4(dst, c0, ox0 + q, oy, n), activate(acc[q], act, lo, hi), m);
                }
            }
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------------
 * Along ne0 of contiguous rows: max, exp (exp16) and sum, scale; each row stays in L1 (ggml's
 * soft_max spent 13% of whisper's encoder). */

/* exp, exactly 0 where exp16 would clamp (masked attention scores of -inf or -1e9) */
static inline v16 exp_or_zero(v16 d) {
    return select16(d < SPLAT(-87.3f), SPLAT(0.0f), exp16(d));
}

void ggonnx_softmax(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * src = dst->src[0];
    const int64_t n = src->ne[0], rows = ggml_nrows(src), full = n & ~(int64_t) 15;
    const v16 lanes = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    const vi16 tail = (vi16) (lanes < SPLAT((float) (n - full)));   /* the last block's valid lanes */
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const float * x = (const float *) src->data + r * n;
        float * y = (float *) dst->data + r * n;
        v16 mv = SPLAT(-INFINITY);
        for (int64_t i = 0; i < full; i += 16) {
            const v16 v = load_n(x + i, 16);
            mv = select16(v > mv, v, mv);
        }
        if (full < n) {
            const v16 v = select16(tail, load_tail(x + full, n - full), SPLAT(-INFINITY));
            mv = select16(v > mv, v, mv);
        }
        float m = mv[0];
        for (int i = 1; i < 16; ++i) {
            m = mv[i] > m ? mv[i] : m;
        }
        v16 sv = {};
        for (int64_t i = 0; i < full; i += 16) {
            const v16 e = exp_or_zero(load_n(x + i, 16) - SPLAT(m));
            store_n(y + i, e, 16);
            sv += e;
        }
        if (full < n) {
            const v16 e = select16(tail, exp_or_zero(load_tail(x + full, n - full) - SPLAT(m)), SPLAT(0.0f));
            store_n(y + full, e, n - full);
            sv += e;
        }
        float sum = 0.0f;
        for (int i = 0; i < 16; ++i) {
            sum += sv[i];
        }
        const v16 inv = SPLAT(1.0f / sum);
        for (int64_t i = 0; i < n; i += 16) {
            const int64_t k = MIN(16, n - i);
            store_n(y + i, (k == 16 ? load_n(y + i, 16) : load_tail(y + i, k)) * inv, k);
        }
    }
}
