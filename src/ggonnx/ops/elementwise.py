"""Elementwise ops: arithmetic with numpy broadcasting, activations."""
from __future__ import annotations

import numpy as np

from ggonnx.emitter import Op
from ggonnx.errors import ShapeError
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
