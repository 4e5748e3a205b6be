/* Channels-last kernels run as ggml custom ops; see kernels.h for layouts and parameters.
 * Inner loops run over contiguous channels, which the compiler vectorizes. */
#include "kernels.h"

/* acc += w * x must become one FMA: ISO C mode (-std=c11) turns GCC's contraction off. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "kernels_util.h"
#include "kernels_simd.h"

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

int64_t ggonnx_stream_min_bytes(void) {
    static int64_t bytes = 0;   /* the same value from every thread: a benign race */
    if (bytes == 0) {
        int64_t b = (int64_t) 8 << 20;
#if (defined(__x86_64__) || defined(__i386__)) && defined(_SC_LEVEL3_CACHE_SIZE)
        unsigned a, ebx, ecx, edx;
        if (__get_cpuid(0, &a, &ebx, &ecx, &edx) && ebx == 0x756e6547u) {   /* "GenuineIntel" */
            const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
            b = MAX(b, (int64_t) (l3 > 0 ? l3 / 4 : 0));
        }
#endif
        const char * forced = getenv("GGONNX_STREAM_MIN_MB");   /* tests: a fixed threshold */
        if (forced != NULL && atoll(forced) > 0) {
            b = atoll(forced) << 20;
        }
        bytes = b;
    }
    return bytes;
}

/* An average pool's 1 / divisor at output (ox, oy) of ``taps`` in-bounds taps (params as
 * ggonnx_pool_nhwc's): mode 2 counts the window clipped to the input plus its explicit pads. */
static inline float pool_scale(const int64_t * p, int64_t taps, int64_t ox, int64_t oy, int64_t w, int64_t h) {
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], ew = p[9], eh = p[10];
    int64_t count = taps;
    if (p[8] == 2) {
        const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
        const int64_t ny = MIN(y0 + kh, h + eh) - MAX(y0, -ph);
        const int64_t nx = MIN(x0 + kw, w + ew) - MAX(x0, -pw);
        count = MAX(ny, 0) * MAX(nx, 0);
    }
    return count > 0 ? 1.0f / (float) count : 0.0f;
}

/* max(acc, x) where a NaN on either side stays: a window holding one pools to NaN, whatever
 * its place in the window */
static inline float max_nan_wins(float acc, float x) {
    return acc > x || acc != acc ? acc : x;
}

#ifndef GGONNX_AVX2
/* One output pixel of a channels-last pool (params as ggonnx_pool_nhwc's): its window's input
 * pixels gathered first, then each 16 channels reduced in a register over them and stored once
 * (the loop below read and wrote the output at every tap: MaxPool took 7.6% of squeezenet b8).
 * The same comparisons (a NaN in the window wins, as in ReduceMax) and sums in the same order as
 * that loop. */
static void pool_pixel(const struct ggml_tensor * src, float * o, int64_t ox, int64_t oy, int64_t n,
                       const int64_t * p) {
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const int64_t mode = p[8];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2];
    const float * in[MAX_TAPS];
    int64_t taps = 0;
    for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t iy = oy * sh - ph + ky * dh;
        for (int64_t kx = 0; kx < kw && iy >= 0 && iy < h; ++kx) {
            const int64_t ix = ox * sw - pw + kx * dw;
            if (ix >= 0 && ix < w) {
                in[taps++] = pixel(src, ix, iy, n);
            }
        }
    }
    const v16 scale = SPLAT(pool_scale(p, taps, ox, oy, w, h));
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
        const int64_t m = MIN(16, c - c0);
        v16 acc = mode == 0 ? SPLAT(-FLT_MAX) : SPLAT(0.0f);
        for (int64_t t = 0; t < taps; ++t) {
            const v16 x = load_n(in[t] + c0, m);
            acc = mode == 0 ? select16(lt16(x, acc) | (acc != acc), acc, x) : acc + x;
        }
        store_n(o + c0, mode == 0 ? acc : acc * scale, m);
    }
}
#endif

