"""Host kernels of our own, used instead of onnx.reference's where that one is wrong or slow.

Each kernel is a function of (node, input arrays) returning the output arrays; it depends on
nothing above numpy, so the planner and the optimizer's constant folding both use it.
"""
from __future__ import annotations

import numpy as np

from ggonnx import (host_detect, host_elementwise, host_index, host_ml, host_ml_linear, host_ml_prep, host_ml_v5,
                    host_pool, host_random, host_resize, host_rnn, host_shape)
from ggonnx.errors import ShapeError


def gather_elements(node, data, indices):
    """onnx.reference's GatherElements gathers one element per row once np.choose's 64-array
    limit is exceeded (BERT's token-type lookup over a [1, 512] buffer)."""
    data, indices = np.asarray(data), np.asarray(indices)
    axis = int(node.attrs.get("axis", 0))
    if data.ndim == 0 or indices.ndim != data.ndim or not -data.ndim <= axis < data.ndim:
        raise ShapeError(f"{node.describe()}: indices {indices.shape} and axis {axis} do not fit data {data.shape}")
    axis %= data.ndim
    if any(i > d for k, (i, d) in enumerate(zip(indices.shape, data.shape)) if k != axis):
        raise ShapeError(f"{node.describe()}: indices {indices.shape} exceed data {data.shape} off axis {axis}")
    window = tuple(slice(None) if k == axis else slice(0, i) for k, i in enumerate(indices.shape))
    return [np.take_along_axis(data[window], host_shape.checked_indices(node, indices, data.shape, axis), axis)]


