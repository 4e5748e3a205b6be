"""Pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool."""
from __future__ import annotations

import math

import numpy as np

from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
from ggonnx.ops.context import NHWC
from ggonnx.ops.conv import as_2d, spatial_pads
from ggonnx.ops.registry import register
from ggonnx.ops.shape import reshape_value


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
    x, one_d = as_2d(ctx, inputs[0], node.op_type)
    n, c, h, w = x.shape
    kshape = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides", [1] * len(kshape)))
    dil = list(ctx.attr("dilations", [1] * len(kshape)))
    if ctx.attr("storage_order", 0) != 0:
        ctx.unsupported("storage_order=1")
    if one_d:
        kshape, strides, dil = [1] + kshape, [1] + strides, [1] + dil
    begin, end = spatial_pads(ctx, (h, w)[one_d:], kshape[one_d:], strides[one_d:], dil[one_d:])
    if one_d:
        begin, end = [0] + begin, [0] + end
    ceil_mode = ctx.attr("ceil_mode", 0)
    in_hw = (h, w)
    out_hw = [_pool_out(in_hw[i], kshape[i], strides[i], begin[i], end[i], dil[i], ceil_mode) for i in range(2)]
    if min(out_hw) <= 0:
        raise ShapeError(f"{node.describe()}: output would be empty for input {x.shape}, kernel {kshape}")
    count_pad = op == Op.POOL_AVG and ctx.attr("count_include_pad", 0)
    if ctx.is_nhwc(x) or any(v != 1 for v in dil):
        # our threaded channels-last kernel: any pads, ceil_mode and dilation (ggml's has none)
        mode = 0 if op == Op.POOL_MAX else 2 if count_pad else 1
        y = ctx.e.pool_nhwc(ctx.tensor_nhwc(x), (out_hw[1], out_hw[0]), (kshape[1], kshape[0]),
                            (strides[1], strides[0]), (begin[1], begin[0]), (end[1], end[0]), (dil[1], dil[0]), mode)
        out = ctx.output(y, (n, c, out_hw[0], out_hw[1]), layout=NHWC)
        return [reshape_value(ctx, out, (n, c, out_hw[1])) if one_d else out]
    # padding the windows actually read past the end
    end_eff = [max(0, (out_hw[i] - 1) * strides[i] + kshape[i] - in_hw[i] - begin[i]) for i in range(2)]
    e = ctx.e
    xt = ctx.tensor(x)
    k, s = (kshape[1], kshape[0]), (strides[1], strides[0])
    if begin == end_eff and (op == Op.POOL_MAX or count_pad or not any(begin)):
        y = e.pool2d(op, xt, k, s, (begin[1], begin[0]))   # ggml pads symmetrically, averages over k
    else:
        xt = e.pad(xt, (begin[1], end_eff[1], begin[0], end_eff[0], 0, 0, 0, 0))
        if op == Op.POOL_MAX:  # padding must never win the max
            mask = np.zeros((xt.ne[1], xt.ne[0]), dtype=np.float32)
            lowest = -np.finfo(np.float32).max   # as the kernels start every window
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


def _global_pool_nhwc(ctx, x, mode: int):
    """Global max (mode 0) or average (1) pool of a rank-3/4 value with our channels-last kernel;
    the [C, 1, 1, N] result is the same memory as the plain [N, C, 1(, 1)] output."""
    n, c = x.shape[:2]
    if ctx.is_nhwc(x):
        t = x.gt
    else:  # plain [W, H, C, N] (rank 3: H = 1) to channels-last
        spatial = x.shape[2:]
        t = ctx.e.permute(ctx.e.reshape(ctx.tensor(x), (spatial[-1], int(math.prod(spatial[:-1])), c, n)),
                          (1, 2, 0, 3))
    y = ctx.e.global_pool_nhwc(t, mode)
    shape = (n, c) + (1,) * (x.rank - 2)
    if x.rank == 4:  # stays channels-last for the ops after it (a reshape away from plain)
        return [ctx.output(y, shape, layout=NHWC)]
    return [ctx.output(ctx.e.reshape(y, tuple(reversed(shape))), shape)]


@register("GlobalMaxPool", since=1)
def lower_global_max_pool(ctx, node, inputs):
    x = inputs[0]
    if x.rank < 3 or x.rank > 4:
        ctx.unsupported(f"input of rank {x.rank} {x.shape}")
    return _global_pool_nhwc(ctx, x, 0)


@register("GlobalAveragePool", since=1)
def lower_global_average_pool(ctx, node, inputs):
    x = inputs[0]
    if x.rank < 3 or x.rank > 4:
        ctx.unsupported(f"input of rank {x.rank} {x.shape}")
    if ctx.is_nhwc(x):
        return _global_pool_nhwc(ctx, x, 1)
    n, c = x.shape[:2]
    spatial = int(math.prod(x.shape[2:]))
    e = ctx.e
    y = e.mean_rows(e.reshape(ctx.tensor(x), (spatial, c, n, 1)))
    shape = (n, c) + (1,) * (x.rank - 2)
    return [ctx.output(e.reshape(y, tuple(reversed(shape))), shape)]
