/* Channels-last kernels run as ggml custom ops; see kernels.h for layouts and parameters.
 * Inner loops run over contiguous channels, which the compiler vectorizes. */
#include "kernels.h"

#include <float.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* [start, end) of n items for thread ith of nth */
static void split(int64_t n, int ith, int nth, int64_t * start, int64_t * end) {
    const int64_t per = (n + nth - 1) / nth;
    *start = MIN(n, per * ith);
    *end = MIN(n, *start + per);
}

static inline const float * pixel(const struct ggml_tensor * t, int64_t x, int64_t y, int64_t n) {
    return (const float *) ((const char *) t->data + x * t->nb[1] + y * t->nb[2] + n * t->nb[3]);
}

void ggonnx_im2col_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params) {
    const int64_t * p = (const int64_t *) params;
    const int64_t kw = p[0], kh = p[1], sw = p[2], sh = p[3], pw = p[4], ph = p[5], dw = p[6], dh = p[7];
    const struct ggml_tensor * src = dst->src[0];
    const int64_t c = src->ne[0], w = src->ne[1], h = src->ne[2];
    const int64_t kp = dst->ne[0], ow = dst->ne[1], oh = dst->ne[2];
    const int64_t k = kh * kw * c;
    int64_t r0, r1;
    split(oh * dst->ne[3], ith, nth, &r0, &r1);   /* rows of output pixels */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % oh, n = r / oh;
        float * out = (float *) ((char *) dst->data + oy * dst->nb[2] + n * dst->nb[3]);
        for (int64_t ox = 0; ox < ow; ++ox, out += kp) {
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
            if (kp > k) {
                memset(out + k, 0, (kp - k) * sizeof(float));
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
