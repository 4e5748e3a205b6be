/* Resampling kernels run as ggml custom ops: Resize, the col2im half of ConvTranspose, Pad.
 * ggml's own upscale maps coordinates one way (scale = out / in) and pads with zeros or
 * circularly; ONNX has six coordinate transforms, four nearest roundings, cubic weights and
 * reflect / edge pads. See kernels.h for layouts and parameters. */
#include "kernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <stdlib.h>
#include <string.h>

#include "kernels_util.h"

/* One output coordinate's row of a resize table: T source indices (as floats), T weights. */
static inline const float * taps_of(const float * table, int64_t taps, int64_t j) {
    return table + j * 2 * taps;
}

static void resize_nhwc(struct ggml_tensor * dst, int ith, int nth, const float * table, int64_t taps) {
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = dst->ne[0], ow = dst->ne[1], oh = dst->ne[2];
    const float * ytable = table + ow * 2 * taps;
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        const float * ry = taps_of(ytable, taps, oy);
        for (int64_t ox = 0; ox < ow; ++ox) {
            const float * rx = taps_of(table, taps, ox);
            float * o = at4(dst, 0, ox, oy, n);
            if (taps == 1) {
                memcpy(o, pixel(src, (int64_t) rx[0], (int64_t) ry[0], n), c * sizeof(float));
                continue;
            }
            if (taps == 2) {   /* linear: the four taps in one pass over the channels */
                const float w00 = ry[2] * rx[2], w01 = ry[2] * rx[3], w10 = ry[3] * rx[2], w11 = ry[3] * rx[3];
                const float * i00 = pixel(src, (int64_t) rx[0], (int64_t) ry[0], n);
                const float * i01 = pixel(src, (int64_t) rx[1], (int64_t) ry[0], n);
                const float * i10 = pixel(src, (int64_t) rx[0], (int64_t) ry[1], n);
                const float * i11 = pixel(src, (int64_t) rx[1], (int64_t) ry[1], n);
                for (int64_t ci = 0; ci < c; ++ci) {
                    o[ci] = w00 * i00[ci] + w01 * i01[ci] + w10 * i10[ci] + w11 * i11[ci];
                }
                continue;
            }
            memset(o, 0, c * sizeof(float));
            for (int64_t a = 0; a < taps; ++a) {
                for (int64_t b = 0; b < taps; ++b) {
                    const float w = ry[taps + a] * rx[taps + b];
                    const float * in = pixel(src, (int64_t) rx[b], (int64_t) ry[a], n);
                    for (int64_t ci = 0; ci < c; ++ci) {
                        o[ci] += w * in[ci];
                    }
                }
            }
        }
    }
}

static void resize_plain(struct ggml_tensor * dst, int ith, int nth, const float * table, int64_t taps) {
    const struct ggml_tensor * src = dst->src[0];
    const int64_t ow = dst->ne[0], oh = dst->ne[1], c = dst->ne[2], w = src->ne[0];
    const float * ytable = table + ow * 2 * taps;
    int64_t r0, r1;
    split(oh * c * dst->ne[3], ith, nth, &r0, &r1);
    /* a source row blended over the y taps, then sampled along x */
    float * line_buf = taps > 1 && r1 > r0 ? (float *) malloc(w * sizeof(float)) : NULL;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, ci = (r / oh) % c, n = r / (oh * c);
        const float * ry = taps_of(ytable, taps, oy);
        const float * line;
        if (taps == 1) {
            line = at4(src, 0, (int64_t) ry[0], ci, n);
        } else {
            memset(line_buf, 0, w * sizeof(float));
            for (int64_t a = 0; a < taps; ++a) {
                const float wa = ry[taps + a];
                const float * in = at4(src, 0, (int64_t) ry[a], ci, n);
                for (int64_t x = 0; x < w; ++x) {
                    line_buf[x] += wa * in[x];
                }
            }
            line = line_buf;
        }
        float * o = at4(dst, 0, oy, ci, n);
        for (int64_t ox = 0; ox < ow; ++ox) {
            const float * rx = taps_of(table, taps, ox);
            float acc = 0.0f;
            for (int64_t b = 0; b < taps; ++b) {
                acc += rx[taps + b] * line[(int64_t) rx[b]];
            }
            o[ox] = acc;
        }
    }
    free(line_buf);
}

void ggonnx_resize(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const float * table = (const float *) dst->src[1]->data;
    if (p[0] == 1) {
        resize_nhwc(dst, ith, nth, table, p[1]);
    } else {
        resize_plain(dst, ith, nth, table, p[1]);
    }
}

