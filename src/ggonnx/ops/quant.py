"""QuantizeLinear and DequantizeLinear of activations (QDQ models), per tensor, in ggml.

Quantized values stay float32 in ggml (every int8/uint8/int16/uint16 value is exact there); the
value's dtype records the integer type, so an island output leaves as that type. Per-axis and
blocked scales on run-time data, 4-bit and float8 types run on the host; constant weights are
dequantized once by constant folding.
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.ops.registry import register

_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max) for t in (np.int8, np.uint8, np.int16, np.uint16)}
_ONNX_TYPES = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16}  # TensorProto codes


def _per_tensor(ctx, scale, zero_point):
    """(scale, zero point, zero point dtype) of constant one-element parameters, else unsupported."""
    s = ctx.const_input(scale, "scale")
    if s.size != 1 or s.dtype != np.float32 or not np.isfinite(s).all() or float(s.reshape(-1)[0]) == 0.0:
        ctx.unsupported(f"scale {s.shape} {s.dtype} (one finite non-zero float32 per tensor only)")
    zp = ctx.const_input(zero_point, "zero point") if zero_point is not None else None
    if zp is not None and zp.size != 1:
        ctx.unsupported(f"zero point {zp.shape} (one per tensor only)")
    return float(s.reshape(-1)[0]), (0 if zp is None else int(zp.reshape(-1)[0])), (None if zp is None else zp.dtype)


@register("QuantizeLinear", since=10, any_rank=True)
def lower_quantize_linear(ctx, node, inputs):
    x, scale = inputs[0], inputs[1]
    s, zp, zp_dtype = _per_tensor(ctx, scale, inputs[2] if len(inputs) > 2 else None)
    out_code = ctx.attr("output_dtype", 0)
    dtype = zp_dtype if zp_dtype is not None else np.dtype(_ONNX_TYPES.get(out_code, np.uint8) if out_code else np.uint8)
    if dtype not in _RANGES or (out_code and np.dtype(_ONNX_TYPES.get(out_code, np.void)) != dtype):
        ctx.unsupported(f"quantized type {dtype} (output_dtype {out_code})")
    if x.dtype != np.float32:
        ctx.unsupported(f"input of type {x.dtype}")
    lo, hi = _RANGES[dtype]
    e = ctx.e
    t, layout = ctx.tensor_as_is(x)
    y = e.activation(e.scale_bias(t, 1.0 / s), _core.ACT_ROUND, float(lo - zp), float(hi - zp))
    if zp:
        y = e.scale_bias(y, 1.0, float(zp))
    out = ctx.output(y, x.shape, layout=layout)
    out.dtype = dtype
    return [out]


@register("DequantizeLinear", since=10, any_rank=True)
def lower_dequantize_linear(ctx, node, inputs):
    x, scale = inputs[0], inputs[1]
    if x.dtype not in _RANGES and x.dtype != np.int32:
        ctx.unsupported(f"input of type {x.dtype}")
    s, zp, _ = _per_tensor(ctx, scale, inputs[2] if len(inputs) > 2 else None)
    t, layout = ctx.tensor_as_is(x)
    return [ctx.output(ctx.e.scale_bias(t, s, -zp * s), x.shape, layout=layout)]
