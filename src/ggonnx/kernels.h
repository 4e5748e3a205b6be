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

/* Patches of a conv input, dst [K, OW, OH, N] from src [C, W, H, N]: row k of a pixel is
 * (ky, kx, c) with c fastest; K = KH*KW*C.
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

/* Dense GEMM with a packed constant weight and a fused epilogue, for channels-last convs:
 * dst [OC, P] (each pixel's OC outputs contiguous) = W [OC, K] x X, src[0] = X [K, P] (each
 * pixel's K inputs contiguous, any K), src[1] = W packed (below),
 * src[2] = bias [OC] or absent (NULL when src[3] is given), src[3] = a residual of dst's shape,
 * contiguous, added before the activation, or absent. Outer-product micro-kernels (32 OC x 12 pixels of FMAs per
 * k): no horizontal sums and no depth alignment, so small K runs at speed.
 * params: act (GGONNX_ACT_*), the float32 bits of its parameters lo, hi. */
void ggonnx_gemm_packed(struct ggml_tensor * dst, int ith, int nth, void * params);
/* Batched: X [K, P, B] and W [packed, B] (or [packed, 1], shared) -> dst [OC, P, B]. */

/* An activation B [N, K, batch] (ggml order: an ONNX MatMul's right operand [batch, K, N]) in
 * the packed GEMM weight layout: dst [panels * K * GGONNX_GEMM_PANEL, batch], zeros past N. */
void ggonnx_pack_panels(struct ggml_tensor * dst, int ith, int nth, void * params);

/* bf16 weights on AMX tiles (kernels_amx.c): dst [N, M] = W x X, src[1] = X [K, M] float32
 * (contiguous), src[0] = W [N, K] as bf16 tiles: for each 16 outputs (N padded with zero rows
 * to a multiple of 32), for each 32 of depth (K padded with zeros), 16 depth pairs x 16 outputs
 * x 2. ggonnx_amx_bf16_init() is 1 where this build, the CPU and the OS can run it. */