void ggonnx_col2im_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const struct ggml_tensor * cols = dst->src[0];
    const struct ggml_tensor * bias = dst->src[1];
    const int64_t oc = dst->ne[0], ow = dst->ne[1], oh = dst->ne[2];
    const int64_t w = cols->ne[1], h = cols->ne[2];
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);
    if (kw == sw && kh == sh && dw == 1 && dh == 1 && pw == 0 && ph == 0 && ow == w * kw) {
        /* kernel == stride (upsampling heads): each output pixel is one tap of one input pixel,
         * so a row of the output is a row of the GEMM's output in another order, plus bias */
        const float * b = bias ? (const float *) bias->data : NULL;
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t oy = r % oh, n = r / oh, ky = oy % kh;
            if (oy / kh >= h) {   /* rows past the last input row (output_padding): bias only */
                for (int64_t ox = 0; ox < ow; ++ox) {
                    float * o = at4(dst, 0, ox, oy, n);
                    for (int64_t ci = 0; ci < oc; ++ci) {
                        o[ci] = b ? b[ci] : 0.0f;
                    }
                }
                continue;
            }
            const float * in = pixel(cols, 0, oy / kh, n) + ky * kw * oc;
            float * o = at4(dst, 0, 0, oy, n);
            for (int64_t x = 0; x < w; ++x, in += cols->nb[1] / sizeof(float)) {
                for (int64_t kx = 0; kx < kw; ++kx, o += oc) {   /* taps (ky, 0..kw-1) are adjacent */
                    const float * t = in + kx * oc;
                    if (b) {
                        for (int64_t ci = 0; ci < oc; ++ci) {
                            o[ci] = t[ci] + b[ci];
                        }
                    } else {
                        memcpy(o, t, oc * sizeof(float));
                    }
                }
            }
        }
        return;
    }
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
            float * o = at4(dst, 0, ox, oy, n);
            if (bias) {
                memcpy(o, bias->data, oc * sizeof(float));
            } else {
                memset(o, 0, oc * sizeof(float));
            }
            /* the input pixels whose tap (ky, kx) lands on this output pixel */
            for (int64_t ky = 0; ky < kh; ++ky) {
                const int64_t ty = oy + ph - ky * dh;
                if (ty < 0 || ty % sh != 0 || ty / sh >= h) {
                    continue;
                }
                for (int64_t kx = 0; kx < kw; ++kx) {
                    const int64_t tx = ox + pw - kx * dw;
                    if (tx < 0 || tx % sw != 0 || tx / sw >= w) {
                        continue;
                    }
                    const float * in = pixel(cols, tx / sw, ty / sh, n) + (ky * kw + kx) * oc;
                    for (int64_t ci = 0; ci < oc; ++ci) {
                        o[ci] += in[ci];
                    }
                }
            }
        }
    }
}

/* The source index of padded position i along a dim of n, or -1 where the constant fills it. */
static inline int64_t pad_source(int64_t i, int64_t n, int64_t mode) {
    if (i >= 0 && i < n) {
        return i;
    }
    if (mode == 1) {  /* reflect (the lowering keeps pads below n) */
        return i < 0 ? -i : 2 * (n - 1) - i;
    }
    if (mode == 2) {  /* edge */
        return i < 0 ? 0 : n - 1;
    }
    if (mode == 3) {  /* wrap */
        return ((i % n) + n) % n;
    }
    return -1;
}

/* Constant padding of dims 1-3 only: each plane of dims 0-1 is a fill, a copy of the source's
 * contiguous plane and a fill (rows of a few channels, e.g. an RGB image padded in width for a
 * stem conv, took one call per pixel). */
static void pad_planes(struct ggml_tensor * dst, int ith, int nth, const int64_t * p, float value) {
    const struct ggml_tensor * src = dst->src[0];
    const int64_t n0 = dst->ne[0], n1 = dst->ne[1];
    const int64_t before = MIN(n1, MAX(0, p[1])) * n0, copied = MAX(0, MIN(n1, p[1] + src->ne[1]) - MAX(0, p[1])) * n0;
    const int64_t skipped = MAX(0, -p[1]) * n0;   /* a negative pad crops */
    int64_t r0, r1;
    split(dst->ne[2] * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i2 = r % dst->ne[2], i3 = r / dst->ne[2];
        const int64_t j2 = i2 - p[2], j3 = i3 - p[3];
        float * o = at4(dst, 0, 0, i2, i3);
        if (j2 < 0 || j2 >= src->ne[2] || j3 < 0 || j3 >= src->ne[3]) {
            for (int64_t i = 0; i < n0 * n1; ++i) {
                o[i] = value;
            }
            continue;
        }
        for (int64_t i = 0; i < before; ++i) {
            o[i] = value;
        }
        memcpy(o + before, (const float *) at4(src, 0, 0, j2, j3) + skipped, copied * sizeof(float));
        for (int64_t i = before + copied; i < n0 * n1; ++i) {
            o[i] = value;
        }
    }
}

