"""Resize and Upsample: nearest, linear and cubic over the two innermost axes, in ggml.

Interpolation is separable, so each axis becomes a tap table (per output coordinate: source
indices and weights) built here with ONNX's coordinate transforms; one kernel of ours
(``Op.RESIZE``) blends the taps, on plain or channels-last data.
"""
from __future__ import annotations

import math

import numpy as np

from ggonnx.errors import ShapeError
from ggonnx.ops.context import NHWC
from ggonnx.ops.registry import register
from ggonnx.ops.shape import reshape_value

TAPS = {"nearest": 1, "linear": 2, "cubic": 4}
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(transform: str, out_size: int, in_size: int, scale: float) -> np.ndarray:
    """Where each output coordinate samples the input, per ONNX's transform. float32 arithmetic,
    as onnxruntime does it: a coordinate that lands on a rounding boundary (a scale of 0.6 given
    as float32) then rounds the same way."""
    f = np.float32
    y = np.arange(out_size, dtype=f)
    scale = f(scale)
    if transform == "align_corners":
        return np.zeros(out_size, f) if out_size == 1 else y * f(in_size - 1) / f(out_size - 1)
    if transform == "asymmetric":
        return y / scale
    if transform == "pytorch_half_pixel":
        return np.zeros(out_size, f) if out_size == 1 else (y + f(0.5)) / scale - f(0.5)
    if transform == "half_pixel":
        return (y + f(0.5)) / scale - f(0.5)
    if transform == "half_pixel_symmetric":
        adjustment = f(out_size) / (scale * f(in_size))
        offset = f(in_size) / f(2) * (f(1) - adjustment)
        return offset + (y + f(0.5)) / scale - f(0.5)
    if transform == "tf_half_pixel_for_nn":
        return (y + f(0.5)) / scale
    raise ValueError(transform)


def _cubic_weights(r: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution weights of the taps at floor(x) - 1 .. floor(x) + 2."""
    def near(t):   # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t):    # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.stack([far(r + 1), near(r), near(1 - r), far(2 - r)], axis=1)


def tap_table(x: np.ndarray, in_size: int, mode: str, nearest_mode: str, cubic_a: float,
              exclude_outside: bool) -> np.ndarray:
    """[out, 2*T] rows of T source indices (clamped into the input: edge padding) then T weights."""
    if mode == "nearest":
        lo = np.floor(x)
        frac = x - lo
        if nearest_mode == "round_prefer_floor":
            up = frac > 0.5
        elif nearest_mode == "round_prefer_ceil":
            up = frac >= 0.5
        elif nearest_mode == "floor":
            up = np.zeros_like(frac, dtype=bool)
        else:  # ceil
            up = frac > 0
        idx = (lo + up)[:, None].astype(np.float64)
        weights = np.ones_like(idx)
    else:
        lo = np.floor(x)
        r = (x - lo).astype(np.float64)
        lo = lo.astype(np.float64)
        if mode == "linear":
            idx = lo[:, None] + np.arange(2)
            weights = np.stack([1 - r, r], axis=1)
        else:
            idx = lo[:, None] + np.arange(-1, 3)
            weights = _cubic_weights(r, cubic_a)
        if exclude_outside:
            weights = np.where((idx < 0) | (idx >= in_size), 0.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, in_size - 1)
    return np.concatenate([idx, weights], axis=1)


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
    """(output shape, per-axis scales) from a Resize's scales or sizes, as ONNX defines them."""
    rank = x.rank
    axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    if sorted(set(axes)) != sorted(axes) or any(a < 0 or a >= rank for a in axes):
        raise ShapeError(f"{ctx.node.describe()}: axes {axes} invalid for rank {rank}")
    given = scales if scales is not None else sizes
    if given is None or len(given) != len(axes):
        raise ShapeError(f"{ctx.node.describe()}: needs {len(axes)} scales or sizes for input {x.shape}, "
                         f"got {None if given is None else list(given)}")
    full_scales, out = [1.0] * rank, list(x.shape)
    if scales is not None:
        for a, s in zip(axes, scales):
            if not s > 0:
                raise ShapeError(f"{ctx.node.describe()}: scales must be positive, got {list(scales)}")
            full_scales[a] = float(s)
            out[a] = int(float(s) * x.shape[a])
        return tuple(out), full_scales
    ratios = {a: int(s) / x.shape[a] for a, s in zip(axes, sizes)}
    if policy == "stretch":
        for a, s in zip(axes, sizes):
            full_scales[a], out[a] = ratios[a], int(s)
    elif policy in ("not_larger", "not_smaller"):
        scale = (min if policy == "not_larger" else max)(ratios.values())
        for a in axes:
            full_scales[a], out[a] = scale, int(scale * x.shape[a] + 0.5)
    else:
        ctx.unsupported(f"keep_aspect_ratio_policy={policy!r}")
    return tuple(out), full_scales


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
