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

/* A float32 parameter stored as its bits in an int64 instruction parameter. */
static inline float param_float(int64_t bits) {
    const uint32_t u = (uint32_t) bits;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}
