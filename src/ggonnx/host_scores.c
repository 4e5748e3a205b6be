/* Score rows to labels and probabilities for the host ML classifiers (host_ml.py): at batch 1
 * the numpy version (a masked argmax, a cast, a softmax of five whole-array passes) cost about
 * 7 us of a random forest's 20, one C pass costs well under one.
 *
 * The arithmetic is host_ml's float32 post transforms, which follow onnxruntime's ml_common.h:
 * softmax subtracts the row's maximum (a NaN anywhere makes the row NaN), sums left to right and
 * divides; logistic is 1 / (1 + exp(-|x|)), mirrored for x < 0. */
#include "host_scores.h"

#include <math.h>

static void post_row(const double * s, int64_t k, int post, float * out) {
    for (int64_t j = 0; j < k; ++j) {
        out[j] = (float) s[j];
    }
    if (post == GGONNX_POST_SOFTMAX) {
        float m = out[0];
        for (int64_t j = 1; j < k && !isnan(m); ++j) {
            m = (isnan(out[j]) || out[j] > m) ? out[j] : m;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
            out[j] = expf(out[j] - m);
            sum += out[j];
        }
        for (int64_t j = 0; j < k; ++j) {
            out[j] /= sum;
        }
    } else if (post == GGONNX_POST_LOGISTIC) {
        for (int64_t j = 0; j < k; ++j) {
            out[j] = ggonnx_logistic_f32(out[j]);
        }
    }
}

/* numpy's argmax of the row with the columns outside has at -inf */
static int64_t best_column(const double * s, int64_t k, const uint8_t * has, int compare_f32) {
    int64_t best = 0;
    double bv = 0.0;
    for (int64_t j = 0; j < k; ++j) {
        double v = (has && !has[j]) ? -INFINITY : compare_f32 ? (double) (float) s[j] : s[j];
        if (isnan(v)) {
            return j;
        }
        if (j == 0 || v > bv) {
            best = j;
            bv = v;
        }
    }
    return best;
}

int ggonnx_scores_classify(double * s, int64_t n, int64_t k, const double * base, int64_t n_base,
                           const uint8_t * has, int compare_f32, int post, int64_t * best, float * out) {
    if (post < GGONNX_POST_NONE || post > GGONNX_POST_LOGISTIC || n_base > k) {
        return -1;
    }
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = 0; j < n_base; ++j) {
            s[r * k + j] += base[j];
        }
        best[r] = best_column(s + r * k, k, has, compare_f32);
        post_row(s + r * k, k, post, out + r * k);
    }
    return 0;
}
