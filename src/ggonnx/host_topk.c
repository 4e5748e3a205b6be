/* TopK along the last axis, one pass per row keeping the best k so far in order (host_index.py):
 * numpy's argpartition, stable sort and gathers cost ~60 us for k = 10 of [8, 1000], where the
 * pass is a compare per value and an insertion per value that enters the k.
 *
 * Values arrive in index order, so an equal value never displaces one already kept: ties go to
 * the lower index, as onnxruntime orders them. NaN is larger than every number and equal to NaN
 * (numpy's sort order, which host_index documents). */
#include "host_topk.h"

#include <math.h>

/* a before b: larger (smallest mode: smaller), NaN the largest of all */
#define TOPK_FLOAT_BEFORE(a, b) (largest ? (isnan(a) ? !isnan(b) : (!isnan(b) && (a) > (b))) \
                                         : (isnan(b) ? !isnan(a) : (!isnan(a) && (a) < (b))))
#define TOPK_INT_BEFORE(a, b) (largest ? (a) > (b) : (a) < (b))

#define TOPK_ROWS(NAME, T, BEFORE)                                                                  \
void NAME(const T * x, int64_t n, int64_t m, int64_t k, int largest, T * values, int64_t * indices) { \
    for (int64_t r = 0; r < n; ++r) {                                                               \
        const T * row = x + r * m;                                                                  \
        T * bv = values + r * k;                                                                    \
        int64_t * bi = indices + r * k;                                                             \
        int64_t c = 0;                                                                              \
        for (int64_t i = 0; i < m; ++i) {                                                           \
            const T v = row[i];                                                                     \
            if (c == k && !BEFORE(v, bv[k - 1])) {                                                  \
                continue;                                                                           \
            }                                                                                       \
            int64_t j = c < k ? c++ : k - 1;                                                        \
            while (j > 0 && BEFORE(v, bv[j - 1])) {                                                 \
                bv[j] = bv[j - 1];                                                                  \
                bi[j] = bi[j - 1];                                                                  \
                --j;                                                                                \
            }                                                                                       \
            bv[j] = v;                                                                              \
            bi[j] = i;                                                                              \
        }                                                                                           \
    }                                                                                               \
}

TOPK_ROWS(ggonnx_topk_f32, float, TOPK_FLOAT_BEFORE)
TOPK_ROWS(ggonnx_topk_f64, double, TOPK_FLOAT_BEFORE)
TOPK_ROWS(ggonnx_topk_i64, int64_t, TOPK_INT_BEFORE)
TOPK_ROWS(ggonnx_topk_i32, int32_t, TOPK_INT_BEFORE)
