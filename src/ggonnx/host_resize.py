"""Resize on the host for what its ggml lowering leaves there (scales or sizes fed at run time,
resized batch or channel axes, ranks other than 3 and 4): one axis at a time with the lowering's
tap tables. Nearest copies values (onnx.reference blends every input with 0/1 weights, which
turns an Inf or NaN anywhere in a row into NaN everywhere); linear and cubic blend in float32, as
onnxruntime does. align_corners divides by the rounded output length, as onnxruntime and the ggml
lowering do (onnx.reference, and two of ONNX's node tests, by the unrounded one: onnx/onnx#2462)."""
from __future__ import annotations

import numpy as np

from ggonnx.errors import ShapeError
from ggonnx.resize_taps import NEAREST_MODES, TAPS, TRANSFORMS, out_and_scales, source_coords, tap_table


def _given(v):
    return None if v is None or v.size == 0 else v.reshape(-1)


def resize(node, x, roi=None, scales=None, sizes=None):
    """Resize (opset 11 on); None for the cases onnx.reference keeps."""
    attrs = node.attrs
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest_mode = attrs.get("nearest_mode", "round_prefer_floor")
    policy = attrs.get("keep_aspect_ratio_policy", "stretch")
    if (node.opset < 11 or attrs.get("antialias", 0) or mode not in TAPS or transform not in TRANSFORMS
            or nearest_mode not in NEAREST_MODES or policy != "stretch"
            or (mode != "nearest" and x.dtype.kind != "f")):
        return None
    scales, sizes = _given(scales), _given(sizes)
    if scales is not None and sizes is not None:
        return None   # onnx.reference raises the model's error
    try:
        out, full = out_and_scales(node.describe(), x.shape, scales, sizes, attrs.get("axes"), policy)
    except ShapeError as exc:
        # data, not the model: the planner reports it as this host kernel's failure (and a
        # session tracing zeros at load plans again on the first real feed)
        raise ValueError(str(exc)) from None
    if min(out, default=1) <= 0:
        return [np.zeros(out, x.dtype)]
    taps = TAPS[mode]
    cubic_a, exclude = float(attrs.get("cubic_coeff_a", -0.75)), bool(attrs.get("exclude_outside", 0))
    y = x
    for a in range(x.ndim):
        if out[a] == x.shape[a] and full[a] == 1.0:
            continue   # ONNX leaves such an axis untouched
        table = tap_table(source_coords(transform, out[a], x.shape[a], full[a]), x.shape[a], mode, nearest_mode,
                          cubic_a, exclude)
        idx = table[:, :taps].astype(np.int64)
        if taps == 1:
            y = np.take(y, idx[:, 0], axis=a)
            continue
        shape = [1] * x.ndim
        shape[a] = out[a]
        weights = table[:, taps:].astype(x.dtype)
        acc = np.take(y, idx[:, 0], axis=a) * weights[:, 0].reshape(shape)
        for t in range(1, taps):
            acc += np.take(y, idx[:, t], axis=a) * weights[:, t].reshape(shape)
        y = acc
    return [np.ascontiguousarray(y)]


KERNELS = {("", "Resize"): resize}
