"""Resize's arithmetic, shared by its ggml lowering and its host kernel: ONNX's coordinate
transforms, per-axis tap tables (source indices and weights) and the output shape from scales or
sizes. Depends on nothing above it."""
from __future__ import annotations

import numpy as np

from ggonnx.errors import ShapeError

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


def out_and_scales(where: str, shape: tuple, scales, sizes, axes, policy: str):
    """(output shape, per-axis scales) from a Resize's scales or sizes, as ONNX defines them;
    ``where`` names the node in errors. An unknown keep_aspect_ratio_policy is a ValueError."""
    rank = len(shape)
    axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    if sorted(set(axes)) != sorted(axes) or any(a < 0 or a >= rank for a in axes):
        raise ShapeError(f"{where}: axes {axes} invalid for rank {rank}")
    given = scales if scales is not None else sizes
    if given is None or len(given) != len(axes):
        raise ShapeError(f"{where}: needs {len(axes)} scales or sizes for input {tuple(shape)}, "
                         f"got {None if given is None else list(given)}")
    full_scales, out = [1.0] * rank, list(shape)
    if scales is not None:
        for a, s in zip(axes, scales):
            if not s > 0:
                raise ShapeError(f"{where}: scales must be positive, got {list(scales)}")
            full_scales[a] = float(s)
            out[a] = int(float(s) * shape[a])
        return tuple(out), full_scales
    ratios = {a: int(s) / shape[a] for a, s in zip(axes, sizes)}
    if policy == "stretch":
        for a, s in zip(axes, sizes):
            full_scales[a], out[a] = ratios[a], int(s)
    elif policy in ("not_larger", "not_smaller"):
        scale = (min if policy == "not_larger" else max)(ratios.values())
        for a in axes:
            full_scales[a], out[a] = scale, int(scale * shape[a] + 0.5)
    else:
        raise ValueError(policy)
    return tuple(out), full_scales
