"""Neural-network ops: BatchNormalization, Softmax."""
from __future__ import annotations

import math

import numpy as np

from ggonnx._core import Unary
from ggonnx.emitter import Op
from ggonnx.ops.context import NHWC
from ggonnx.errors import ShapeError
from ggonnx.ops.registry import register


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
    if any(p is None or int(math.prod(p.shape)) != c for p in params):
        raise ShapeError(f"{node.describe()}: parameters {[p and p.shape for p in params]} do not match "
                         f"{c} channels")
    eps = float(ctx.attr("epsilon", 1e-5))
    pshape = (c,) + (1,) * (x.rank - 2)
    e = ctx.e
    if all(p.const is not None for p in params):
        static = all(p.static for p in params)
        nhwc = ctx.is_nhwc(x)
        if nhwc:  # channels are the rows' innermost dim
            pshape = (c,)
        elif x.rank >= 3:  # whole rows of the innermost dim (see conv.channel_rows)
            pshape = (c,) + (1,) * (x.rank - 3) + (x.shape[-1],)
        s = scale.const.astype(np.float64).reshape((c,) + (1,) * (x.rank - 2)) / \
            np.sqrt(var.const.astype(np.float64).reshape((c,) + (1,) * (x.rank - 2)) + eps)
        t = bias.const.reshape(s.shape) - mean.const.reshape(s.shape) * s
        if nhwc:
            s, t = s.reshape(c), t.reshape(c)
        layout = f"bn{pshape}"
        mul = ctx.derived_weight(node.outputs[0], layout + "mul",
                                 lambda: np.broadcast_to(s, pshape).astype(np.float32), pshape, static)
        add = ctx.derived_weight(node.outputs[0], layout + "add",
                                 lambda: np.broadcast_to(t, pshape).astype(np.float32), pshape, static)
        if nhwc:
            return [ctx.output(e.binary(Op.ADD, e.binary(Op.MUL, x.gt, mul), add), x.shape, layout=NHWC)]
        y = e.binary(Op.ADD, e.binary(Op.MUL, ctx.tensor(x), mul), add)
    else:  # parameters computed at run time: the same formula in the graph
        ne = tuple(reversed(pshape))
        g_scale, g_bias, g_mean, g_var = (e.reshape(ctx.tensor(p), ne) for p in params)
        denom = e.unary_kind(Unary.SQRT, e.scale_bias(g_var, 1.0, eps))
        y = e.binary(Op.DIV, e.binary(Op.MUL, e.binary(Op.SUB, ctx.tensor(x), g_mean), g_scale), denom)
        y = e.binary(Op.ADD, y, g_bias)
    return [ctx.output(y, x.shape)]


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
        inner = int(math.prod(x.shape[axis:]))
        y = e.soft_max(e.reshape(t, (inner, int(math.prod(x.shape[:axis])))))
        return [ctx.output(e.reshape(y, tuple(reversed(x.shape))), x.shape)]
    gaxis = rank - 1 - axis
    if gaxis == 0:  # a scaling Mul and a mask Add before it (attention's) run in the softmax's passes
        src, mask, scale = t, None, 1.0
        if ctx.sole_reader(x):
            src, mask = e.masked(t)
            src, scale = e.unscaled(src)
        return [ctx.output(e.soft_max(src, scale, mask), x.shape)]
    swap = list(range(4))
    swap[0], swap[gaxis] = gaxis, 0
    y = e.permute(e.soft_max(e.permute(t, tuple(swap))), tuple(swap))
    return [ctx.output(y, x.shape)]
