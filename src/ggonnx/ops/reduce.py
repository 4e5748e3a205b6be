"""Reductions and normalizations: ReduceMean, ReduceSum, ArgMax, ArgMin, LayerNormalization, LRN."""
from __future__ import annotations

import math

import numpy as np

from ggonnx._core import Unary
from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
from ggonnx.ops.registry import register
from ggonnx.ops.shape import onnx_perm_to_ggml


def _reduce_axes(ctx, node, inputs):
    """Axes from the optional input (older attribute forms are normalised at import)."""
    x = inputs[0]
    axes = None
    if len(inputs) > 1 and inputs[1] is not None:
        axes = [int(a) for a in np.atleast_1d(ctx.const_input(inputs[1], "axes"))]
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return []
        return list(range(x.rank))
    out = sorted({a + x.rank if a < 0 else a for a in axes})
    if any(not 0 <= a < x.rank for a in out):
        raise ShapeError(f"{node.describe()}: axes {axes} out of range for {x.shape}")
    return out


def _reduce(ctx, node, inputs, op):
    x = inputs[0]
    axes = _reduce_axes(ctx, node, inputs)
    if not axes:
        return [x.alias(node.outputs[0])]
    e = ctx.e
    t = ctx.tensor(x)
    kept = [a for a in range(x.rank) if a not in axes]
    perm = kept + axes
    if perm != list(range(x.rank)):  # move the reduced axes last (innermost in ggml)
        t = e.permute(t, onnx_perm_to_ggml(perm, x.rank))
    inner = int(math.prod([x.shape[a] for a in axes]))
    outer = int(math.prod([x.shape[a] for a in kept]))
    t = e.reshape(t, (inner, outer))
    y = e.mean_rows(t) if op == Op.MEAN else e.sum_rows(t)
    keep = ctx.attr("keepdims", 1)
    shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape)) if keep else \
        tuple(x.shape[a] for a in kept)
    return [ctx.output(e.reshape(y, tuple(reversed(shape))), shape)]


@register("ReduceMean", since=18)
def lower_reduce_mean(ctx, node, inputs):
    return _reduce(ctx, node, inputs, Op.MEAN)


@register("ReduceSum", since=13)
def lower_reduce_sum(ctx, node, inputs):
    return _reduce(ctx, node, inputs, Op.SUM_ROWS)


def _arg_extreme(ctx, node, inputs, is_min: bool):
    """The index of the extreme along ``axis`` as an int64 value held in ggml as exact floats,
    known to lie in [0, the axis' length): a classifier's label step stays in the island."""
    x = inputs[0]
    if x.rank == 0 or x.dtype != np.float32:
        ctx.unsupported(f"input {x.dtype} of rank {x.rank}")
    axis = int(ctx.attr("axis", 0))
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"{node.describe()}: axis {axis} is out of range for an input of rank {x.rank}")
    axis %= x.rank
    if x.shape[axis] >= 2**24:  # float32 holds integers exactly up to 2**24
        ctx.unsupported(f"{x.shape[axis]} candidates along axis {axis}")
    e = ctx.e
    t = ctx.tensor(x)
    kept = [a for a in range(x.rank) if a != axis]
    if axis != x.rank - 1:  # the reduced axis innermost (a view: the kernel reads any strides)
        t = e.permute(t, onnx_perm_to_ggml(kept + [axis], x.rank))
    y = e.arg_extreme(t, is_min, bool(ctx.attr("select_last_index", 0)))
    shape = tuple(1 if a == axis else d for a, d in enumerate(x.shape)) if ctx.attr("keepdims", 1) else \
        tuple(x.shape[a] for a in kept)
    out = ctx.output(e.reshape(y, tuple(reversed(shape))) if shape else e.reshape(y, (1,)), shape)
    out.dtype, out.bound = np.dtype(np.int64), x.shape[axis]
    return [out]


