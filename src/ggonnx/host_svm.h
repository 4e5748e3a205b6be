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

enum { GGONNX_SVM_LINEAR = 0, GGONNX_SVM_POLY = 1, GGONNX_SVM_RBF = 2, GGONNX_SVM_SIGMOID = 3 };

/* One-against-one SVC decisions for n rows of x [n, f], row by row (small batches; big ones run
 * as GEMMs in host_ml_linear): kernel values against the v support vectors svt [f, v] in float32
 * (kind: GGONNX_SVM_*), pair scores s[p] = rho[p] + sum_i kern[i] w[i, p] in double (w: [v, pairs]),
 * written to scores [n, pairs] in float32; best[r], the first class with the most votes (pair p
 * votes pair_i[p] on a positive score, else pair_j[p]); with prob_a / prob_b [pairs] (else NULL)
 * the coupled class probabilities proba [n, k]. 0, or -1 when out of memory. */
int ggonnx_svc_rows(const float * x, int64_t n, int64_t f, const float * svt, int64_t v, int kind, float gamma,
                    float coef0, float degree, const double * w, const double * rho, int64_t pairs,
                    const int64_t * pair_i, const int64_t * pair_j, int64_t k, const float * prob_a,
                    const float * prob_b, float * scores, int64_t * best, float * proba);

#ifdef __cplusplus
}
#endif
