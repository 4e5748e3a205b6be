/* Pairwise coupling of an SVM's one-against-one probabilities (libsvm's multiclass_probability),
 * one row at a time, every operation in float32 in onnxruntime's order: no fused multiply-adds
 * (the attribute below), so each product and sum rounds as the reference loop's do. A row stops
 * once its own error is under eps, or after 100 rounds; a NaN error never counts as converged. */
#include "host_svm.h"
#include "host_scores.h"

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

/* The kernel values of one row x [f] against every support vector (svt: [f, v], vectors along
 * the contiguous axis so each feature's step vectorizes over them), in float32 as host_ml_linear's
 * _Kernel: dot products for LINEAR / POLY / SIGMOID, squared distances for RBF. */
__attribute__((optimize("fp-contract=off")))
static void kernel_row(const float * x, int64_t f, const float * svt, int64_t v, int kind, float gamma, float coef0,
                       float degree, float * kern) {
    for (int64_t s = 0; s < v; ++s) {
        kern[s] = 0.0f;
    }
    for (int64_t j = 0; j < f; ++j) {
        const float xj = x[j];
        const float * col = svt + j * v;
        if (kind == GGONNX_SVM_RBF) {
            for (int64_t s = 0; s < v; ++s) {
                const float d = xj - col[s];
                kern[s] += d * d;
            }
        } else {
            for (int64_t s = 0; s < v; ++s) {
                kern[s] += xj * col[s];
            }
        }
    }
    for (int64_t s = 0; s < v; ++s) {
        float k = kern[s];
        if (kind == GGONNX_SVM_RBF) {
            k = expf(-gamma * k);
        } else if (kind != GGONNX_SVM_LINEAR) {
            k = k * gamma + coef0;
            if (kind == GGONNX_SVM_SIGMOID) {
                k = tanhf(k);
            } else {
                k = degree == 2.0f ? k * k : degree == 3.0f ? k * k * k : powf(k, degree);
            }
        }
        kern[s] = k;
    }
}

__attribute__((optimize("fp-contract=off")))  /* the probabilities round as host_ml_linear's numpy */
int ggonnx_svc_rows(const float * x, int64_t n, int64_t f, const float * svt, int64_t v, int kind, float gamma,
                    float coef0, float degree, const double * w, const double * rho, int64_t pairs,
                    const int64_t * pair_i, const int64_t * pair_j, int64_t k, const float * prob_a,
                    const float * prob_b, float * scores, int64_t * best, float * proba) {
    float * kern = (float *) malloc(sizeof(float) * (v + pairs + k));
    double * s = (double *) malloc(sizeof(double) * pairs);
    if (kern == NULL || s == NULL) {
        free(kern);
        free(s);
        return -1;
    }
    float * val = kern + v, * votes = kern + v + pairs;
    for (int64_t r = 0; r < n; ++r) {
        kernel_row(x + r * f, f, svt, v, kind, gamma, coef0, degree, kern);
        for (int64_t p = 0; p < pairs; ++p) {
            s[p] = rho[p];
        }
        for (int64_t i = 0; i < v; ++i) {  /* in double, as onnxruntime sums the pairs' scores */
            const double kv = (double) kern[i];
            const double * wi = w + i * pairs;
            for (int64_t p = 0; p < pairs; ++p) {
                s[p] += kv * wi[p];
            }
        }
        for (int64_t c = 0; c < k; ++c) {
            votes[c] = 0.0f;
        }
        for (int64_t p = 0; p < pairs; ++p) {  /* a positive score is a vote for the pair's first class */
            votes[s[p] > 0.0 ? pair_i[p] : pair_j[p]] += 1.0f;
            scores[r * pairs + p] = (float) s[p];
        }
        int64_t b = 0;
        for (int64_t c = 1; c < k; ++c) {
            if (votes[c] > votes[b]) {
                b = c;
            }
        }
        best[r] = b;
        if (proba != NULL) {  /* libsvm's pairwise probabilities, clipped as onnxruntime does */
            for (int64_t p = 0; p < pairs; ++p) {
                const float t = scores[r * pairs + p] * prob_a[p];
                float pv = 1.0f - ggonnx_logistic_f32(t + prob_b[p]);
                pv = pv < 1e-7f ? 1e-7f : pv;
                val[p] = pv > 1.0f - 1e-7f ? 1.0f - 1e-7f : pv;
            }
            if (ggonnx_svm_coupling(val, 1, pairs, pair_i, pair_j, k, proba + r * k) != 0) {
                free(kern);
                free(s);
                return -1;
            }
        }
    }
    free(kern);
    free(s);
    return 0;
}