def dequantize_linear(node, x, scale, zero_point=None):
    """(x - zero_point) * scale per tensor, per axis or per block (opset 21's block_size), as
    float32 or output_dtype; onnx.reference has no kernel for opsets 10 to 18."""
    x, scale = np.asarray(x), np.asarray(scale)
    axis, block = int(node.attrs.get("axis", 1)), int(node.attrs.get("block_size", 0))
    zp = np.zeros((), x.dtype) if zero_point is None else np.asarray(zero_point)
    if scale.size != 1 or block:
        if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
            raise ShapeError(f"{node.describe()}: axis {axis} out of range for input {x.shape}")
        axis %= x.ndim
        if block:
            want = tuple(-(-d // block) if k == axis else d for k, d in enumerate(x.shape))
            if scale.shape != want or (zero_point is not None and zp.shape != want):
                raise ShapeError(f"{node.describe()}: blocked scale {scale.shape} / zero point {zp.shape} must be "
                                 f"{want} for input {x.shape}, block_size {block}")
            scale = np.repeat(scale, block, axis=axis)[tuple(slice(0, d) for d in x.shape)]
            zp = np.repeat(zp, block, axis=axis)[tuple(slice(0, d) for d in x.shape)] if zp.ndim else zp
        else:
            if scale.shape != (x.shape[axis],) or (zero_point is not None and zp.shape != scale.shape):
                raise ShapeError(f"{node.describe()}: scale {scale.shape} / zero point {zp.shape} do not match "
                                 f"axis {axis} of input {x.shape}")
            shape = [1] * x.ndim
            shape[axis] = x.shape[axis]
            scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.ndim else zp
    elif zero_point is not None and zp.size != 1:
        raise ShapeError(f"{node.describe()}: zero point {zp.shape} for a per-tensor scale")
    out = (x.astype(np.float32) - zp.astype(np.float32)) * scale.astype(np.float32)
    code = int(node.attrs.get("output_dtype", 0))
    if code:
        import onnx.helper
        return [out.astype(onnx.helper.tensor_dtype_to_np_dtype(code))]
    return [out.astype(scale.dtype)]


def dynamic_quantize_linear(node, x):
    """uint8 quantization over x's range widened to hold 0, as onnxruntime computes it: NaN is
    left out of the range and quantizes to 0; a range of width 0 gets scale 1; a NaN zero point
    (an infinite range) saturates to 255. onnx.reference let a NaN make the whole output 0."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        return None
    finite = x[~np.isnan(x)]
    lo = np.float32(min(0.0, finite.min())) if finite.size else np.float32(0)
    hi = np.float32(max(0.0, finite.max())) if finite.size else np.float32(0)
    scale = np.float32((hi - lo) / np.float32(255))
    if scale == 0:
        scale = np.float32(1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        zp = np.float32(-lo / scale)
        zp = np.uint8(255 if np.isnan(zp) else np.clip(np.rint(zp), 0, 255))
        q = np.rint(x / scale) + np.float32(zp)
        q = np.clip(np.nan_to_num(q, nan=0.0), 0, 255)
    return [q.astype(np.uint8), np.asarray(scale, np.float32), np.asarray(zp, np.uint8)]


def _grid_coords(n: int, align_corners: int, dtype) -> np.ndarray:
    """AffineGrid's normalized sample positions along one axis of n points, in [-1, 1]. One point
    with align_corners is 1 here, as onnxruntime computes it; the spec divides by zero there, and
    onnx.reference answers -1, PyTorch 0."""
    if align_corners:
        return np.full(1, 1.0, dtype) if n == 1 else np.linspace(-1.0, 1.0, n, dtype=dtype)
    return ((2 * np.arange(n, dtype=np.float64) + 1) / n - 1).astype(dtype)


def affine_grid(node, theta, size):
    """theta [N, d, d+1] applied to the normalized grid of size [N, C, (D,) H, W] as broadcast
    sums in theta's dtype (onnx.reference builds float64 grids and matmuls: a minute where
    onnxruntime takes a second on a [2, 1e6, 5, 6] grid)."""
    theta = np.asarray(theta)
    size = [int(s) for s in np.asarray(size).reshape(-1)]
    spatial = size[2:]
    nd = len(spatial)
    if nd not in (2, 3) or theta.shape != (size[0], nd, nd + 1) or any(s < 0 for s in size):
        raise ShapeError(f"{node.describe()}: theta {theta.shape} and size {size} do not fit "
                         f"(theta [N, 2, 3] with size [N, C, H, W], or [N, 3, 4] with [N, C, D, H, W])")
    align = int(node.attrs.get("align_corners", 0))
    axes = [_grid_coords(n, align, theta.dtype) for n in reversed(spatial)]  # x (along W), y, z
    out = np.empty((size[0], *spatial, nd), dtype=theta.dtype)
    lead = (-1,) + (1,) * nd
    for k in range(nd):
        acc = theta[:, k, nd].reshape(lead)
        for j, c in enumerate(axes):
            shape = [1] * nd
            shape[nd - 1 - j] = len(c)
            acc = acc + theta[:, k, j].reshape(lead) * c.reshape(shape)
        out[..., k] = acc
    return [out]


KERNELS = {("", "AffineGrid"): affine_grid, ("", "GatherElements"): gather_elements, ("", "DequantizeLinear"): dequantize_linear,
           ("", "DynamicQuantizeLinear"): dynamic_quantize_linear,
           **host_shape.KERNELS, **host_elementwise.KERNELS, **host_random.KERNELS, **host_ml.KERNELS,
           **host_ml_linear.KERNELS, **host_ml_prep.KERNELS, **host_ml_v5.KERNELS, **host_resize.KERNELS,
           **host_pool.KERNELS, **host_rnn.KERNELS, **host_detect.KERNELS, **host_index.KERNELS}


class HostKernel:
    """A kernel of ours behind the evaluator interface the planner runs host nodes through."""

    def __init__(self, node, fn, names: list, fallback=None, threads: int = 1):
        self.node, self.fn, self.names, self.fallback = node, fn, names, fallback
        # kernels that can split their work (``fn.takes_threads``) get the session's thread count
        self.kwargs = {"threads": threads} if getattr(fn, "takes_threads", False) else {}

    def run(self, output_names, feeds: dict) -> list:
        return self.call([feeds[n] if n else None for n in self.names])

    def call(self, args: list) -> list:
        """The outputs for the node's inputs in order (None for an omitted optional one): the
        planner's per-run path, without the evaluator interface's dict of feeds."""
        out = self.fn(self.node, *args, **self.kwargs)
        if out is None:  # a case the kernel leaves to onnx.reference (``fallback`` builds it)
            if self.fallback is None:
                raise ShapeError(f"{self.node.describe()}: no host kernel for these inputs")
            return self.fallback().run(None, {n: a for n, a in zip(self.names, args) if n})
        return out

    def arg_ids(self, fed_names: list, fed_ids: list) -> list:
        """For ``call``: per node input, the env slot of the value fed under its name, or None."""
        slot = dict(zip(fed_names, fed_ids))
        return [slot[n] if n else None for n in self.names]


def kernel_for(node, names: list, fallback=None, threads: int = 1):
    """Our kernel for ``node`` reading its inputs fed under ``names`` ('' for an omitted
    optional input, passed to the kernel as None), or None; ``fallback()`` gives the evaluator
    for inputs a kernel declines (it returns None); ``threads``: at most that many for a kernel
    that can split its work."""
    fn = KERNELS.get((node.domain, node.op_type))
    if fn is None or node.implicit_inputs or len(names) != len(node.inputs):
        return None
    return HostKernel(node, fn, names, fallback, threads)
