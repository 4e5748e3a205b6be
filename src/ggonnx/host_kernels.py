"""Host kernels of our own, used instead of onnx.reference's where that one is wrong or slow.

Each kernel is a function of (node, input arrays) returning the output arrays; it depends on
nothing above numpy, so the planner and the optimizer's constant folding both use it.
"""
from __future__ import annotations

import numpy as np

from ggonnx import host_ml, host_random, host_shape
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


KERNELS = {("", "GatherElements"): gather_elements, ("", "DequantizeLinear"): dequantize_linear,
           **host_shape.KERNELS, **host_random.KERNELS, **host_ml.KERNELS}


class HostKernel:
    """A kernel of ours behind the evaluator interface the planner runs host nodes through."""

    def __init__(self, node, fn, names: list, fallback=None):
        self.node, self.fn, self.names, self.fallback = node, fn, names, fallback

    def run(self, output_names, feeds: dict) -> list:
        out = self.fn(self.node, *[feeds[n] if n else None for n in self.names])
        if out is None:  # a case the kernel leaves to onnx.reference (``fallback`` builds it)
            if self.fallback is None:
                raise ShapeError(f"{self.node.describe()}: no host kernel for these inputs")
            return self.fallback().run(output_names, feeds)
        return out


def kernel_for(node, names: list, fallback=None):
    """Our kernel for ``node`` reading its inputs fed under ``names`` ('' for an omitted
    optional input, passed to the kernel as None), or None; ``fallback()`` gives the evaluator
    for inputs a kernel declines (it returns None)."""
    fn = KERNELS.get((node.domain, node.op_type))
    if fn is None or node.implicit_inputs or len(names) != len(node.inputs):
        return None
    return HostKernel(node, fn, names, fallback)
