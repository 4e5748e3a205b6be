/* Pairwise coupling of an SVM's one-against-one probabilities (libsvm's multiclass_probability),
 * one row at a time, every operation in float32 in onnxruntime's order: no fused multiply-adds
 * (the attribute below), so each product and sum rounds as the reference loop's do. A row stops
 * once its own error is under eps, or after 100 rounds; a NaN error never counts as converged. */
#include "host_svm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

__attribute__((optimize("fp-contract=off")))
static void couple_row(const float * val, int64_t pairs, const int64_t * pair_i, const int64_t * pair_j,
                       int64_t k, float * r, float * q, float * qp, float * p) {
    memset(r, 0, sizeof(float) * k * k);
    for (int64_t t = 0; t < pairs; ++t) {
        const int64_t i = pair_i[t], j = pair_j[t];
        r[i * k + j] = val[t];
        r[j * k + i] = 1.0f - val[t];
    }
    for (int64_t i = 0; i < k; ++i) {
        float qii = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
            if (j != i) {
                qii += r[j * k + i] * r[j * k + i];
            }
        }
        q[i * k + i] = qii;
        for (int64_t j = 0; j < i; ++j) {
            q[i * k + j] = q[j * k + i];
        }
        for (int64_t j = i + 1; j < k; ++j) {
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    const float eps = 0.005f / (float) k;
    for (int64_t i = 0; i < k; ++i) {
        p[i] = 1.0f / (float) k;
    }
    for (int iter = 0; iter < 100; ++iter) {
        float pqp = 0.0f;
        for (int64_t i = 0; i < k; ++i) {
            float acc = 0.0f;
            for (int64_t j = 0; j < k; ++j) {
                acc += q[i * k + j] * p[j];
            }
            qp[i] = acc;
            pqp += p[i] * acc;
        }
        float err = 0.0f;
        for (int64_t i = 0; i < k; ++i) {
            const float e = fabsf(qp[i] - pqp);
            if (e > err) {
                err = e;
            }
        }
        if (err < eps) {
            break;
        }
        for (int64_t i = 0; i < k; ++i) {
            const float qii = q[i * k + i];
            const float diff = (-qp[i] + pqp) / qii;
            p[i] += diff;
            const float one = 1.0f + diff;
            pqp = (pqp + diff * (diff * qii + 2.0f * qp[i])) / one / one;
            for (int64_t j = 0; j < k; ++j) {
                qp[j] = (qp[j] + diff * q[i * k + j]) / one;
            }
            for (int64_t j = 0; j < k; ++j) {
                p[j] /= one;
            }
        }
    }
}

int ggonnx_svm_coupling(const float * val, int64_t n, int64_t pairs, const int64_t * pair_i,
                        const int64_t * pair_j, int64_t k, float * out) {
    float * work = (float *) malloc(sizeof(float) * (2 * k * k + k));
    if (work == NULL) {
        return -1;
    }
    for (int64_t s = 0; s < n; ++s) {
        couple_row(val + s * pairs, pairs, pair_i, pair_j, k, work, work + k * k, work + 2 * k * k, out + s * k);
    }
    free(work);
    return 0;
}