@register("ArgMax", since=1)
def lower_arg_max(ctx, node, inputs):
    return _arg_extreme(ctx, node, inputs, is_min=False)


@register("ArgMin", since=1)
def lower_arg_min(ctx, node, inputs):
    return _arg_extreme(ctx, node, inputs, is_min=True)


def _normalize(ctx, node, inputs, rms: bool):
    """LayerNormalization / RMSNormalization over the dims from ``axis`` on: ggml_norm or
    ggml_rms_norm over them as one row, then scale (and bias)."""
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if any(node.outputs[1:]):
        ctx.unsupported("the Mean and InvStdDev outputs")
    axis = int(ctx.attr("axis", -1))
    axis = axis + x.rank if axis < 0 else axis
    if not 0 <= axis < x.rank:
        raise ShapeError(f"{node.describe()}: axis {ctx.attr('axis')} out of range for {x.shape}")
    inner = int(math.prod(x.shape[axis:]))
    e = ctx.e
    t = e.reshape(ctx.tensor(x), (inner, int(math.prod(x.shape[:axis]))))
    eps = float(ctx.attr("epsilon", 1e-5))
    if not rms and all(p is None or p.shape[-(x.rank - axis):] == x.shape[axis:] and math.prod(p.shape) == inner
                       for p in (scale, bias)):
        # full-size scale and bias (a transformer's): one pass (ggml's norm, mul, add were three nodes)
        y = e.norm_affine(t, e.reshape(ctx.tensor(scale), (inner,)),
                          None if bias is None else e.reshape(ctx.tensor(bias), (inner,)), eps)
        return [ctx.output(e.reshape(y, tuple(reversed(x.shape))), x.shape)]
    y = e.reshape(e.rms_norm(t, eps) if rms else e.norm(t, eps), tuple(reversed(x.shape)))
    for param, op in ((scale, Op.MUL), (bias, Op.ADD)):
        if param is None:
            continue
        try:
            if np.broadcast_shapes(param.shape, x.shape[axis:]) != x.shape[axis:]:
                raise ValueError
        except ValueError:
            raise ShapeError(f"{node.describe()}: {param.shape} does not broadcast to {x.shape[axis:]}") from None
        y = e.binary(op, y, ctx.tensor(param))
    return [ctx.output(y, x.shape)]


@register("LayerNormalization", since=17)
def lower_layer_norm(ctx, node, inputs):
    return _normalize(ctx, node, inputs, rms=False)


@register("RMSNormalization", since=23)
def lower_rms_norm(ctx, node, inputs):
    return _normalize(ctx, node, inputs[:2], rms=True)


@register("LRN", since=1)
def lower_lrn(ctx, node, inputs):
    """x / (bias + alpha/size * sum of x^2 over a window of channels)^beta."""
    x = inputs[0]
    if x.rank != 4:
        ctx.unsupported(f"rank {x.rank} input")
    n, c, h, w = x.shape
    size = int(ctx.attr("size"))
    alpha, beta, bias = float(ctx.attr("alpha", 1e-4)), float(ctx.attr("beta", 0.75)), float(ctx.attr("bias", 1.0))
    lo = (size - 1) // 2
    e = ctx.e
    tx = ctx.tensor(x)
    sq = e.reshape(e.unary_kind(Unary.SQR, tx), (w * h, c, n, 1))
    sq = e.pad(sq, (0, 0, lo, size - 1 - lo, 0, 0, 0, 0))
    avg = e.pool2d(Op.POOL_AVG, sq, (1, size), (1, 1), (0, 0))             # window sum / size
    d = e.scale_bias(avg, alpha, bias)                                        # bias + alpha/size * sum
    inv = e.unary_kind(Unary.EXP, e.scale_bias(e.unary_kind(Unary.LOG, d), -beta, 0.0))  # d^-beta
    y = e.binary(Op.MUL, tx, e.reshape(inv, tx.ne))
    return [ctx.output(y, x.shape)]
