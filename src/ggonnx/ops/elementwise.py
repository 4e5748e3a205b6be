"""Elementwise ops: arithmetic with numpy broadcasting, activations."""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.emitter import Op, onnx_to_ne
from ggonnx._core import ACT_CLAMP, ACT_GELU_ERF, ACT_GELU_TANH, ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_SIGMOID, ACT_SILU, Unary
from ggonnx.errors import ShapeError
from ggonnx.ops import coalesce
from ggonnx.ops.context import NHWC, PLAIN, Value
from ggonnx.ops.registry import register


def _broadcast_shape(ctx, a, b) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ShapeError(f"{ctx.node.describe()}: input shapes {a.shape} and {b.shape} do not broadcast") from None


def _nhwc_operand(ctx, v: Value):
    """``v`` as a channels-last operand of a 4-D result, or None where that needs a copy of a
    value that is not 4-D."""
    if ctx.is_nhwc(v):
        return v.gt
    n, c, h, w = full = (1,) * (4 - v.rank) + v.shape
    if h == w == 1:  # per-channel or scalar: the same memory in both layouts
        return ctx.e.reshape(ctx.tensor(v), (c, 1, 1, n))
    if v.const is not None:
        return ctx.weight(v, "nhwc", lambda a: a.reshape(full).transpose(0, 2, 3, 1), (n, h, w, c))
    return ctx.tensor_nhwc(v) if v.rank == 4 else None


def _scalar_const(v: Value):
    if v.const is None or v.const.size != 1 or v.dtype.kind != "f":
        return None
    return float(v.const.reshape(-1)[0])