void ggonnx_pool_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const int64_t mode = p[8];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2];
    const int64_t ow = dst->ne[1], oh = dst->ne[2];
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
            float * o = (float *) ((char *) dst->data + ox * dst->nb[1] + oy * dst->nb[2] + n * dst->nb[3]);
#ifndef GGONNX_AVX2
            if (kh * kw <= MAX_TAPS) {
                pool_pixel(src, o, ox, oy, n, p);
                continue;
            }
#endif
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
                            o[ci] = max_nan_wins(o[ci], in[ci]);
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
            const float scale = pool_scale(p, taps, ox, oy, w, h);
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
                        o[ci] = max_nan_wins(o[ci], in[ci]);
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

/* Rows of ne0 channels (a typed or BLAS matmul's output, channels-last) finished as a packed
 * GEMM's epilogue finishes its own: + bias (src[1], padded to whole panels) + residual (src[2],
 * the output's layout), then the activation, in one pass instead of one per op. */
static void activation_rows(struct ggml_tensor * dst, int ith, int nth, const struct epilogue * ep) {
    const int64_t c = dst->ne[0], rows = ggml_nelements(dst) / c;
    const float * x = (const float *) dst->src[0]->data;
    float * y = (float *) dst->data;
    int64_t r0, r1;
    split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
#ifdef GGONNX_AVX2
        for (int64_t o = 0; o < c; o += 8) {
            const int64_t m = MIN(8, c - o);
            float * yo = y + r * c + o;
            store8_n(yo, finish8(load8_n(x + r * c + o, m), ep, o, yo, m), m);
        }
#else
        for (int64_t o = 0; o < c; o += 16) {
            const int64_t m = MIN(16, c - o);
            float * yo = y + r * c + o;
            store_n(yo, finish(load_n(x + r * c + o, m), ep, o, yo, m), m);
        }
#endif
    }
}

void ggonnx_activation(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const float lo = param_float(p[1]), hi = param_float(p[2]);
    const int act = (int) p[0];
    const float * x = (const float *) dst->src[0]->data;
    float * y = (float *) dst->data;
    if (dst->src[1] != NULL || dst->src[2] != NULL) {
        const struct epilogue ep = {
            .bias = dst->src[1] ? (const float *) dst->src[1]->data : NULL,
            .residual = dst->src[2] ? (const float *) dst->src[2]->data : NULL,
            .y = y, .act = act, .lo = lo, .hi = hi, .stream = 0,
        };
        activation_rows(dst, ith, nth, &ep);
        return;
    }
    const int64_t n = ggml_nelements(dst), blocks = (n + 15) / 16;
    int64_t b0, b1;
    split(blocks, ith, nth, &b0, &b1);
#ifdef GGONNX_AVX2
    for (int64_t i = b0 * 16; i < MIN(n, b1 * 16); i += 8) {   /* 8 lanes in registers */
        const int64_t m = MIN(8, n - i);
        store8_n(y + i, activate8(load8_n(x + i, m), act, lo, hi), m);
    }
#else
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t i = b * 16, m = MIN(16, n - i);
        v16 v = {};
        memcpy(&v, x + i, m * sizeof(float));
        store_n(y + i, activate(v, act, lo, hi), m);
    }
