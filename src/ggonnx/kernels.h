/* Kernels ggml lacks (or runs on one thread / with scalar loops), run inside ggml graphs as
 * ggml_custom_4d ops on ggml's own thread pool: fun(dst, ith, nth, params).
 *
 * Layout: activations channels-last, ggml ne [C, W, H, N] (NHWC). Sources are read through
 * their nb strides, so a channel slice (a view) is a valid source. ``params`` points at the
 * instruction row's integer parameters, which the Plan keeps alive with its graph.
 */
#pragma once
#include <stdint.h>
#include "ggml.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Patches of a conv input, dst [Kp, OW, OH, N] from src [C, W, H, N]: row k of a pixel is
 * (ky, kx, c) with c fastest; K = KH*KW*C, rows K..Kp-1 are zero (Kp aligns the GEMM depth).
 * params: kw, kh, stride_w, stride_h, pad_w (begin), pad_h (begin), dil_w, dil_h.
 * Taps outside the input read zero, so asymmetric end pads need nothing more. */
void ggonnx_im2col_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Max / average pooling, dst [C, OW, OH, N] from src [C, W, H, N].
 * params: kw, kh, stride_w, stride_h, pad_w, pad_h (begin), dil_w, dil_h, mode,
 *         end_w, end_h (the end pads counted by count_include_pad).
 * mode 0: max over the taps inside the input; 1: average over the taps inside the input;
 * 2: average counting the explicit pads too (count_include_pad). */
void ggonnx_pool_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Global pooling over W and H, dst [C, 1, 1, N] from src [C, W, H, N].
 * params: mode (0 max, 1 average). */
void ggonnx_global_pool_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params);

#ifdef __cplusplus
}
#endif
