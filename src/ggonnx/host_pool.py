"""LpPool on the host: (sum over each window of |x|^p)^(1/p), windows read through strided
slices of the zero-padded input, one slice per kernel tap. onnx.reference skips NaN in a window
(a window holding one returned the others' norm; onnxruntime and IEEE arithmetic give NaN)."""
from __future__ import annotations

import itertools

import numpy as np


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


def lp_pool(node, x):
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
    p = attrs.get("p", 2)
    ceil = bool(attrs.get("ceil_mode", 0))
    geometry = [_out_and_pads(x.shape[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[dims + i], auto_pad, ceil)
                for i in range(dims)]
    out_shape = x.shape[:2] + tuple(g[0] for g in geometry)
    if min(out_shape) <= 0:
        return [np.zeros(out_shape, x.dtype)]
    # zeros around the input, as far as the last window reaches (pads add 0 to the sum)
    widths = [(0, 0), (0, 0)] + [(g[1], max(0, (g[0] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1
                                           - x.shape[2 + i] - g[1])) for i, g in enumerate(geometry)]
    xp = np.abs(np.pad(x, widths)) ** x.dtype.type(p)
    acc = np.zeros(out_shape, x.dtype)
    for taps in itertools.product(*[range(k) for k in kernel]):
        index = (slice(None), slice(None)) + tuple(
            slice(t * dil[i], t * dil[i] + (geometry[i][0] - 1) * strides[i] + 1, strides[i]) for i, t in enumerate(taps))
        acc += xp[index]
    return [(acc ** x.dtype.type(1.0 / p)).astype(x.dtype, copy=False)]


KERNELS = {("", "LpPool"): lp_pool}