#endif
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
        for (int p = 0; p < NP; ++p) {                                                             \
            float * yo = y + p * ldy + om;                                                         \
            if (!last) {                                                                           \
                store_n(yo, acc[m][p], n);                                                         \
            } else if (ep->stream) {   /* finished, of an output larger than the caches */         \
                store_n_streamed(yo, finish(acc[m][p], ep, om, yo, n), n);                         \
            } else {                                                                               \
                store_n(yo, finish(acc[m][p], ep, om, yo, n), n);                                  \
            }                                                                                      \
        }                                                                                          \
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
        int padded = 1;                                                                            \
        for (int p = 0; p < NP; ++p) {                                                             \
            xr[p] = src->rows[p * src->taps + t] + src->coff;                                      \
            padded &= src->rows[p * src->taps + t] == ggonnx_zero_row;                             \
        }                                                                                          \
        if (padded) {   /* the tap reads only padding for every pixel of the tile: no work */     \
            for (int m = 0; m < MV; ++m) wp[m] += src->c * PANEL + src->wskip;                     \
            continue;                                                                              \
        }                                                                                          \
        for (int64_t ci = 0; ci < src->c; ++ci) {                                                  \
            TILE_STEP(MV, NP, xr[p][ci])                                                           \
        }                                                                                          \
        for (int m = 0; m < MV; ++m) wp[m] += src->wskip;                                          \
    }                                                                                              \
    TILE_STORE(MV, NP)                                                                             \
}

#ifndef GGONNX_AVX2
DEFINE_TILE(4, 6)
DEFINE_TILE(2, 12)
DEFINE_TILE(2, 4)
DEFINE_TILE(2, 1)
DEFINE_TILE(1, 12)
DEFINE_TILE(1, 4)
DEFINE_TILE(1, 1)
#endif

#ifdef GGONNX_AVX2
/* AVX2 tiles: one panel (16 outputs, two 256-bit halves) by NP pixels in intrinsics. GCC keeps
 * the 64-byte vectors of the generic tiles on the stack here, and the AVX-512 shapes need 48
 * registers of 16 (matmul 128x768x3072 ran at 6 GFLOP/s on an AVX2 Zen 2). */
/* per pixel p of a tile: accumulators l<p>, h<p> (outputs 0-7, 8-15) and the tap row x<p>,
 * kept in registers only in a function that holds nothing else (beside the v16 epilogue GCC
 * spilled them on every step) */
#define AVX2_PIX6(F) F(0) F(1) F(2) F(3) F(4) F(5)
#define AVX2_PIX4(F) F(0) F(1) F(2) F(3)
#define AVX2_PIX2(F) F(0) F(1)
#define AVX2_PIX1(F) F(0)
#define AVX2_LOAD(p) __m256 l##p = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + 16 * p);              \
    __m256 h##p = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + 16 * p + 8);                     \
    const float * x##p;
#define AVX2_ROW(p)                                                                                \
    x##p = src->rows[p * src->taps + t] + src->coff;                                               \
    padded &= src->rows[p * src->taps + t] == ggonnx_zero_row;
#define AVX2_FMA(p) {                                                                              \
        const __m256 xb = _mm256_broadcast_ss(x##p + ci);                                          \
        l##p = _mm256_fmadd_ps(w0, xb, l##p);                                                      \
        h##p = _mm256_fmadd_ps(w1, xb, h##p);                                                      \
    }
#define AVX2_SAVE(p) _mm256_storeu_ps(acc + 16 * p, l##p); _mm256_storeu_ps(acc + 16 * p + 8, h##p);
#define AVX2_DONE(p) {                                                                             \
        __m256 a = _mm256_add_ps(l##p, b_lo), b = _mm256_add_ps(h##p, b_hi);                        \
        if (fin->res) {                                                                            \
            a = _mm256_add_ps(a, _mm256_loadu_ps(fin->res + p * fin->ldy));                         \
            b = _mm256_add_ps(b, _mm256_loadu_ps(fin->res + p * fin->ldy + 8));                     \
        }                                                                                          \
        _mm256_storeu_ps(fin->y + p * fin->ldy, activate8(a, fin->act, fin->lo, fin->hi));         \
        _mm256_storeu_ps(fin->y + p * fin->ldy + 8, activate8(b, fin->act, fin->lo, fin->hi));     \
    }
/* A last chunk's full panel with no activation, a clamp, HardSwish or SiLU: bias, residual and
 * activation applied to the registers and the outputs stored from them (not through acc and back). */
