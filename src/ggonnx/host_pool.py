"""Pools on the host. MaxPool where ggml has no kernel (3-D windows). GlobalMaxPool /
GlobalAveragePool / GlobalLpPool of any rank (ggml takes ranks 3 and 4). LpPool: (sum over each
window of |x|^p)^(1/p). Windows are read through strided slices of the padded input, one slice per
kernel tap. onnx.reference skips NaN in a LpPool window (a window holding one returned the
others' norm; onnxruntime and IEEE arithmetic give NaN)."""
from __future__ import annotations

import itertools

import numpy as np

from ggonnx.errors import ShapeError


def _out_and_pads(size: int, k: int, stride: int, dil: int, begin: int, end: int, auto_pad: str, ceil: bool):
    """(output length, begin pad, end pad) of one spatial axis."""
    span = dil * (k - 1) + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + span - size)
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return out, begin, total - begin
    if auto_pad == "VALID":
        begin = end = 0
    room = size + begin + end - span
    if room < 0:
        return 0, begin, end
    out = (-(-room // stride) if ceil else room // stride) + 1
    if ceil and (out - 1) * stride >= size + begin:   # a last window starting in the end pad only
        out -= 1
    return out, begin, end


def _window_taps(node, x, pad_value):
    """(output shape, the input padded with ``pad_value`` as far as the last window reaches, the
    strided slices of it that each kernel tap reads), or None for attributes we leave alone."""
    attrs = node.attrs
    kernel = attrs.get("kernel_shape")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if (x.dtype.kind != "f" or kernel is None or x.ndim != len(kernel) + 2
            or auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")):
        return None
    dims = len(kernel)
    strides = attrs.get("strides", [1] * dims)
    dil = attrs.get("dilations", [1] * dims)
    pads = attrs.get("pads", [0] * (2 * dims))
    ceil = bool(attrs.get("ceil_mode", 0))
    geometry = [_out_and_pads(x.shape[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[dims + i], auto_pad, ceil)
                for i in range(dims)]
    out_shape = x.shape[:2] + tuple(g[0] for g in geometry)
    if min(out_shape) <= 0:
        return out_shape, None, []
    widths = [(0, 0), (0, 0)] + [(g[1], max(0, (g[0] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1
                                           - x.shape[2 + i] - g[1])) for i, g in enumerate(geometry)]
    padded = np.pad(x, widths, constant_values=pad_value)
    taps = [(slice(None), slice(None)) + tuple(
        slice(t * dil[i], t * dil[i] + (geometry[i][0] - 1) * strides[i] + 1, strides[i]) for i, t in enumerate(tap))
        for tap in itertools.product(*[range(k) for k in kernel])]
    return out_shape, padded, taps


def lp_pool(node, x):
    windows = _window_taps(node, x, 0)   # pads add 0 to the sum
    if windows is None:
        return None
    out_shape, padded, taps = windows
    if padded is None:
        return [np.zeros(out_shape, x.dtype)]
    p = node.attrs.get("p", 2)
    xp = np.abs(padded) ** x.dtype.type(p)
    acc = np.zeros(out_shape, x.dtype)
    for index in taps:
        acc += xp[index]
    return [(acc ** x.dtype.type(1.0 / p)).astype(x.dtype, copy=False)]


def max_pool(node, x):
    """MaxPool of any rank where ggml has none (3-D windows; onnx.reference's gave the wrong
    output shape with pads and ceil_mode). A NaN in a window wins, as in ggonnx's ggml kernels
    (onnxruntime's answer depends on the NaN's place in the window); a window of -inf or padding
    gives float32's lowest, as onnxruntime's. No Indices output."""
    x = np.asarray(x)
    if len(node.outputs) > 1 and node.outputs[1] or node.attrs.get("storage_order", 0) or x.dtype.kind != "f":
        return None
    lowest = np.finfo(x.dtype).min   # where every window starts, as in ggml's and onnxruntime's kernels
    windows = _window_taps(node, x, lowest)
    if windows is None:
        return None
    out_shape, padded, taps = windows
    if padded is None:
        raise ShapeError(f"{node.describe()}: output would be empty for input {x.shape}, "
                         f"kernel {node.attrs['kernel_shape']}")
    acc = np.full(out_shape, lowest, x.dtype)
    for index in taps:
        np.maximum(acc, padded[index], out=acc)
    return [acc]


def _global(node, x, reduce):
    """A global pool over every axis after [N, C]; onnx.reference's reduces only the last two
    (a [1, 2, 3, 4, 5] GlobalMaxPool came back [1, 2, 3, 1, 1, 1])."""
    x = np.asarray(x)
    if x.ndim < 3 or x.dtype.kind != "f":
        return None
    return [reduce(x, tuple(range(2, x.ndim))).astype(x.dtype, copy=False)]


def global_max_pool(node, x):
    """NaN anywhere in a channel gives NaN (numpy's max), where onnxruntime's answer depends on
    where in the channel the NaN sits (README, "Where ggonnx and onnxruntime differ"); a channel
    of -inf gives float32's lowest, where both runtimes start the max."""
    return _global(node, x, lambda v, axes: np.maximum(v.max(axis=axes, keepdims=True), np.finfo(v.dtype).min))


def global_average_pool(node, x):
    return _global(node, x, lambda v, axes: v.mean(axis=axes, keepdims=True, dtype=np.float64))


def global_lp_pool(node, x):
    p = node.attrs.get("p", 2)
    return _global(node, x, lambda v, axes: (np.abs(v.astype(np.float64)) ** p).sum(axis=axes, keepdims=True) ** (1.0 / p))


KERNELS = {("", "LpPool"): lp_pool, ("", "MaxPool"): max_pool, ("", "GlobalMaxPool"): global_max_pool,
           ("", "GlobalAveragePool"): global_average_pool, ("", "GlobalLpPool"): global_lp_pool}
