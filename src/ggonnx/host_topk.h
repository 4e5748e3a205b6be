/* TopK along the last axis of contiguous rows, for the host kernels (host_topk.c). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For each of n rows of m values: the k extreme ones (largest, or smallest), best first, equal
 * values by lower index first, NaN counting as larger than every number (numpy's sort order);
 * values [n, k] and their indices [n, k]. */
void ggonnx_topk_f32(const float * x, int64_t n, int64_t m, int64_t k, int largest, float * values, int64_t * indices);
void ggonnx_topk_f64(const double * x, int64_t n, int64_t m, int64_t k, int largest, double * values,
                     int64_t * indices);
void ggonnx_topk_i64(const int64_t * x, int64_t n, int64_t m, int64_t k, int largest, int64_t * values,
                     int64_t * indices);
void ggonnx_topk_i32(const int32_t * x, int64_t n, int64_t m, int64_t k, int largest, int32_t * values,
                     int64_t * indices);

#ifdef __cplusplus
}
#endif
