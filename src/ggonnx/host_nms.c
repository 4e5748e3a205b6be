/* NonMaxSuppression as onnxruntime's CPU kernel decides it: the same float32 IoU arithmetic, step
 * for step (this file keeps ISO C's default of no contracted multiply-adds, so a box at the
 * threshold is kept or suppressed as there), the same strict comparisons. onnx.reference ran the
 * greedy loop in Python: 1,000 boxes of 5 classes took 42 ms against onnxruntime's 0.28 ms. */
#include "host_nms.h"

#include <stdlib.h>

struct candidate {
    float score;
    int64_t index;
};

/* higher score first, then lower index; NaN after every number */
static int by_score(const void * a, const void * b) {
    const struct candidate * x = (const struct candidate *) a, * y = (const struct candidate *) b;
    const int xn = x->score != x->score, yn = y->score != y->score;
    if (xn != yn) {
        return xn - yn;
    }
    if (!xn && x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return (x->index > y->index) - (x->index < y->index);
}

struct corners {
    float x_min, y_min, x_max, y_max;
};

static void ordered(float a, float b, float * lo, float * hi) {
    if (a >= b) {
        *lo = b;
        *hi = a;
    } else {
        *lo = a;
        *hi = b;
    }
}

static struct corners corners_of(const float * box, int center) {
    struct corners c;
    if (center) {
        const float half_w = box[2] / 2, half_h = box[3] / 2;
        c.x_min = box[0] - half_w;
        c.x_max = box[0] + half_w;
        c.y_min = box[1] - half_h;
        c.y_max = box[1] + half_h;
    } else {
        ordered(box[1], box[3], &c.x_min, &c.x_max);
        ordered(box[0], box[2], &c.y_min, &c.y_max);
    }
    return c;
}

static float maxf(float a, float b) {
    return a < b ? b : a;   /* std::max(a, b), NaN included */
}

static float minf(float a, float b) {
    return b < a ? b : a;
}

static int suppresses(struct corners a, struct corners b, float iou_threshold) {
    const float ix_min = a.x_min < b.x_min ? b.x_min : a.x_min, iy_min = a.y_min < b.y_min ? b.y_min : a.y_min;
    const float ix_max = minf(a.x_max, b.x_max), iy_max = minf(a.y_max, b.y_max);
    const float inter = maxf(ix_max - ix_min, 0.0f) * maxf(iy_max - iy_min, 0.0f);
    if (inter <= 0.0f) {
        return 0;
    }
    const float area_a = (a.x_max - a.x_min) * (a.y_max - a.y_min);
    const float area_b = (b.x_max - b.x_min) * (b.y_max - b.y_min);
    const float uni = area_a + area_b - inter;
    if (area_a <= 0.0f || area_b <= 0.0f || uni <= 0.0f) {
        return 0;
    }
    return inter / uni > iou_threshold;
}

int64_t ggonnx_nms(const float * boxes, const float * scores, int64_t batches, int64_t classes, int64_t n,
                   int64_t max_out, float iou_threshold, int has_threshold, float score_threshold, int center,
                   int64_t * out) {
    struct candidate * cand = (struct candidate *) malloc(sizeof(struct candidate) * (n ? n : 1));
    struct corners * kept = (struct corners *) malloc(sizeof(struct corners) * (n ? n : 1));
    if (cand == NULL || kept == NULL) {
        free(cand);
        free(kept);
        return -1;
    }
    int64_t total = 0;
    for (int64_t b = 0; b < batches; ++b) {
        const float * bx = boxes + b * n * 4;
        for (int64_t c = 0; c < classes; ++c) {
            const float * sc = scores + (b * classes + c) * n;
            int64_t m = 0;
            for (int64_t i = 0; i < n; ++i) {
                if (!has_threshold || sc[i] > score_threshold) {
                    cand[m].score = sc[i];
                    cand[m].index = i;
                    ++m;
                }
            }
            qsort(cand, (size_t) m, sizeof(struct candidate), by_score);
            int64_t n_kept = 0;
            for (int64_t k = 0; k < m && n_kept < max_out; ++k) {
                const struct corners box = corners_of(bx + cand[k].index * 4, center);
                int keep = 1;
                for (int64_t j = 0; j < n_kept && keep; ++j) {
                    keep = !suppresses(kept[j], box, iou_threshold);
                }
                if (keep) {
                    kept[n_kept++] = box;
                    out[total * 3] = b;
                    out[total * 3 + 1] = c;
                    out[total * 3 + 2] = cand[k].index;
                    ++total;
                }
            }
        }
    }
    free(cand);
    free(kept);
    return total;
}
