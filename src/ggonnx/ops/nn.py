"""Neural-network ops: Conv, MaxPool, GlobalAveragePool, Softmax."""
from __future__ import annotations

import math

import numpy as np

from ggonnx._core import Unary
from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
from ggonnx.ops.matmul import choose_placement
from ggonnx.ops.registry import register
from ggonnx.ops.shape import reshape_value


def _spatial_pads(ctx, in_hw, kernel, strides, dilations):
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
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad != "NOTSET":
        ctx.unsupported(f"auto_pad={auto_pad!r}")
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    if len(pads) != 2 * n or any(p < 0 for p in pads):
        raise ShapeError(f"{ctx.node.describe()}: pads {pads} invalid for {n} spatial dims")
    return pads[:n], pads[n:]


def _as_2d(ctx, x, what):
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


@register("Conv", since=1)
def lower_conv(ctx, node, inputs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    x, one_d = _as_2d(ctx, x, "Conv")
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
    begin, end = _spatial_pads(ctx, (h, wd)[one_d:], (kh, kw)[one_d:], strides[one_d:], dil[one_d:])
    if one_d:
        begin, end = [0] + begin, [0] + end
    e = ctx.e
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
        y = outs[0]
        for o in outs[1:]:
            y = e.concat(y, o, 2)
    if b is not None:
        if b.shape != (oc,):
            raise ShapeError(f"{node.describe()}: bias {b.shape} does not match {oc} output channels")
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
    c = int(np.prod(v.shape))
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


def _pool_out(in_size, k, s, pb, pe, d, ceil_mode):
    span = (k - 1) * d + 1
    if ceil_mode:
        out = math.ceil((in_size + pb + pe - span) / s) + 1
        if (out - 1) * s >= in_size + pb:   # the last window must start inside the input or begin pad
            out -= 1
    else:
        out = (in_size + pb + pe - span) // s + 1
    return out


def _lower_pool(ctx, node, inputs, op):
    """MaxPool / AveragePool over 1-D or 2-D windows."""
    if len(node.outputs) > 1 and node.outputs[1]:
        ctx.unsupported("the Indices output")
    x, one_d = _as_2d(ctx, inputs[0], node.op_type)
    n, c, h, w = x.shape
    kshape = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides", [1] * len(kshape)))
    dil = list(ctx.attr("dilations", [1] * len(kshape)))
    if ctx.attr("storage_order", 0) != 0:
        ctx.unsupported("storage_order=1")
    if any(v != 1 for v in dil):
        ctx.unsupported(f"dilations {dil}")
    if one_d:
        kshape, strides, dil = [1] + kshape, [1] + strides, [1] + dil
    begin, end = _spatial_pads(ctx, (h, w)[one_d:], kshape[one_d:], strides[one_d:], dil[one_d:])
    if one_d:
        begin, end = [0] + begin, [0] + end
    ceil_mode = ctx.attr("ceil_mode", 0)
    in_hw = (h, w)
    out_hw = [_pool_out(in_hw[i], kshape[i], strides[i], begin[i], end[i], 1, ceil_mode) for i in range(2)]
    if min(out_hw) <= 0:
        raise ShapeError(f"{node.describe()}: output would be empty for input {x.shape}, kernel {kshape}")
    # padding the windows actually read past the end
    end_eff = [max(0, (out_hw[i] - 1) * strides[i] + kshape[i] - in_hw[i] - begin[i]) for i in range(2)]
    e = ctx.e
    xt = ctx.tensor(x)
    k, s = (kshape[1], kshape[0]), (strides[1], strides[0])
    count_pad = op == Op.POOL_AVG and ctx.attr("count_include_pad", 0)
    if begin == end_eff and (op == Op.POOL_MAX or count_pad or not any(begin)):
        y = e.pool2d(op, xt, k, s, (begin[1], begin[0]))   # ggml pads symmetrically, averages over k
    else:
        xt = e.pad(xt, (begin[1], end_eff[1], begin[0], end_eff[0], 0, 0, 0, 0))
        if op == Op.POOL_MAX:  # padding must never win the max
            mask = np.zeros((xt.ne[1], xt.ne[0]), dtype=np.float32)
            lowest = -np.finfo(np.float32).max
            mask[:begin[0], :] = mask[xt.ne[1] - end_eff[0]:, :] = lowest
            mask[:, :begin[1]] = mask[:, xt.ne[0] - end_eff[1]:] = lowest
            xt = e.binary(Op.ADD, xt, e.const(mask))
        y = e.pool2d(op, xt, k, s, (0, 0))
    if (y.ne[1], y.ne[0]) != tuple(out_hw):
        y = e.view(y, (out_hw[1], out_hw[0], c, n), 0)
    if op == Op.POOL_AVG:
        counted_end = end if count_pad else [0, 0]
        counted_begin = begin if count_pad else [0, 0]
        scale = _avg_pool_rescale(in_hw, out_hw, kshape, strides, begin, counted_begin, counted_end)
        if scale is not None:
            y = e.binary(Op.MUL, y, e.const(scale))
    out = ctx.output(y, (n, c, out_hw[0], out_hw[1]))
    if one_d:
        out = reshape_value(ctx, out, (n, c, out_hw[1]))
    return [out]


def _avg_pool_rescale(in_hw, out_hw, kshape, strides, begin, counted_begin, counted_end):
    """ggml divides every window by its full size; ONNX divides by the positions counted
    (the input, plus the explicit pads when count_include_pad). Returns k/count per output
    position, or None where that is 1 everywhere."""
    factors = []
    for i in range(2):
        start = np.arange(out_hw[i]) * strides[i] - begin[i]
        lo = np.maximum(start, -counted_begin[i])
        hi = np.minimum(start + kshape[i], in_hw[i] + counted_end[i])
        factors.append(kshape[i] / np.maximum(hi - lo, 1))
    scale = np.outer(factors[0], factors[1]).astype(np.float32)
    return None if np.all(scale == 1.0) else scale


@register("MaxPool", since=1)
def lower_maxpool(ctx, node, inputs):
    return _lower_pool(ctx, node, inputs, Op.POOL_MAX)


@register("AveragePool", since=1)
def lower_averagepool(ctx, node, inputs):
    return _lower_pool(ctx, node, inputs, Op.POOL_AVG)


@register("BatchNormalization", since=7)
def lower_batchnorm(ctx, node, inputs):
    """Inference batch norm: y = x * s + t with s = scale / sqrt(var + eps), t = B - mean * s."""
    x, scale, bias, mean, var = inputs[:5]
    if ctx.attr("training_mode", 0) or (len(node.outputs) > 1 and any(node.outputs[1:])):
        ctx.unsupported("training mode")
    params = (scale, bias, mean, var)
    if x.rank < 2:
        raise ShapeError(f"{node.describe()}: input {x.shape} has no channel axis")
    c = x.shape[1]
    if any(p is None or int(np.prod(p.shape)) != c for p in params):
        raise ShapeError(f"{node.describe()}: parameters {[p and p.shape for p in params]} do not match "
                         f"{c} channels")
    eps = float(ctx.attr("epsilon", 1e-5))
    pshape = (c,) + (1,) * (x.rank - 2)
    e = ctx.e
    if all(p.const is not None for p in params):
        static = all(p.static for p in params)
        if x.rank >= 3:  # whole rows of the innermost dim (see channel_rows)
            pshape = (c,) + (1,) * (x.rank - 3) + (x.shape[-1],)
        s = scale.const.astype(np.float64).reshape((c,) + (1,) * (x.rank - 2)) / \
            np.sqrt(var.const.astype(np.float64).reshape((c,) + (1,) * (x.rank - 2)) + eps)
        t = bias.const.reshape(s.shape) - mean.const.reshape(s.shape) * s
        layout = f"bn{pshape}"
        mul = ctx.derived_weight(node.outputs[0], layout + "mul",
                                 lambda: np.broadcast_to(s, pshape).astype(np.float32), pshape, static)
        add = ctx.derived_weight(node.outputs[0], layout + "add",
                                 lambda: np.broadcast_to(t, pshape).astype(np.float32), pshape, static)
        y = e.binary(Op.ADD, e.binary(Op.MUL, ctx.tensor(x), mul), add)
    else:  # parameters computed at run time: the same formula in the graph
        ne = tuple(reversed(pshape))
        g_scale, g_bias, g_mean, g_var = (e.reshape(ctx.tensor(p), ne) for p in params)
        denom = e.unary_kind(Unary.SQRT, e.scale_bias(g_var, 1.0, eps))
        y = e.binary(Op.DIV, e.binary(Op.MUL, e.binary(Op.SUB, ctx.tensor(x), g_mean), g_scale), denom)
        y = e.binary(Op.ADD, y, g_bias)
    return [ctx.output(y, x.shape)]


@register("GlobalAveragePool", since=1)
def lower_global_average_pool(ctx, node, inputs):
    x = inputs[0]
    if x.rank < 3 or x.rank > 4:
        ctx.unsupported(f"input of rank {x.rank} {x.shape}")
    n, c = x.shape[:2]
    spatial = int(np.prod(x.shape[2:]))
    e = ctx.e
    y = e.mean_rows(e.reshape(ctx.tensor(x), (spatial, c, n, 1)))
    shape = (n, c) + (1,) * (x.rank - 2)
    return [ctx.output(e.reshape(y, tuple(reversed(shape))), shape)]


@register("Softmax", since=1)
def lower_softmax(ctx, node, inputs):
    x = inputs[0]
    rank = x.rank
    axis = ctx.attr("axis", -1 if node.opset >= 13 else 1)
    if axis < 0:
        axis += rank
    if not 0 <= axis < max(rank, 1):
        raise ShapeError(f"{node.describe()}: axis {ctx.attr('axis')} out of range for {x.shape}")
    e = ctx.e
    t = ctx.tensor(x)
    if node.opset < 13:
        # softmax over the flattened [prod(shape[:axis]), prod(shape[axis:])] matrix
        inner = int(np.prod(x.shape[axis:]))
        y = e.soft_max(e.reshape(t, (inner, int(np.prod(x.shape[:axis])))))
        return [ctx.output(e.reshape(y, tuple(reversed(x.shape))), x.shape)]
    gaxis = rank - 1 - axis
    if gaxis == 0:
        return [ctx.output(e.soft_max(t), x.shape)]
    swap = list(range(4))
    swap[0], swap[gaxis] = gaxis, 0
    y = e.permute(e.soft_max(e.permute(t, tuple(swap))), tuple(swap))
    return [ctx.output(y, x.shape)]