def _add_into_gemm(ctx, y: Value, other: Value, shape):
    """y + other folded into the epilogue of the packed GEMM that computed y (nothing else
    reading y): a residual of y's shape and layout, or a constant bias along y's channels (a
    MatMul's last dim, a conv's C). The sum's Value, or None."""
    if not (shape and ctx.in_island(y) and ctx.sole_reader(y) and y.shape == shape) or y.layout not in (PLAIN, NHWC):
        return None
    e = ctx.e
    if other.shape == shape and ctx.in_island(other) and other.layout == y.layout and \
            e.fuse_residual(y.gt, other.gt):
        return ctx.output(y.gt, shape, layout=y.layout)
    channels = shape[1] if y.layout == NHWC else shape[-1]
    along = (1, channels, 1, 1) if y.layout == NHWC else (channels,)
    if other.const is not None and other.const.size == channels and \
            (1,) * (len(shape) - other.rank) + other.shape in ((1,) * (len(shape) - len(along)) + along,):
        panel = _core.GEMM_PANEL
        padded = -(-channels // panel) * panel
        bias = ctx.weight(other, "bias_panels", lambda v: np.pad(v.reshape(-1), (0, padded - channels)), (padded,))
        if e.fuse_bias(y.gt, bias):
            return ctx.output(y.gt, shape, layout=y.layout)
    return None


def binary_value(ctx, op, a: Value, b: Value, shape) -> Value:
    """a (op) b with numpy broadcasting; channels-last when a 4-D operand already is."""
    if op == Op.ADD:
        fused = _add_into_gemm(ctx, a, b, shape) or _add_into_gemm(ctx, b, a, shape)
        if fused is not None:
            return fused
    if op in (Op.ADD, Op.SUB, Op.MUL) and shape == a.shape and _scalar_const(b) is not None:
        c = _scalar_const(b)   # one vectorized pass of ggml's scale_bias (exact for these ops)
        scale, bias = (c, 0.0) if op == Op.MUL else (1.0, c if op == Op.ADD else -c)
        t, layout = ctx.tensor_as_is(a)
        return ctx.output(ctx.e.scale_bias(t, scale, bias), shape, layout=layout)
    if op in (Op.ADD, Op.MUL) and shape == b.shape and _scalar_const(a) is not None:
        return binary_value(ctx, op, b, a, shape)
    if len(shape) == 4 and (ctx.is_nhwc(a) or ctx.is_nhwc(b)):
        ta, tb = _nhwc_operand(ctx, a), _nhwc_operand(ctx, b)
        if ta is not None and tb is not None:
            return ctx.output(ctx.e.binary(op, ta, tb), shape, layout=NHWC)
    if len(shape) > 4 or a.rank > 4 or b.rank > 4:  # regroup the dims into ggml's four
        grouped = coalesce.broadcast(shape, [a.shape, b.shape])
        if grouped is None:
            ctx.unsupported(f"broadcasting {a.shape} with {b.shape} needs more than 4 dims")
        _, (sa, sb) = grouped
        e = ctx.e
        y = e.binary(op, e.reshape(ctx.tensor(a), onnx_to_ne(sa)), e.reshape(ctx.tensor(b), onnx_to_ne(sb)))
        return ctx.output(e.reshape(y, onnx_to_ne(shape)), shape)
    return ctx.output(ctx.e.binary(op, ctx.tensor(a), ctx.tensor(b)), shape)


def _binary(op):
    def lower(ctx, node, inputs):
        a, b = inputs
        return [binary_value(ctx, op, a, b, _broadcast_shape(ctx, a, b))]
    return lower


for _name, _op in (("Add", Op.ADD), ("Sub", Op.SUB), ("Mul", Op.MUL), ("Div", Op.DIV)):
    register(_name, since=7, any_rank=True)(_binary(_op))


def _comparison(greater: bool):
    """Less / Greater of float32 values as step(b - a) / step(a - b): exactly 1 or 0, held as
    a bool with bound 2 (a Cast to float is then the value itself). The IEEE difference is 0
    only where a == b (ggml flushes no subnormals), is +-inf where it overflows with the right
    sign, and is NaN where either is NaN or both are one infinity: step gives 0, as a < b
    does. LessOrEqual, GreaterOrEqual and Equal would need 1 - step(), which is 1 on NaN: host."""
    def lower(ctx, node, inputs):
        a, b = inputs
        if a.dtype != np.float32 or b.dtype != np.float32:
            ctx.unsupported(f"a comparison of {a.dtype} with {b.dtype}")
        shape = _broadcast_shape(ctx, a, b)
        diff = binary_value(ctx, Op.SUB, *((a, b) if greater else (b, a)), shape)
        out = ctx.output(ctx.e.unary_kind(Unary.STEP, diff.gt), shape, layout=diff.layout)
        out.dtype, out.bound = np.dtype(bool), 2
        return [out]
    return lower


register("Less", since=7, any_rank=True)(_comparison(greater=False))
register("Greater", since=7, any_rank=True)(_comparison(greater=True))


def _shape_preserving(emit):
    """A one-input op whose ggml form is ``emit(emitter, tensor)``; elementwise, so it keeps
    the input's layout."""
    def lower(ctx, node, inputs):
        x = inputs[0]
        t, layout = ctx.tensor_as_is(x)
        return [ctx.output(emit(ctx.e, t), x.shape, layout=layout)]
    return lower


def _unary(op):
    return _shape_preserving(lambda e, t: e.unary(op, t))


def _ggml_function(kind):
    return _shape_preserving(lambda e, t: e.unary_kind(kind, t))


register("Tanh", since=6, any_rank=True)(_unary(Op.TANH))


def _in_epilogue(ctx, x, act: int, lo: float = 0.0, hi: float = 0.0):
    """The activation folded into the GEMM that computed x (a channels-last conv nobody else
    reads), or None."""
    if ctx.is_nhwc(x) and ctx.sole_reader(x) and ctx.e.fuse_activation(x.gt, act, lo, hi):
        return [ctx.output(x.gt, x.shape, layout=NHWC)]
    return None


def _activation(ctx, x, act: int, lo: float = 0.0, hi: float = 0.0):
    """An activation of ours: in the producing GEMM's epilogue, else one vectorized pass."""
    return _in_epilogue(ctx, x, act, lo, hi) or _shape_preserving(lambda e, t: e.activation(t, act, lo, hi))(
        ctx, ctx.node, [x])


@register("Relu", since=6, any_rank=True)
def lower_relu(ctx, node, inputs):
    # our clamp to [0, inf], not ggml's relu: NaN stays NaN (ggml's x > 0 ? x : 0 made it 0) and
    # inf stays inf (a clamp to the largest float made it that)
    return _activation(ctx, inputs[0], ACT_CLAMP, 0.0, float("inf"))


for _name, _kind in (("Exp", Unary.EXP), ("Log", Unary.LOG), ("Abs", Unary.ABS), ("Neg", Unary.NEG),
                     ("Sqrt", Unary.SQRT), ("Sin", Unary.SIN), ("Cos", Unary.COS), ("Floor", Unary.FLOOR),
                     ("Ceil", Unary.CEIL), ("Sign", Unary.SGN), ("Softplus", Unary.SOFTPLUS)):
    register(_name, since=6, any_rank=True)(_ggml_function(_kind))


@register("Elu", since=6, any_rank=True)
def lower_elu(ctx, node, inputs):
    if float(ctx.attr("alpha", 1.0)) != 1.0:
        ctx.unsupported("alpha != 1 (ggml's elu has alpha 1)")
    return _ggml_function(Unary.ELU)(ctx, node, inputs)


@register("Gelu", since=20, any_rank=True)
def lower_gelu(ctx, node, inputs):
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        ctx.unsupported(f"approximate={approximate!r}")
    # ours, vectorized: ggml's erf gelu calls erff per element, its tanh gelu reads an fp16 table
    return _activation(ctx, inputs[0], ACT_GELU_TANH if approximate == "tanh" else ACT_GELU_ERF)


@register("Swish", since=24, any_rank=True)
def lower_swish(ctx, node, inputs):
    """x * sigmoid(alpha * x) = silu(alpha * x) / alpha."""
    alpha = float(ctx.attr("alpha", 1.0))
    if alpha == 1.0:
        return _activation(ctx, inputs[0], ACT_SILU)
    if alpha == 0.0:
        ctx.unsupported("alpha=0")
    return _shape_preserving(lambda e, t: e.scale_bias(e.unary_kind(Unary.SILU, e.scale_bias(t, alpha)), 1 / alpha))(
        ctx, node, inputs)


@register("LeakyRelu", since=6, any_rank=True)
def lower_leaky_relu(ctx, node, inputs):
    slope = float(ctx.attr("alpha", 0.01))
    return _shape_preserving(lambda e, t: e.leaky_relu(t, slope))(ctx, node, inputs)


@register("HardSigmoid", since=6, any_rank=True)
def lower_hard_sigmoid(ctx, node, inputs):
    return _activation(ctx, inputs[0], ACT_HARDSIGMOID, float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5)))