int ggonnx_amx_bf16_init(void);
void ggonnx_gemm_amx_bf16(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Channel slices (GEMM and implicit-conv kernels): writing into a wider output, so that a
 * channel Concat of several convs costs no copy. Params at these indices: GGONNX_P_INTO = 1 when
 * dst is computed in place on src[0] (the tensor being filled; the kernel's own sources follow
 * from src[1] on, and no residual is taken), GGONNX_P_COFF = the first channel this kernel
 * writes, GGONNX_P_OC = how many (0: all of dst->ne[0]). */
#define GGONNX_P_INTO 14
#define GGONNX_P_COFF 15
#define GGONNX_P_OC 16

/* Activations of a GEMM epilogue, and of ggonnx_activation. */
#define GGONNX_ACT_NONE 0
#define GGONNX_ACT_CLAMP 1        /* max(lo, min(hi, y)): Relu, Relu6, Clip */
#define GGONNX_ACT_HARDSWISH 2    /* y * clamp(y / 6 + 1/2, 0, 1) */
#define GGONNX_ACT_HARDSIGMOID 3  /* clamp(lo * y + hi, 0, 1) */
#define GGONNX_ACT_SIGMOID 4      /* 1 / (1 + exp(-y)) */
#define GGONNX_ACT_SILU 5         /* y * sigmoid(y) */
#define GGONNX_ACT_GELU_TANH 6    /* 0.5 y (1 + tanh(sqrt(2 / pi) (y + 0.044715 y^3))) */
#define GGONNX_ACT_GELU_ERF 7     /* 0.5 y (1 + erf(y / sqrt(2))) */
#define GGONNX_ACT_ROUND 8        /* y rounded half to even, then max(lo, min(hi, .)): QuantizeLinear */

/* An activation (above) of contiguous src[0], vectorized and threaded (ggml's hardswish,
 * sigmoid and erf are scalar). params: act, the float32 bits of lo, hi. */
void ggonnx_activation(struct ggml_tensor * dst, int ith, int nth, void * params);

/* The same GEMM as an implicit convolution (no patch matrix): dst [OC, OW, OH, N] from
 * src[0] = X [C, W, H, N], the weight packed with rows (ky, kx, c), c fastest.
 * params: act, lo bits, hi bits as above, then kw, kh, stride_w, stride_h, pad_w, pad_h
 * (begin), dil_w, dil_h, then for grouped convs ocg, cg (output and input channels per group;
 * 0, 0 for dense), where ocg divides 16 or 16 divides ocg. A grouped weight packs, per panel of
 * 16 output channels, the input channels of the groups the panel covers: cspan = cg * 16 / ocg
 * (ocg < 16) or cg, rows (ky, kx, channel), zero where a channel is another group's.
 * Needs C <= GGONNX_CONV_MAX_C and kw * kh <= 64. */
void ggonnx_conv_packed(struct ggml_tensor * dst, int ith, int nth, void * params);
#define GGONNX_CONV_MAX_C 4096

/* A conv with few output channels (up to GGONNX_NARROW_MAX_OC): dst [OC, OW, OH, N] from
 * src[0] = X [C, W, H, N], src[1] = W [OC rounded up to 4][KH*KW*C] (rows (ky, kx, c), c
 * fastest), src[2] = bias [OC rounded up to 4] or absent. Vectorized along the depth.
 * params as ggonnx_conv_packed's first eleven. */
void ggonnx_conv_narrow(struct ggml_tensor * dst, int ith, int nth, void * params);
#define GGONNX_NARROW_MAX_OC 16

/* Depthwise conv: dst [C, OW, OH, N] from src[0] = X [C, W, H, N], src[1] = W [KH*KW][C] (tap
 * major), src[2] = bias [C] or absent. params as ggonnx_conv_packed's first eleven (any pads:
 * taps outside the input are skipped). */
void ggonnx_conv_dw(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Softmax along ne0 of contiguous src[0] (vectorized exp), scaled by params[0] (float bits; 0:
 * none) and, with src[1] (contiguous, ne0 the same, repeating to src[0]), masked: softmax(s*x + mask). */
void ggonnx_softmax(struct ggml_tensor * dst, int ith, int nth, void * params);

/* The packed weight: W [OC, K] as panels of GGONNX_GEMM_PANEL output channels, each
 * [K][GGONNX_GEMM_PANEL], the last one zero-padded (ggonnx.ops.conv packs it at load). */
#define GGONNX_GEMM_PANEL 16

/* Resize of two axes by separable tap tables (nearest: 1 tap, linear: 2, cubic: 4).
 * src[0] the input; src[1] the table, float32 [2*T, OX + OY]: row j < OX for output x = j,
 * row OX + j for output y = j, each T source indices (as floats, already clamped into the
 * input) then T weights. The lowering computes the tables with ONNX's coordinate transforms.
 * params: layout (0 plain: x = ne0, y = ne1; 1 channels-last: c = ne0, x = ne1, y = ne2), T. */
void ggonnx_resize(struct ggml_tensor * dst, int ith, int nth, void * params);

/* The scatter half of a transposed conv, as a gather: dst [OC, OW, OH, N] from
 * src[0] = cols [KH*KW*OC, W, H, N] (each input pixel's GEMM output, rows (ky, kx, oc), oc
 * fastest), src[1] = bias [OC] or absent. Output pixel o takes tap (ky, kx) of input pixel i
 * where o = i * stride - pad + k * dilation.
 * params: kw, kh, stride_w, stride_h, pad_w, pad_h (begin), dil_w, dil_h. */
void ggonnx_col2im_nhwc(struct ggml_tensor * dst, int ith, int nth, void * params);

/* dst [n1, n0, n2 * n3] = the transpose of each [n0, n1] matrix of contiguous src [n0, n1, n2, n3]
 * (between NCHW and NHWC: ggml's permute + cont copies element by element), in 32x32 tiles. */
void ggonnx_transpose2d(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Concat along ne0: dst [C0 + C1 + ..., W, H, N] from src[0..3] [Ci, W, H, N] (ne0 contiguous),
 * one pass, each pixel's parts copied side by side (ggml's concat goes element by element).
 * Channels-last concats, and any concat of contiguous parts seen as [inner, outer] rows. */
void ggonnx_concat_channels(struct ggml_tensor * dst, int ith, int nth, void * params);

/* dst [1, R1, R2, R3]: per row of src[0] [K, R1, R2, R3] the index (as a float) of its first
 * largest value, or smallest with params[0] = 1; the last such with params[1] = 1. With params[2]
 * a NaN is the extreme where it is first met (NumPy's argmax), else a strict comparison scan (a
 * NaN never wins; a NaN first value keeps index 0: onnxruntime's ML classifiers). */
void ggonnx_arg_extreme(struct ggml_tensor * dst, int ith, int nth, void * params);

/* dst = table[idx]: src[0] a contiguous float table [K], src[1] contiguous float-held integer
 * indices of dst's shape, each in [0, K) (the lowering proves it; out-of-range reads the nearest
 * end rather than past the table). */
void ggonnx_lookup(struct ggml_tensor * dst, int ith, int nth, void * params);

/* dst [K, M]: dst[k, i] = 1 where src[0][i] == src[1][k], else 0: src[0] contiguous float-held
 * integers (M of them), src[1] contiguous categories [K] (one-hot encoding; a value equal to no
 * category is a row of zeros). */
void ggonnx_one_hot(struct ggml_tensor * dst, int ith, int nth, void * params);

/* dst [K, R1, R2, R3]: dst[j, r] = src[0][ids[j], r] for each row r of the contiguous src[0]
 * [C, R1, R2, R3], ids = src[1], K contiguous float-held integers in [0, C) (the lowering checks
 * them; out-of-range ones read the nearest end). Columns picked at constant indices in one pass,
 * where a strided view per column copied rows of one float. */
void ggonnx_take_columns(struct ggml_tensor * dst, int ith, int nth, void * params);

/* LayerNormalization over ne0 in one pass per row: dst = (x - mean) / sqrt(var + eps) * g (+ b),
 * src[0] x contiguous, src[1] g [ne0], src[2] b [ne0] or absent; params[0] the float32 bits of eps.
 * ggml_norm, a MUL and an ADD were three nodes (and three passes over each row). */
void ggonnx_norm_affine(struct ggml_tensor * dst, int ith, int nth, void * params);

/* Pad of a 4-D tensor (ne0 contiguous). params: begin pad per ggml dim (ne0..ne3, negative
 * crops), mode (0 constant, 1 reflect, 2 edge, 3 wrap), the float32 bits of the constant. */
void ggonnx_pad(struct ggml_tensor * dst, int ith, int nth, void * params);

#ifdef __cplusplus
}
#endif
