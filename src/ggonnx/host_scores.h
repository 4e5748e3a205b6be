/* Score rows to labels and probabilities for the host ML classifiers (host_scores.c). */
#pragma once
#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GGONNX_POST_NONE = 0, GGONNX_POST_SOFTMAX = 1, GGONNX_POST_LOGISTIC = 2 };

/* onnxruntime's logistic in float32 (ml_common.h), as host_ml._logistic: 1 / (1 + exp(-|x|)),
 * mirrored for x < 0 */
static inline float ggonnx_logistic_f32(float x) {
    const float v = 1.0f / (1.0f + expf(-fabsf(x)));
    return x < 0.0f ? 1.0f - v : v;
}

/* For each of the n rows of s [n, k] (float64), after adding base[j] to its first n_base columns
 * (in place): best[r], numpy's argmax of the row with the
 * columns outside has (NULL: none) at -inf, compared in float32 when compare_f32 (the first
 * maximum; a NaN wins); and out[r, :], the row in float32 after post.
 * Returns 0, or -1 for an unknown post or more base values than columns. */
int ggonnx_scores_classify(double * s, int64_t n, int64_t k, const double * base, int64_t n_base,
                           const uint8_t * has, int compare_f32, int post, int64_t * best, float * out);

#ifdef __cplusplus
}
#endif
