"""Resize and Upsample: nearest, linear and cubic over the two innermost axes, in ggml.

Interpolation is separable, so each axis becomes a tap table (per output coordinate: source
indices and weights, from ``ggonnx.resize_taps``); one kernel of ours
(``Op.RESIZE``) blends the taps, on plain or channels-last data.
"""
from __future__ import annotations

import math

import numpy as np

from ggonnx.errors import ShapeError
from ggonnx.ops.context import NHWC
from ggonnx.ops.registry import register
from ggonnx.ops.shape import reshape_value
from ggonnx.resize_taps import NEAREST_MODES, TAPS, TRANSFORMS, out_and_scales, source_coords, tap_table


def _identity_table(size: int, taps: int) -> np.ndarray:
    idx = np.repeat(np.arange(size, dtype=np.float64)[:, None], taps, axis=1)
    weights = np.zeros((size, taps))
    weights[:, 0] = 1.0
    return np.concatenate([idx, weights], axis=1)


def resize(ctx, x, out_hw, scale_hw, mode: str, transform: str, nearest_mode: str = "round_prefer_floor",
           cubic_a: float = -0.75, exclude_outside: bool = False):
    """x (rank 3 or 4) resized on its last two axes (rank 3: the last) to out_hw with scales
    scale_hw (per axis, (H, W)); returns the output Value."""
    if x.rank == 3:
        n, c, w = x.shape
        out = resize(ctx, reshape_value(ctx, x, (n, c, 1, w)), (1, out_hw[-1]), (1.0, scale_hw[-1]), mode,
                     transform, nearest_mode, cubic_a, exclude_outside)
        return reshape_value(ctx, out, (n, c, out_hw[-1]))
    n, c, h, w = x.shape
    oh, ow = out_hw
    taps = TAPS[mode]
    tables = []
    for size, out, scale in ((w, ow, scale_hw[1]), (h, oh, scale_hw[0])):
        if out == size and math.isclose(scale, 1.0):  # ONNX leaves such an axis untouched
            tables.append(_identity_table(size, taps))
        else:
            coords = source_coords(transform, out, size, scale)
            tables.append(tap_table(coords, size, mode, nearest_mode, cubic_a, exclude_outside))
    table = ctx.e.const(np.concatenate(tables).astype(np.float32))
    if ctx.is_nhwc(x):
        y = ctx.e.resize(x.gt, table, (c, ow, oh, n), 1, taps)
        return ctx.output(y, (n, c, oh, ow), layout=NHWC)
    return ctx.output(ctx.e.resize(ctx.tensor(x), table, (ow, oh, c, n), 0, taps), (n, c, oh, ow))


def _optional_const(ctx, inputs, i: int, what: str):
    """A constant optional input (absent or empty: None)."""
    v = inputs[i] if len(inputs) > i else None
    if v is None or 0 in v.shape:
        return None
    return np.asarray(ctx.const_input(v, what)).reshape(-1)


def _out_and_scales(ctx, x, scales, sizes, axes, policy):
    try:
        return out_and_scales(ctx.node.describe(), x.shape, scales, sizes, axes, policy)
    except ValueError:
        ctx.unsupported(f"keep_aspect_ratio_policy={policy!r}")


def _lower(ctx, node, x, scales, sizes, mode, transform, nearest_mode, cubic_a, exclude_outside, axes=None,
           policy="stretch"):
    if mode not in TAPS:
        ctx.unsupported(f"mode={mode!r}")
    if transform not in TRANSFORMS:
        ctx.unsupported(f"coordinate_transformation_mode={transform!r}")
    if nearest_mode not in NEAREST_MODES:
        ctx.unsupported(f"nearest_mode={nearest_mode!r}")
    if x.rank not in (3, 4):
        ctx.unsupported(f"input of rank {x.rank} {x.shape} (resizes of rank 3 and 4 run in ggml)")
    out, full = _out_and_scales(ctx, x, scales, sizes, axes, policy)
    if any(out[d] != x.shape[d] or not math.isclose(full[d], 1.0) for d in range(2)):
        ctx.unsupported(f"resizing the batch or channel axis ({x.shape} -> {out})")
    if min(out) <= 0:
        raise ShapeError(f"{node.describe()}: output {out} of input {x.shape} is empty")
    spatial = tuple(range(2, x.rank))
    return [resize(ctx, x, tuple(out[d] for d in spatial), tuple(full[d] for d in spatial), mode, transform,
                   nearest_mode, cubic_a, exclude_outside)]


@register("Resize", since=11)
def lower_resize(ctx, node, inputs):
    if ctx.attr("antialias", 0):
        ctx.unsupported("antialias=1")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if transform == "tf_crop_and_resize":
        ctx.unsupported("coordinate_transformation_mode='tf_crop_and_resize'")
    scales = _optional_const(ctx, inputs, 2, "scales")
    sizes = _optional_const(ctx, inputs, 3, "sizes") if scales is None else None
    if scales is not None and len(inputs) > 3 and inputs[3] is not None and 0 not in inputs[3].shape:
        raise ShapeError(f"{node.describe()}: give scales or sizes, not both")
    return _lower(ctx, node, inputs[0], scales, sizes, ctx.attr("mode", "nearest"), transform,
                  ctx.attr("nearest_mode", "round_prefer_floor"), float(ctx.attr("cubic_coeff_a", -0.75)),
                  bool(ctx.attr("exclude_outside", 0)), ctx.attr("axes"),
                  ctx.attr("keep_aspect_ratio_policy", "stretch"))


def _lower_asymmetric(ctx, node, x, scales):
    """Upsample and Resize-10: scales only, asymmetric coordinates, nearest rounds down (for
    the upsampling these ops are used for; a nearest downsample stays on the host)."""
    mode = ctx.attr("mode", "nearest")
    if mode == "nearest" and any(s < 1 for s in scales):
        ctx.unsupported(f"nearest downsampling by scales {list(scales)}")
    return _lower(ctx, node, x, scales, None, mode, "asymmetric", "floor", -0.75, False)


@register("Resize", since=10, until=10)
def lower_resize_10(ctx, node, inputs):
    return _lower_asymmetric(ctx, node, inputs[0], _optional_const(ctx, inputs, 1, "scales"))


@register("Upsample", since=7, until=9)
def lower_upsample(ctx, node, inputs):
    scales = _optional_const(ctx, inputs, 1, "scales") if len(inputs) > 1 else ctx.attr("scales")
    return _lower_asymmetric(ctx, node, inputs[0], None if scales is None else np.asarray(scales, np.float64))
