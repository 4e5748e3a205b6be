/* Helpers shared by the custom-op kernels (kernels.c, kernels_spatial.c). */
#pragma once
#include <stdint.h>
#include <string.h>
#include "ggml.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* [start, end) of n items for thread ith of nth */
static inline void split(int64_t n, int ith, int nth, int64_t * start, int64_t * end) {
    const int64_t per = (n + nth - 1) / nth;
    *start = MIN(n, per * ith);
    *end = MIN(n, *start + per);
}

/* The channel vector of pixel (x, y) of image n in a channels-last tensor [C, W, H, N]. */
static inline const float * pixel(const struct ggml_tensor * t, int64_t x, int64_t y, int64_t n) {
    return (const float *) ((const char *) t->data + x * t->nb[1] + y * t->nb[2] + n * t->nb[3]);
}

/* Element (i0, i1, i2, i3) of a float tensor, through its strides. */
static inline float * at4(const struct ggml_tensor * t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return (float *) ((char *) t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3]);
}

/* The (i1, i2, i3) of row r of t, rows counted along ne1, then ne2, then ne3. */
static inline void row_coords(const struct ggml_tensor * t, int64_t r, int64_t * i1, int64_t * i2, int64_t * i3) {
    *i1 = r % t->ne[1];
    *i2 = (r / t->ne[1]) % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

/* A float32 parameter stored as its bits in an int64 instruction parameter. */
static inline float param_float(int64_t bits) {
    const uint32_t u = (uint32_t) bits;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Conv geometry for an implicit GEMM: output pixel p of dst [OC, OW, OH, N] reads, per tap,
 * one input pixel of src [C, W, H, N]; a plain GEMM has k = 1 and no strides or pads.
 * Grouped convs (ocg > 0 output channels per group of cg inputs): each panel of 16 output
 * channels reads the cspan input channels of the groups it covers, from (16 j / ocg) * cg on. */
struct conv_geom {
    const struct ggml_tensor * src;
    int64_t kw, kh, sw, sh, pw, ph, dw, dh, ow, oh;
    int64_t ocg, cg, cspan;
};

/* Outputs at least this large leave the caches before the next op reads them: the GEMM tiles and
 * the depthwise rows store them non-temporally where they write whole lines. 8 MB (2-core VMs: a
 * Zen 2 with 16 MB of L3, which its sysconf reports as 256 MB; a Zen 4 with 32 MB), or a quarter
 * of the L3 that an Intel CPU's CPUID leaf 4 reports (a Xeon VM with 480 MB of L3: streaming
 * mobilenet_v2 b8's 25-38 MB tensors to memory cost 11%); GGONNX_STREAM_MIN_MB overrides it. */
int64_t ggonnx_stream_min_bytes(void);

#define MAX_TAPS 64   /* kernel taps (kh * kw) the conv kernels take at most */

/* Zero rows for taps in the padding (C up to GGONNX_CONV_MAX_C floats; kernels.c). */
extern const float ggonnx_zero_row[];

/* The tap rows of output pixel (ox, oy) of image n. */
static inline void tap_rows_at(const struct conv_geom * g, int64_t ox, int64_t oy, int64_t n, const float ** rows) {
    const struct ggml_tensor * s = g->src;
    for (int64_t ky = 0; ky < g->kh; ++ky) {
        const int64_t iy = oy * g->sh - g->ph + ky * g->dh;
        for (int64_t kx = 0; kx < g->kw; ++kx) {
            const int64_t ix = ox * g->sw - g->pw + kx * g->dw;
            *rows++ = (iy < 0 || iy >= s->ne[2] || ix < 0 || ix >= s->ne[1]) ? ggonnx_zero_row : pixel(s, ix, iy, n);
        }
    }
}

static void tap_rows(const struct conv_geom * g, int64_t p, const float ** rows) {
    tap_rows_at(g, p % g->ow, (p / g->ow) % g->oh, p / (g->ow * g->oh), rows);
}

/* The tap rows of count consecutive output pixels from p on: the pixel coordinates step along
 * instead of three divisions a pixel (which cost more than the GEMM work of a 3-channel conv). */
static void tap_rows_run(const struct conv_geom * g, int64_t p, int64_t count, const float ** rows) {
    const int64_t taps = g->kw * g->kh;
    const struct ggml_tensor * s = g->src;
    if (taps == 1 && g->sw == 1 && g->sh == 1 && g->pw == 0 && g->ph == 0 && s->nb[2] == s->nb[1] * s->ne[1] &&
        s->nb[3] == s->nb[2] * s->ne[2]) {
        /* a plain GEMM or a 1x1 conv: pixel p's row is p rows on (the general walk cost a 16-deep
         * 1x1 conv 10% of its time) */
        const char * base = (const char *) s->data + p * s->nb[1];
        for (int64_t i = 0; i < count; ++i) {
            rows[i] = (const float *) (base + i * s->nb[1]);
        }
        return;
    }
    int64_t ox = p % g->ow, oy = (p / g->ow) % g->oh, n = p / (g->ow * g->oh);
    for (int64_t i = 0; i < count; ++i, rows += taps) {
        tap_rows_at(g, ox, oy, n, rows);
        if (++ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) {
                oy = 0;
                ++n;
            }
        }
    }
}
