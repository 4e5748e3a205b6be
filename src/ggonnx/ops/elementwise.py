"""Elementwise ops: arithmetic with numpy broadcasting, activations."""
from __future__ import annotations

import numpy as np

from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
from ggonnx.ops.context import Value
from ggonnx.ops.registry import register


def _broadcast_shape(ctx, a, b) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ShapeError(f"{ctx.node.describe()}: input shapes {a.shape} and {b.shape} do not broadcast") from None


def _binary(op):
    def lower(ctx, node, inputs):
        a, b = inputs
        shape = _broadcast_shape(ctx, a, b)
        return [ctx.output(ctx.e.binary(op, ctx.tensor(a), ctx.tensor(b)), shape)]
    return lower


for _name, _op in (("Add", Op.ADD), ("Sub", Op.SUB), ("Mul", Op.MUL), ("Div", Op.DIV)):
    register(_name, since=7)(_binary(_op))


def _unary(op):
    def lower(ctx, node, inputs):
        x = inputs[0]
        return [ctx.output(ctx.e.unary(op, ctx.tensor(x)), x.shape)]
    return lower


for _name, _op in (("Relu", Op.RELU), ("Sigmoid", Op.SIGMOID), ("Tanh", Op.TANH)):
    register(_name, since=6)(_unary(_op))


@register("Sum", since=6)
def lower_sum(ctx, node, inputs):
    xs = [v for v in inputs if v is not None]
    shape = xs[0].shape
    acc = ctx.tensor(xs[0])
    for v in xs[1:]:
        shape = _broadcast_shape(ctx, Value(v.name, shape), v)
        acc = ctx.e.binary(Op.ADD, acc, ctx.tensor(v))
    return [ctx.output(acc, shape)]