struct tile_fin {
    float * y;              /* the tile's first output (pixel 0, channel o0) */
    int64_t ldy;
    const float * bias;     /* the panel's 16 biases (zeros when the op has none) */
    const float * res;      /* the residual at y's place, or NULL */
    int act;                /* one of those activate8 inlines (ACT8_INLINE) */
    float lo, hi;
};
static const float zero_bias[PANEL];

#define DEFINE_TILE_AVX2(NP)                                                                        \
static void tile8_sum_##NP(const float * wp, const struct tile_src * src, float * acc, int first,  \
                           const struct tile_fin * fin) {                                          \
    const int64_t c = src->c, skip = src->wskip;                                                   \
    AVX2_PIX##NP(AVX2_LOAD)                                                                        \
    for (int64_t t = src->t0; t < src->t1; ++t) {                                                  \
        int padded = 1;                                                                            \
        AVX2_PIX##NP(AVX2_ROW)                                                                     \
        if (padded) {                                                                              \
            wp += c * PANEL + skip;                                                                \
            continue;                                                                              \
        }                                                                                          \
        for (int64_t ci = 0; ci < c; ++ci, wp += PANEL) {                                          \
            const __m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8);                   \
            AVX2_PIX##NP(AVX2_FMA)                                                                 \
        }                                                                                          \
        wp += skip;                                                                                \
    }                                                                                              \
    if (fin) {                                                                                     \
        const __m256 b_lo = _mm256_loadu_ps(fin->bias), b_hi = _mm256_loadu_ps(fin->bias + 8);     \
        AVX2_PIX##NP(AVX2_DONE)                                                                    \
        return;                                                                                    \
    }                                                                                              \
    AVX2_PIX##NP(AVX2_SAVE)                                                                        \
}                                                                                                  \
static void tile8_##NP(const float * w, const struct tile_src * src, float * y, int64_t ldy,      \
                       int64_t o0, int64_t oc, const struct epilogue * ep, int first, int last) {  \
    const int64_t n = MIN(PANEL, oc - o0), n_lo = MIN(8, n), n_hi = n - n_lo;                      \
    float acc[NP * 16];                                                                            \
    for (int p = 0; p < NP && !first; ++p) {   /* a first chunk starts from zero registers */     \
        const float * yi = y + p * ldy + o0;                                                       \
        _mm256_storeu_ps(acc + 16 * p, load8_n(yi, n_lo));                                         \
        _mm256_storeu_ps(acc + 16 * p + 8, !n_hi ? _mm256_setzero_ps() : load8_n(yi + 8, n_hi));   \
    }                                                                                              \
    if (last && n == 16 && !ep->stream && ACT8_INLINE(ep->act)) {                                  \
        const struct tile_fin fin = { y + o0, ldy, ep->bias ? ep->bias + o0 : zero_bias,            \
                                      ep->residual ? ep->residual + (y + o0 - ep->y) : NULL,        \
                                      ep->act, ep->lo, ep->hi };                                   \
        tile8_sum_##NP(w, src, acc, first, &fin);                                                  \
        return;                                                                                    \
    }                                                                                              \
    tile8_sum_##NP(w, src, acc, first, NULL);                                                      \
    for (int p = 0; p < NP; ++p) {                                                                 \
        float * yo = y + p * ldy + o0;                                                             \
        __m256 lo = _mm256_loadu_ps(acc + 16 * p), hi = _mm256_loadu_ps(acc + 16 * p + 8);         \
        if (last) {                                                                                \
            lo = finish8(lo, ep, o0, yo, n_lo);                                                    \
            if (n_hi) hi = finish8(hi, ep, o0 + 8, yo + 8, n_hi);                                  \
        }                                                                                          \
        if (n == 16 && last && ep->stream && ((uintptr_t) yo & 63) == 0) {                         \
            _mm256_stream_ps(yo, lo);                                                              \
            _mm256_stream_ps(yo + 8, hi);                                                          \
        } else {                                                                                   \
            store8_n(yo, lo, n_lo);                                                                \
            if (n_hi) store8_n(yo + 8, hi, n_hi);                                                  \
        }                                                                                          \
    }                                                                                              \
}
DEFINE_TILE_AVX2(6)
DEFINE_TILE_AVX2(4)
DEFINE_TILE_AVX2(2)
DEFINE_TILE_AVX2(1)
#endif

