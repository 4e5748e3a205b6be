"""Pad (constant, reflect, edge, wrap; negative pads crop) in ggml through one kernel of ours,
on plain or channels-last data."""
from __future__ import annotations

import numpy as np

from ggonnx.errors import ShapeError
from ggonnx.ops.context import NHWC
from ggonnx.ops.registry import register

MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


@register("Pad", since=11)  # older forms are normalised to this one at import
def lower_pad(ctx, node, inputs):
    x = inputs[0]
    mode = ctx.attr("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in MODES:
        raise ShapeError(f"{node.describe()}: unknown mode {mode!r}")
    pads = np.asarray(ctx.const_input(inputs[1] if len(inputs) > 1 else None, "pads"), dtype=np.int64).reshape(-1)
    value_in = inputs[2] if len(inputs) > 2 else None
    value = 0.0
    if value_in is not None and 0 not in value_in.shape:
        value = float(np.asarray(ctx.const_input(value_in, "constant_value")).reshape(-1)[0])
    rank = x.rank
    axes_in = inputs[3] if len(inputs) > 3 else None
    if axes_in is not None:
        axes = [int(a) + rank if a < 0 else int(a) for a in np.asarray(ctx.const_input(axes_in, "axes")).reshape(-1)]
    else:
        axes = list(range(rank))
    if len(pads) != 2 * len(axes) or any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise ShapeError(f"{node.describe()}: pads {pads.tolist()} (axes {axes}) do not fit input {x.shape}")
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = int(pads[i]), int(pads[len(axes) + i])
    out = tuple(d + b + e for d, b, e in zip(x.shape, begin, end))
    if min(out, default=1) <= 0:
        raise ShapeError(f"{node.describe()}: pads {pads.tolist()} leave nothing of input {x.shape}")
    if mode != "constant" and any(b or e for b, e, d in zip(begin, end, x.shape) if d == 0):
        raise ShapeError(f"{node.describe()}: mode {mode!r} cannot pad an empty axis of {x.shape}")
    if mode != "constant" and min(begin + end) < 0:  # crop, then reflect / wrap the cropped data?
        ctx.unsupported(f"negative pads {pads.tolist()} with mode {mode!r}")
    if mode == "reflect" and any(max(b, e) >= d for b, e, d in zip(begin, end, x.shape)):
        ctx.unsupported(f"reflect pads {pads.tolist()} as large as the axes of {x.shape}")
    if not any(begin + end):
        t, layout = ctx.tensor_as_is(x)
        return [ctx.output(t, x.shape, layout=layout)]
    if ctx.is_nhwc(x):   # ggml dims of [N, C, H, W] stored channels-last: C, W, H, N
        order = (1, 3, 2, 0)
        y = ctx.e.pad_mode(x.gt, [begin[a] for a in order], [end[a] for a in order], MODES[mode], value)
        return [ctx.output(y, out, layout=NHWC)]
    full_begin = [0] * (4 - rank) + begin
    full_end = [0] * (4 - rank) + end
    y = ctx.e.pad_mode(ctx.tensor(x), full_begin[::-1], full_end[::-1], MODES[mode], value)
    return [ctx.output(y, out)]