@register("Sigmoid", since=6, any_rank=True)
def lower_sigmoid(ctx, node, inputs):
    return _activation(ctx, inputs[0], ACT_SIGMOID)


@register("HardSwish", since=14, any_rank=True)
def lower_hard_swish(ctx, node, inputs):
    return _activation(ctx, inputs[0], ACT_HARDSWISH)


@register("Clip", since=11, any_rank=True)  # older forms are normalised to this one at import
def lower_clip(ctx, node, inputs):
    x = inputs[0]
    lo = float(ctx.const_input(inputs[1], "min")) if len(inputs) > 1 and inputs[1] is not None else -np.inf
    hi = float(ctx.const_input(inputs[2], "max")) if len(inputs) > 2 and inputs[2] is not None else np.inf
    big = float(np.finfo(np.float32).max)
    lo, hi = max(lo, -big), min(hi, big)
    # min(max(x, lo), hi): with lo > hi every element is hi
    fused = _in_epilogue(ctx, x, ACT_CLAMP, min(lo, hi), hi)
    return fused or _shape_preserving(lambda e, t: e.clamp(t, min(lo, hi), hi))(ctx, node, inputs)


def _power(e, t, n: int):
    """t ** n for an integer n >= 1 by repeated squaring (exact for negative bases too)."""
    result, square = None, t
    while n:
        if n & 1:
            result = square if result is None else e.binary(Op.MUL, result, square)
        n >>= 1
        if n:
            square = e.unary_kind(Unary.SQR, square)
    return result


@register("Pow", since=7, any_rank=True)
def lower_pow(ctx, node, inputs):
    """x ** y for a constant scalar y: square roots and integer powers by multiplication (a
    negative base stays exact), exp(y log x) otherwise (NaN for a negative base, as ONNX has it)."""
    x, p = inputs
    exponent = ctx.const_input(p, "Y")
    if exponent.size != 1 or _broadcast_shape(ctx, x, p) != x.shape:
        ctx.unsupported(f"exponent of shape {p.shape} (only a scalar that keeps x's shape)")
    if x.dtype.kind != "f":
        ctx.unsupported(f"integer base of type {x.dtype}")
    value = float(exponent.reshape(-1)[0])
    if value == 1.0:
        return [x.alias(node.outputs[0])]
    if value == 0.0:  # 1 everywhere, NaN and inf included
        return [ctx.const_output(np.ones(x.shape, dtype=x.dtype))]
    t, layout = ctx.tensor_as_is(x)
    e = ctx.e
    if value == 0.5:
        y = e.unary_kind(Unary.SQRT, t)
    elif value.is_integer() and abs(value) <= 16:
        y = _power(e, t, int(abs(value)))
        if value < 0:
            y = e.binary(Op.DIV, e.const(np.ones(1, np.float32)), y)
    else:
        y = e.unary_kind(Unary.EXP, e.scale_bias(e.unary_kind(Unary.LOG, t), value))
    return [ctx.output(y, x.shape, layout=layout)]


@register("PRelu", since=7)
def lower_prelu(ctx, node, inputs):
    """max(x, 0) + slope * min(x, 0), with slope broadcast; our clamps, as for Relu, keep NaN
    (x - relu(x) also made inf NaN)."""
    x, slope = inputs
    shape = _broadcast_shape(ctx, x, slope)
    if shape != x.shape:
        ctx.unsupported(f"slope {slope.shape} broadcasting beyond x {x.shape}")
    e = ctx.e
    tx = ctx.tensor(x)
    pos = e.activation(tx, ACT_CLAMP, 0.0, float("inf"))
    neg = e.activation(tx, ACT_CLAMP, float("-inf"), 0.0)
    return [ctx.output(e.binary(Op.ADD, pos, e.binary(Op.MUL, neg, ctx.tensor(slope))), shape)]


@register("Sum", since=6)
def lower_sum(ctx, node, inputs):
    xs = [v for v in inputs if v is not None]
    if len(xs) == 1:
        return _shape_preserving(lambda e, t: t)(ctx, node, xs)
    acc = xs[0]
    for v in xs[1:]:
        acc = binary_value(ctx, Op.ADD, acc, v, _broadcast_shape(ctx, acc, v))
    return [acc.alias(node.outputs[0])]