/* Zero rows for taps in the padding (kernels_util.h). */
const float ggonnx_zero_row[GGONNX_CONV_MAX_C];

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

/* The input of panel j's tiles for depth chunk ch, from the tap rows prow of their first pixel:
 * a grouped panel reads only its groups' channels. */
static inline struct tile_src panel_src(const struct conv_geom * g, const struct chunk * ch,
                                        const float * const * prow, int64_t j) {
    const int64_t taps = g->kw * g->kh, c = g->src->ne[0];
    int64_t used = ch->c1 - ch->c0, coff = ch->c0;
    if (g->ocg) {
        const int64_t goff = (j * PANEL / g->ocg) * g->cg;
        used = MAX(0, MIN(ch->c1, c - goff) - ch->c0);
        coff = goff + ch->c0;
    }
    return (struct tile_src) { prow, taps, ch->t0, ch->t1, used, coff, (g->cspan - used) * PANEL };
}

/* Pixels [p0, p1) against panels [j0, j1) for one depth chunk, reading the tap rows of the
 * pixels (rows, from p0 on) in place. Dense panels go in pairs; grouped ones one by one, each
 * over its own groups' channels. (Packing the rows first, as BLAS does, cost more here than it
 * saved: 14% of resnet18's time went to the packing.) */
static void gemm_block(const float * wpk, int64_t k, int64_t oc, const struct conv_geom * g,
                       const float * const * rows, float * y, int64_t ldy, int64_t p0, int64_t p1,
                       int64_t j0, int64_t j1, const struct chunk * ch, int first, int last,
                       const struct epilogue * ep) {
    const int64_t taps = g->kw * g->kh;
    const int64_t wchunk = (ch->t0 * g->cspan + ch->c0) * PANEL;   /* the chunk's first row in a panel */
    const int64_t wpanel = k * PANEL;
#ifdef GGONNX_AVX2
    /* one panel by 6 pixels: 12 accumulators, two weight halves and a broadcast in the 16
     * 256-bit registers */
    for (int64_t p = p0; p < p1;) {
        const int64_t np = p1 - p >= 6 ? 6 : p1 - p >= 4 ? 4 : p1 - p >= 2 ? 2 : 1;
        const float * const * prow = rows + (p - p0) * taps;
        for (int64_t j = j0; j < j1; ++j) {
            const struct tile_src src = panel_src(g, ch, prow, j);
            (np == 6 ? tile8_6 : np == 4 ? tile8_4 : np == 2 ? tile8_2 : tile8_1)(
                wpk + j * wpanel + wchunk, &src, y + p * ldy, ldy, j * PANEL, oc, ep, first, last);
        }
        p += np;
    }
#else
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
            const struct tile_src src = panel_src(g, ch, prow, j);
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
#endif
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
        tap_rows_run(g, pb, pe - pb, rows);
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

/* The first of a kernel's own sources: 1 when it computes in place into a channel slice. */
static inline int first_src(const int64_t * p) {
    return p[GGONNX_P_INTO] ? 1 : 0;
}

/* Threads split a product by pixels, in whole micro-tiles, or by panels, in the groups the tiles
 * take: 6 pixels and one panel on AVX2, 12 pixels and panel pairs otherwise. */
#ifdef GGONNX_AVX2
#define SPLIT_PIXELS 6
#define SPLIT_PANELS 1
#else
#define SPLIT_PIXELS NR
#define SPLIT_PANELS 2
#endif

/* Whether to split by pixels: unless the busiest thread's share of the pixels is over 1/32 above
 * its share of the panels (a 7x7 map is 9 tiles of 6, 5 for one thread and 4 for the other, while
 * 32 panels split evenly: resnet50's last stage ran at 121 GFLOP/s beside 160 for the others).
 * Near ties go to pixels, where each thread's weights stream past its own pixels. */
static int pixels_split(int64_t pixels, int64_t panels, int nth) {
    const int64_t pu = (pixels + SPLIT_PIXELS - 1) / SPLIT_PIXELS, ju = (panels + SPLIT_PANELS - 1) / SPLIT_PANELS;
    const int64_t busy_p = MIN(pixels, (pu + nth - 1) / nth * SPLIT_PIXELS);
    const int64_t busy_j = MIN(panels, (ju + nth - 1) / nth * SPLIT_PANELS);
    /* busy_p / pixels <= (busy_j / panels) * 33 / 32 */
    return busy_p * panels * 32 <= busy_j * pixels * 33;
}

static void gemm_run(struct ggml_tensor * dst, int ith, int nth, const int64_t * p, const struct conv_geom * g,
                     int64_t k) {
    const int s0 = first_src(p);
    const struct ggml_tensor * w = dst->src[s0 + 1];
    const struct ggml_tensor * b = dst->src[s0 + 2];
    const struct ggml_tensor * res = s0 ? NULL : dst->src[3];
    struct epilogue ep = { b ? (const float *) b->data : NULL, res ? (const float *) res->data : NULL,
                           (const float *) dst->data, (int) p[0], 0.0f, 0.0f };
    ep.lo = param_float(p[1]);
    ep.hi = param_float(p[2]);
#if defined(GGONNX_AVX2) || defined(__AVX512F__)
    /* an output larger than the caches is read back from memory by the next op anyway:
     * non-temporal stores spare the read for ownership of every line (mobilenet_v2 b8's
     * 16 -> 96 1x1 conv, 38 MB out: 11.6 -> 9.2 ms) */
    ep.stream = (int64_t) ggml_nbytes(dst) >= ggonnx_stream_min_bytes();
#endif
    /* a channel slice writes oc of dst's ne0 channels, from channel P_COFF on */
    const int64_t oc = p[GGONNX_P_OC] ? p[GGONNX_P_OC] : dst->ne[0], pixels = ggml_nelements(dst) / dst->ne[0];
    const int64_t panels = (oc + PANEL - 1) / PANEL;
    const int64_t ldy = dst->nb[1] / sizeof(float);
    float * yd = (float *) dst->data + p[GGONNX_P_COFF];
    const float * wd = (const float *) w->data;
    if (pixels_split(pixels, panels, nth)) {
        /* the weight blocks stream past each thread's pixels */
        int64_t t0, t1;
        split((pixels + SPLIT_PIXELS - 1) / SPLIT_PIXELS, ith, nth, &t0, &t1);
        gemm_range(wd, k, oc, g, yd, ldy, t0 * SPLIT_PIXELS, MIN(pixels, t1 * SPLIT_PIXELS), 0, panels, &ep);
    } else {
        /* few pixels, many channels (late layers): every thread takes its panels over all pixels */
        int64_t q0, q1;
        split((panels + SPLIT_PANELS - 1) / SPLIT_PANELS, ith, nth, &q0, &q1);
        gemm_range(wd, k, oc, g, yd, ldy, 0, pixels, SPLIT_PANELS * q0, MIN(panels, SPLIT_PANELS * q1), &ep);
    }
#if defined(GGONNX_AVX2) || defined(__AVX512F__)
    if (ep.stream) {
        _mm_sfence();   /* the streamed lines visible before the node's barrier */
    }
#endif
}

void ggonnx_gemm_packed(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[first_src(p)];
    if (x->ne[2] == 1) {
        /* pixels of x [K, P] as a 1x1 conv over a [K, P, 1, 1] image */
        const struct conv_geom g = { x, 1, 1, 1, 1, 0, 0, 1, 1, x->ne[1], 1, 0, 0, x->ne[0] };
        gemm_run(dst, ith, nth, p, &g, x->ne[0]);
        return;
    }
    /* a batch of products (attention heads): x [K, P, B], the weight [packed, B] (or one for all
     * B), dst [OC, P, B]; every thread takes its share of each product, no barrier between */
    const struct ggml_tensor * w = dst->src[first_src(p) + 1];
    for (int64_t b = 0; b < x->ne[2]; ++b) {
        struct ggml_tensor xb = *x, wb = *w, yb = *dst;
        xb.data = (char *) x->data + b * x->nb[2];
        xb.ne[2] = 1;
        wb.data = (char *) w->data + (w->ne[1] == 1 ? 0 : b * w->nb[1]);
        yb.data = (char *) dst->data + b * dst->nb[2];
        yb.ne[2] = 1;
        yb.src[first_src(p) + 1] = &wb;
        struct ggml_tensor rb;
        if (!first_src(p) && dst->src[3]) {   /* a residual laid out as dst: this product's part */
            rb = *dst->src[3];
            rb.data = (char *) rb.data + b * dst->nb[2];
            yb.src[3] = &rb;
        }
        const struct conv_geom g = { &xb, 1, 1, 1, 1, 0, 0, 1, 1, x->ne[1], 1, 0, 0, x->ne[0] };
        gemm_run(&yb, ith, nth, p, &g, x->ne[0]);
    }
}

/* pack_panels from a transposed activation (attention's K^T: each output's depth contiguous,
 * outputs nb[0] apart): each panel gathered from its PANEL source rows, with no copy of the
 * whole tensor into the plain layout first */
static void pack_panels_strided(struct ggml_tensor * dst, const struct ggml_tensor * s, int ith, int nth) {
    const int64_t n = s->ne[0], k = s->ne[1], panels = (n + PANEL - 1) / PANEL;
    int64_t r0, r1;
    split(panels * s->ne[2], ith, nth, &r0, &r1);   /* (batch, panel) */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t j = r % panels, b = r / panels, m = MIN(PANEL, n - j * PANEL);
        float * out = (float *) ((char *) dst->data + b * dst->nb[1]) + j * k * PANEL;
        for (int64_t i = 0; i < PANEL; ++i) {
            const char * row = (const char *) s->data + (j * PANEL + i) * s->nb[0] + b * s->nb[2];
            for (int64_t kk = 0; kk < k; ++kk) {
                out[kk * PANEL + i] = i < m ? *(const float *) (row + kk * s->nb[1]) : 0.0f;
            }
        }
    }
}

