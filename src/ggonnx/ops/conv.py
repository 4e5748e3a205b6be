"""Convolution: Conv and ConvTranspose (1-D and 2-D), on channels-last data where they can."""
from __future__ import annotations

import math

import numpy as np

from ggonnx import _core
from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
from ggonnx.ops.context import NHWC
from ggonnx.ops.matmul import choose_placement, packed_weight, weight_rows_times
from ggonnx.ops.registry import register
from ggonnx.weight_types import F32
from ggonnx.ops.shape import reshape_value


def explicit_pads(ctx, n: int, auto_pad: str):
    """(begin, end) pads per spatial dim where auto_pad does not set them: VALID, or the pads
    attribute (NOTSET)."""
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad != "NOTSET":
        ctx.unsupported(f"auto_pad={auto_pad!r}")
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    if len(pads) != 2 * n or any(p < 0 for p in pads):
        raise ShapeError(f"{ctx.node.describe()}: pads {pads} invalid for {n} spatial dims")
    return pads[:n], pads[n:]


def spatial_pads(ctx, in_hw, kernel, strides, dilations):
    """(begin, end) pads per spatial dim from pads/auto_pad, ONNX order (H, W)."""
    n = len(in_hw)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = math.ceil(in_hw[i] / strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i])
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        return begin, end
    return explicit_pads(ctx, n, auto_pad)


def as_2d(ctx, x, what):
    """NCW inputs run as NCHW with H=1; returns the value and whether it was 1-D."""
    if x.rank == 3:
        return reshape_value(ctx, x, x.shape[:2] + (1,) + x.shape[2:]), True
    if x.rank != 4:
        ctx.unsupported(f"{what} on rank-{x.rank} input {x.shape} (1-D and 2-D only)")
    return x, False


def _pad_to_symmetric(ctx, gt, begin, end):
    """ggml convs and pools pad symmetrically: pad asymmetric cases explicitly (zeros)."""
    if begin == end:
        return gt, (begin[1], begin[0])
    gt = ctx.e.pad(gt, (begin[1], end[1], begin[0], end[0], 0, 0, 0, 0))
    return gt, (0, 0)


def _check_bias(node, b, oc: int) -> None:
    if b.shape != (oc,):
        raise ShapeError(f"{node.describe()}: bias {b.shape} does not match {oc} output channels")


# Convs to at most NARROW_MAX_OC outputs from at least NARROW_MIN_C inputs run as dot products
# along the depth. Side by side with the outer-product tile (one panel of 16): 32->1 3x3 0.69x
# its time, 64->8 0.93x, 128->4 1x1 1.04x, but 64->16 1.25x and 16->16 1.48x; below 16 inputs
# each tap's row is mostly a masked tail.
NARROW_MAX_OC = 8
NARROW_MIN_C = 16
# Deep, wide 1x1 convs over many pixels are plain GEMMs where OpenBLAS's AVX-512 kernels beat
# our packed tile (squeezenet b8's 512->1000 classifier over 1352 pixels: onnxruntime 400 GFLOP/s,
# the packed GEMM 210); bias and activation then run as their own passes.
BLAS_MIN_C = 512
BLAS_MIN_PIXELS = 1024
# Convs over fewer than RUNS_BELOW_C channels (stems: RGB, grayscale) read each row of kw taps
# as one run of kw * c floats (at most RUNS_MAX_C), from an input padded in width.
RUNS_BELOW_C = 8
RUNS_MAX_C = 64


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _bias_panels(ctx, b, oc: int):
    """A constant conv bias padded with zeros to whole GEMM panels, as epilogues read it."""
    padded = _round_up(oc, _core.GEMM_PANEL)
    return ctx.weight(b, "bias_panels", lambda a: np.pad(a.reshape(-1), (0, padded - oc)), (padded,))