void ggonnx_pad(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t mode = p[4];
    const float value = param_float(p[5]);
    const struct ggml_tensor * src = dst->src[0];
    const int64_t n0 = dst->ne[0], s0 = src->ne[0];
    /* the run of positions along ne0 that copy the source as is */
    const int64_t lo = MIN(n0, MAX(0, p[0])), hi = MAX(lo, MIN(n0, p[0] + s0));
    if (mode == 0 && n0 == s0 && p[0] == 0 && src->nb[0] == sizeof(float) &&
        src->nb[1] == s0 * (int64_t) sizeof(float)) {
        pad_planes(dst, ith, nth, p, value);
        return;
    }
    int64_t r0, r1;
    split(dst->ne[1] * dst->ne[2] * dst->ne[3], ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % dst->ne[1], i2 = (r / dst->ne[1]) % dst->ne[2], i3 = r / (dst->ne[1] * dst->ne[2]);
        float * o = at4(dst, 0, i1, i2, i3);
        const int64_t j1 = pad_source(i1 - p[1], src->ne[1], mode);
        const int64_t j2 = pad_source(i2 - p[2], src->ne[2], mode);
        const int64_t j3 = pad_source(i3 - p[3], src->ne[3], mode);
        if (j1 < 0 || j2 < 0 || j3 < 0) {
            for (int64_t i0 = 0; i0 < n0; ++i0) {
                o[i0] = value;
            }
            continue;
        }
        const char * row = (const char *) at4(src, 0, j1, j2, j3);
        for (int64_t i0 = 0; i0 < n0; ++i0) {
            if (i0 == lo && hi > lo) {
                memcpy(o + lo, row + (lo - p[0]) * sizeof(float), (hi - lo) * sizeof(float));
                i0 = hi - 1;
                continue;
            }
            const int64_t j0 = pad_source(i0 - p[0], s0, mode);
            o[i0] = j0 < 0 ? value : *(const float *) (row + j0 * sizeof(float));
        }
    }
}

void ggonnx_concat_channels(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const int64_t ow = dst->ne[1], oh = dst->ne[2];
    int64_t q0, q1;
    split(ow * oh * dst->ne[3], ith, nth, &q0, &q1);
    for (int64_t q = q0; q < q1; ++q) {
        const int64_t ox = q % ow, oy = (q / ow) % oh, n = q / (ow * oh);
        float * o = at4(dst, 0, ox, oy, n);
        for (int k = 0; k < 4 && dst->src[k]; ++k) {
            const struct ggml_tensor * s = dst->src[k];
            memcpy(o, pixel(s, ox, oy, n), s->ne[0] * sizeof(float));
            o += s->ne[0];
        }
    }
}

/* Few rows (an NCHW image of 1-4 channels to NHWC): each output row gathers one value per
 * input row; the row count a constant, so the loop unrolls (the 32x32 tiles below ran 3 rows
 * a tile: a 640x640 RGB input took 1.8x the time). */
static inline __attribute__((always_inline)) void transpose_few(const float * s, float * d, int64_t n0,
                                                                 int64_t i0, int64_t i1, const int64_t n1) {
    for (; i0 < i1; ++i0) {
        for (int64_t k = 0; k < n1; ++k) {
            d[i0 * n1 + k] = s[k * n0 + i0];
        }
    }
}

void ggonnx_transpose2d(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const struct ggml_tensor * src = dst->src[0];
    const int64_t n0 = src->ne[0], n1 = src->ne[1], batch = src->ne[2] * src->ne[3];
    if (n1 <= 4) {
        const int64_t chunk = 1024, chunks = (n0 + chunk - 1) / chunk;
        int64_t q0, q1;
        split(chunks * batch, ith, nth, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q) {
            const int64_t b = q / chunks, a = q % chunks * chunk, e = MIN(n0, a + chunk);
            const float * s = (const float *) src->data + b * n0 * n1;
            float * d = (float *) dst->data + b * n0 * n1;
            switch (n1) {
                case 1: transpose_few(s, d, n0, a, e, 1); break;
                case 2: transpose_few(s, d, n0, a, e, 2); break;
                case 3: transpose_few(s, d, n0, a, e, 3); break;
                default: transpose_few(s, d, n0, a, e, 4); break;
            }
        }
        return;
    }
    const int64_t tile = 32, t0s = (n0 + tile - 1) / tile, t1s = (n1 + tile - 1) / tile;
    int64_t r0, r1;
    split(t0s * t1s * batch, ith, nth, &r0, &r1);   /* work items: 32x32 tiles of every image */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / (t0s * t1s), i1_0 = (r / t0s) % t1s * tile, i0_0 = r % t0s * tile;
        const int64_t i0_1 = MIN(n0, i0_0 + tile), i1_1 = MIN(n1, i1_0 + tile);
        const float * s = (const float *) src->data + b * n0 * n1;
        float * d = (float *) dst->data + b * n0 * n1;
        for (int64_t i0 = i0_0; i0 < i0_1; ++i0) {
            for (int64_t i1 = i1_0; i1 < i1_1; ++i1) {
                d[i0 * n1 + i1] = s[i1 * n0 + i0];
            }
        }
    }
}