void ggonnx_pack_panels(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * s = dst->src[0];
    if (s->nb[0] != sizeof(float)) {
        pack_panels_strided(dst, s, ith, nth);
        return;
    }
    const int64_t n = s->ne[0], k = s->ne[1], panels = (n + PANEL - 1) / PANEL;
    int64_t r0, r1;
    split(panels * k * s->ne[2], ith, nth, &r0, &r1);   /* rows: (batch, panel, depth) */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t kk = r % k, j = (r / k) % panels, b = r / (k * panels);
        const float * in = (const float *) ((const char *) s->data + kk * s->nb[1] + b * s->nb[2]) + j * PANEL;
        float * out = (float *) ((char *) dst->data + b * dst->nb[1]) + (j * k + kk) * PANEL;
        const int64_t m = MIN(PANEL, n - j * PANEL);
        memcpy(out, in, m * sizeof(float));
        memset(out + m, 0, (PANEL - m) * sizeof(float));
    }
}

void ggonnx_conv_packed(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const struct ggml_tensor * x = dst->src[first_src(p)];
    const int64_t ocg = p[11], cg = p[12];
    const int64_t cspan = ocg == 0 ? x->ne[0] : ocg >= PANEL ? cg : PANEL / ocg * cg;
    const struct conv_geom g = { x, p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], dst->ne[1], dst->ne[2],
                                 ocg, cg, cspan };
    gemm_run(dst, ith, nth, p, &g, cspan * p[3] * p[4]);
}