def _grouped_packed_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """A grouped conv weight [OC, CG, KH, KW] for the packed GEMM: per panel of GEMM_PANEL
    output channels, [KH*KW][cspan][PANEL] over the input channels of the groups the panel
    covers (kernels.h), zero where a channel belongs to another output channel's group."""
    oc, cg, kh, kw = w.shape
    ocg, panel = oc // groups, _core.GEMM_PANEL
    cspan = cg if ocg >= panel else panel // ocg * cg
    out = np.zeros((_round_up(oc, panel) // panel, kh * kw, cspan, panel), dtype=np.float32)
    taps = w.transpose(0, 2, 3, 1).reshape(oc, kh * kw, cg)
    for o in range(oc):
        j, g = o // panel, o // ocg
        local = g * cg - (j * panel // ocg) * cg
        out[j, :, local:local + cg, o % panel] = taps[o]
    return out.reshape(-1)


def _packed_grouped_ok(c: int, oc: int, group: int, taps: int) -> bool:
    ocg, panel = oc // group, _core.GEMM_PANEL
    return (panel % ocg == 0 or ocg % panel == 0) and c <= _core.CONV_MAX_C and taps <= 64


def _conv_nhwc(ctx, x, w, b, group, strides, dil, begin, end):
    """A 2-D conv with a constant weight on channels-last data, or None where this path does not
    apply (grouped convs other than depthwise). Dense convs: our packed GEMM (bias fused) over the
    activation itself (1x1, stride 1) or over patches gathered by our im2col kernel; depthwise
    convs run on ggml's channels-contiguous SIMD path. Returns the result [OC, OW, OH, N]."""
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    e = ctx.e
    k, s, d = (kw, kh), (strides[1], strides[0]), (dil[1], dil[0])
    pb, pe = (begin[1], begin[0]), (end[1], end[0])
    if group == c == oc and cg == 1:  # depthwise: our kernel, bias and activation fused
        taps = ctx.weight(w, "dw_taps", lambda a: np.ascontiguousarray(a.reshape(c, kh * kw).T).reshape(-1),
                          (kh * kw * c,))
        bias = None if b is None or b.const is None else ctx.tensor(b)
        y = e.depthwise(ctx.tensor_nhwc(x), taps, bias, k, s, pb, pe, d)
        return y if b is None or bias is not None else e.binary(Op.ADD, y, ctx.tensor(b))
    kdim = c * kh * kw
    if group == 1:
        wtype = ctx.weight_type(w, kdim, oc)
        if wtype != F32:
            return _typed_weight_conv(ctx, x, w, b, wtype, k, s, pb, pe, d)
        if k == (1, 1) and s == (1, 1) and not any(pb + pe) and min(c, oc) >= BLAS_MIN_C and \
                n * h * wd >= BLAS_MIN_PIXELS and choose_placement(n * h * wd, oc, c) == _core.PLACE_BLAS:
            return _typed_weight_conv(ctx, x, w, b, F32, k, s, pb, pe, d, _core.PLACE_BLAS)
    bias = None
    if b is not None and b.const is not None:
        bias = _bias_panels(ctx, b, oc)
    if group != 1:
        # grouped convs (regnet, resnext): one implicit GEMM whose panels read only their
        # groups' channels (zeros in the weight where a panel spans two groups)
        if not _packed_grouped_ok(c, oc, group, kh * kw):
            return None
        ocg, panel = oc // group, _core.GEMM_PANEL
        cspan = cg if ocg >= panel else panel // ocg * cg
        wt = ctx.weight(w, f"gemm_packed_g{group}", lambda a: _grouped_packed_weight(a, group),
                        (_round_up(oc, panel) * cspan * kh * kw,))
        y = e.conv_packed(ctx.tensor_nhwc(x), wt, bias, oc, k, s, pb, pe, d, groups=group)
        return y if b is None or bias is not None else e.binary(Op.ADD, y, ctx.tensor(b))
    if oc <= NARROW_MAX_OC and c >= NARROW_MIN_C and c <= _core.CONV_MAX_C and kh * kw <= 64:
        # few outputs: dot products along the depth (kernels.c), not the outer-product tile
        oc4 = _round_up(oc, 4)
        rows = ctx.weight(w, "narrow_rows", lambda a: np.pad(a.transpose(0, 2, 3, 1).reshape(oc, kdim),
                                                             ((0, oc4 - oc), (0, 0))).reshape(-1), (oc4 * kdim,))
        nb = None if b is None or b.const is None else \
            ctx.weight(b, "bias4", lambda a: np.pad(a.reshape(-1), (0, oc4 - oc)), (oc4,))
        y = e.conv_narrow(ctx.tensor_nhwc(x), rows, nb, oc, k, s, pb, pe, d)
        return y if b is None or nb is not None else e.binary(Op.ADD, y, ctx.tensor(b))
    packed_len = _round_up(oc, _core.GEMM_PANEL) * kdim
    # rows (ky, kx, c) with c fastest, as the im2col kernel lays out a pixel's patch
    wt = ctx.weight(w, "gemm_packed", lambda a: packed_weight(a.transpose(0, 2, 3, 1).reshape(oc, kdim)),
                    (packed_len,))
    xt = ctx.tensor_nhwc(x)
    if k == (1, 1) and s == (1, 1) and not any(pb + pe):
        y = e.reshape(e.gemm_packed(e.reshape(xt, (c, wd * h * n)), wt, bias, oc), (oc, wd, h, n))
    elif c * kw <= RUNS_MAX_C and c < RUNS_BELOW_C and kw > 1 and d[0] == 1 and kh <= 64:
        # a stem over few channels (RGB): taps of c floats left the tile mostly loop overhead;
        # pixels padded in width, each row of kw taps read as one run of kw * c floats
        runs = e.pixel_runs(e.pad(xt, (0, 0, pb[0], pe[0], 0, 0, 0, 0)), kw)
        y = e.conv_packed(runs, wt, bias, oc, (1, kh), s, (0, pb[1]), (0, pe[1]), (1, d[1]))
    elif c <= _core.CONV_MAX_C and kh * kw <= 64:
        # implicit GEMM: the kernel reads each tap's input pixel in place (a patch matrix
        # outgrows the caches at batch 8 and costs a full write and read)
        y = e.conv_packed(xt, wt, bias, oc, k, s, pb, pe, d)
    else:
        cols = e.im2col_nhwc(xt, k, s, pb, pe, d)
        ow, oh = cols.ne[1], cols.ne[2]
        y = e.reshape(e.gemm_packed(e.reshape(cols, (kdim, ow * oh * n)), wt, bias, oc), (oc, ow, oh, n))
    if b is not None and bias is None:  # a bias computed at run time
        y = e.binary(Op.ADD, y, ctx.tensor(b))
    return y


def _typed_weight_conv(ctx, x, w, b, wtype: int, k, s, pb, pe, d, place: int = _core.PLACE_CPU):
    """A dense conv whose weight is stored as ggml type ``wtype`` (Session(weights=...)): ggml's
    matmul kernels for that type over the channels-last activation itself (1x1, stride 1) or
    over patches gathered by our im2col kernel; bias, residual and activation after, in one pass."""
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    kdim = c * kh * kw
    e = ctx.e
    xt = ctx.tensor_nhwc(x)
    if k == (1, 1) and s == (1, 1) and not any(pb + pe):
        cols, ow, oh = xt, wd, h
    else:
        cols = e.im2col_nhwc(xt, k, s, pb, pe, d)
        ow, oh = cols.ne[1], cols.ne[2]
    # rows (ky, kx, c) with c fastest, as the im2col kernel lays out a pixel's patch
    y = weight_rows_times(ctx, w, "conv_rows", lambda a: a.transpose(0, 2, 3, 1).reshape(oc, kdim), oc, kdim,
                          e.reshape(cols, (kdim, ow * oh * n)), wtype, place, pad_rows=False)
    y = e.reshape(y, (oc, ow, oh, n))
    if b is not None and b.const is not None:  # one pass that a residual Add and activation join
        return e.epilogue(y, _bias_panels(ctx, b, oc))
    return y if b is None else e.binary(Op.ADD, y, ctx.tensor(b))


@register("Conv", since=1)
def lower_conv(ctx, node, inputs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    x, one_d = as_2d(ctx, x, "Conv")
    if w.rank != x.rank - (1 if one_d else 0) or w.rank not in (3, 4):
        raise ShapeError(f"{node.describe()}: weight {w.shape} does not match input {x.shape}")
    if one_d:
        w = reshape_value(ctx, w, w.shape[:2] + (1,) + w.shape[2:])
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    group = int(ctx.attr("group", 1))
    strides = list(ctx.attr("strides", [1] * (2 - one_d)))
    dil = list(ctx.attr("dilations", [1] * (2 - one_d)))
    if one_d:
        strides, dil = [1] + strides, [1] + dil
    kshape = ctx.attr("kernel_shape")
    if kshape is not None and list(kshape) != ([kw] if one_d else [kh, kw]):
        raise ShapeError(f"{node.describe()}: kernel_shape {kshape} does not match weight {w.shape}")
    if group < 1 or c % group or oc % group or cg != c // group:
        raise ShapeError(f"{node.describe()}: input {x.shape}, weight {w.shape} and group={group} disagree")
    begin, end = spatial_pads(ctx, (h, wd)[one_d:], (kh, kw)[one_d:], strides[one_d:], dil[one_d:])
    if one_d:
        begin, end = [0] + begin, [0] + end
    e = ctx.e
    if not one_d and w.const is not None:
        if b is not None:
            _check_bias(node, b, oc)
        y = _conv_nhwc(ctx, x, w, b, group, strides, dil, begin, end)
        if y is not None:
            return [ctx.output(y, (n, oc, y.ne[2], y.ne[1]), layout=NHWC)]
    xt, pad = _pad_to_symmetric(ctx, ctx.tensor(x), begin, end)
    s, d = (strides[1], strides[0]), (dil[1], dil[0])

    if group == c and oc == c and cg == 1:
        y = e.conv_depthwise(ctx.tensor(w), xt, s, pad, d)
    else:
        outs = []
        wt = ctx.tensor(w)
        for g in range(group):
            xg, wg = xt, wt
            if group > 1:
                xg = e.view(xt, (xt.ne[0], xt.ne[1], cg, xt.ne[3]), g * cg * xt.ne[0] * xt.ne[1])
                wg = e.view(wt, (kw, kh, cg, oc // group), g * (oc // group) * cg * kh * kw)
            outs.append(_conv_im2col(ctx, wg, xg, s, pad, d))
        y = e.concat_along(outs, 2) if len(outs) > 1 else outs[0]
    if b is not None:
        _check_bias(node, b, oc)
        if b.const is not None:
            bt = channel_rows(ctx, b, y.ne[0])
        else:
            bt = e.reshape(ctx.tensor(b), (1, 1, oc, 1))
        y = e.binary(Op.ADD, y, bt)
    shape = (n, oc, y.ne[1], y.ne[0])
    out = ctx.output(y, shape)
    if one_d:
        out = reshape_value(ctx, out, (n, oc, y.ne[0]))
    return [out]


def channel_rows(ctx, v, width: int):
    """Per-channel constant [C] stored as [C, 1, width]: ggml adds or multiplies whole rows when
    the second operand's row is as long as the first's, and falls back to a slow per-element
    loop for a [C, 1, 1] operand."""
    c = int(math.prod(v.shape))
    return ctx.weight(v, f"rows{width}", lambda a: np.ascontiguousarray(
        np.broadcast_to(a.reshape(c, 1, 1), (c, 1, width))), (c, 1, width))


def _conv_im2col(ctx, wt, xt, s, p, d):
    """Convolution as im2col + one matmul: [W, H, C, N] * [KW, KH, C, OC] -> [OW, OH, OC, N]."""
    e = ctx.e
    cols = e.im2col(wt, xt, s, p, d)                      # [C*KH*KW, OW, OH, N]
    kdim, ow, oh, n = cols.ne
    oc = wt.ne[3]
    cols2 = e.reshape(cols, (kdim, ow * oh * n))
    w2 = e.reshape(wt, (kdim, oc))
    y = e.mul_mat(cols2, w2, choose_placement(oc, ow * oh * n, kdim))   # [OW*OH*N, OC]
    if n == 1:
        return e.reshape(y, (ow, oh, oc, 1))
    return e.permute(e.reshape(y, (ow, oh, n, oc)), (0, 1, 3, 2))




def _transpose_pads(ctx, in_hw, kernel, strides, dil, out_pad):
    """(begin, end) pads per spatial dim of a ConvTranspose, from pads, or from output_shape
    or auto_pad (which fix the output size and split the padding this needs)."""
    n = len(in_hw)
    full = [strides[i] * (in_hw[i] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1 for i in range(n)]
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    out_shape = ctx.attr("output_shape")
    upper = auto_pad == "SAME_UPPER"
    if out_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # in * stride outputs, but never below the unpadded size (onnxruntime pads, never crops)
        total = [max(0, full[i] - in_hw[i] * strides[i]) for i in range(n)]
        begin = [t // 2 if upper else t - t // 2 for t in total]
        return begin, [t - b for t, b in zip(total, begin)]
    if out_shape is not None:
        out_shape = list(out_shape)[-n:]
        if len(out_shape) != n:
            raise ShapeError(f"{ctx.node.describe()}: output_shape {out_shape} for {n} spatial dims")
        total = [full[i] - out_shape[i] for i in range(n)]
        begin = [t // 2 if upper else t - t // 2 for t in total]
        return begin, [t - b for t, b in zip(total, begin)]
    return explicit_pads(ctx, n, auto_pad)


def _transposed_packed_weight(w: np.ndarray) -> np.ndarray:
    """ConvTranspose weight [C, OC, KH, KW] as a packed GEMM weight of KH*KW*OC outputs (rows
    (ky, kx, oc), oc fastest, as col2im reads them) over depth C."""
    c, oc, kh, kw = w.shape
    return packed_weight(w.transpose(2, 3, 1, 0).reshape(kh * kw * oc, c))


@register("ConvTranspose", since=1)
def lower_conv_transpose(ctx, node, inputs):
    """A GEMM of every input pixel with the weight (our packed kernel: each pixel's KH*KW*OC
    contributions), then col2im gathers them into the output pixels (+ bias); channels-last."""
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    x, one_d = as_2d(ctx, x, "ConvTranspose")
    if w.rank != x.rank - (1 if one_d else 0):
        raise ShapeError(f"{node.describe()}: weight {w.shape} does not match input {x.shape}")
    if w.const is None:
        ctx.unsupported("a weight computed at run time")
    if one_d:
        w = reshape_value(ctx, w, w.shape[:2] + (1,) + w.shape[2:])
    n, c, h, wd = x.shape
    cw, ocg, kh, kw = w.shape
    group = int(ctx.attr("group", 1))
    if group < 1 or cw != c or c % group:
        raise ShapeError(f"{node.describe()}: input {x.shape}, weight {w.shape} and group={group} disagree")
    oc = ocg * group
    nsp = 2 - one_d
    strides = list(ctx.attr("strides", [1] * nsp))
    dil = list(ctx.attr("dilations", [1] * nsp))
    out_pad = list(ctx.attr("output_padding", [0] * nsp))
    kshape = ctx.attr("kernel_shape")
    if kshape is not None and list(kshape) != [kh, kw][one_d:]:
        raise ShapeError(f"{node.describe()}: kernel_shape {kshape} does not match weight {w.shape}")
    if not (len(strides) == len(dil) == len(out_pad) == nsp) or min(strides + dil) < 1 or \
            any(not 0 <= op < s for op, s in zip(out_pad, strides)):  # as onnxruntime checks it
        raise ShapeError(f"{node.describe()}: strides {strides}, dilations {dil}, output_padding {out_pad} invalid")
    if one_d:
        strides, dil, out_pad = [1] + strides, [1] + dil, [0] + out_pad
    begin, end = _transpose_pads(ctx, (h, wd)[one_d:], (kh, kw)[one_d:], strides[one_d:], dil[one_d:],
                                 out_pad[one_d:])
    if one_d:
        begin, end = [0] + begin, [0] + end
    out_hw = [strides[i] * ((h, wd)[i] - 1) + out_pad[i] + ((kh, kw)[i] - 1) * dil[i] + 1 - begin[i] - end[i]
              for i in range(2)]
    if min(out_hw) <= 0:
        raise ShapeError(f"{node.describe()}: output {out_hw} of input {x.shape} is empty")
    if b is not None:
        _check_bias(node, b, oc)
    e = ctx.e
    xt = ctx.tensor_nhwc(x)
    cg, kk = c // group, kh * kw * ocg
    k, s, d, pb = (kw, kh), (strides[1], strides[0]), (dil[1], dil[0]), (begin[1], begin[0])
    parts = []
    for g in range(group):
        wt = ctx.weight(w, f"convT_packed{g}/{group}",
                        lambda a, g=g: _transposed_packed_weight(a[g * cg:(g + 1) * cg]),
                        (_round_up(kk, _core.GEMM_PANEL) * cg,))
        xg = xt if group == 1 else e.view(xt, (cg,) + xt.ne[1:], g * cg)
        cols = e.reshape(e.gemm_packed(e.reshape(xg, (cg, wd * h * n)), wt, None, kk), (kk, wd, h, n))
        bias = None
        if b is not None:
            bias = ctx.tensor(b) if group == 1 else e.view(ctx.tensor(b), (ocg, 1, 1, 1), g * ocg)
        parts.append(e.col2im_nhwc(cols, bias, ocg, (out_hw[1], out_hw[0]), k, s, pb, d))
    y = e.concat_channels(parts)
    out = ctx.output(y, (n, oc, out_hw[0], out_hw[1]), layout=NHWC)
    if one_d:
        out = reshape_value(ctx, out, (n, oc, out_hw[1]))
    return [out]
