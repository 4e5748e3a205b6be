/* Support-vector-machine pieces of the host ML kernels in C (host_svm.c). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libsvm's pairwise coupling, as onnxruntime's multiclass_probability runs it, in float32: for each
 * of n rows of pairwise probabilities val [n, pairs] (pair p compares classes pair_i[p] and
 * pair_j[p]) the k class probabilities out [n, k]. 0, or -1 when out of memory. */
int ggonnx_svm_coupling(const float * val, int64_t n, int64_t pairs, const int64_t * pair_i,
                        const int64_t * pair_j, int64_t k, float * out);

#ifdef __cplusplus
}
#endif
