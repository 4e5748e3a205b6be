/* NonMaxSuppression for the host kernels (host_nms.c). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ONNX NonMaxSuppression over boxes [batches, n, 4] and scores [batches, classes, n]: per batch and
 * class, the candidates (score > score_threshold when has_threshold) in order of score (highest
 * first, ties by lower index; NaN last), each kept unless its IoU with a box already kept for that
 * class exceeds iou_threshold, at most max_out per class. Writes (batch, class, box) triples to
 * out (room for batches * classes * min(n, max_out) of them) and returns their count, or -1
 * when out of memory. center: boxes as [x_center, y_center, width, height], else two corners
 * [y1, x1, y2, x2] in either order. */
int64_t ggonnx_nms(const float * boxes, const float * scores, int64_t batches, int64_t classes, int64_t n,
                   int64_t max_out, float iou_threshold, int has_threshold, float score_threshold, int center,
                   int64_t * out);

#ifdef __cplusplus
}
#endif
