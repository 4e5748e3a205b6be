"""Host kernels of our own, used instead of onnx.reference's where that one is wrong or slow.

Each kernel is a function of (node, input arrays) returning the output arrays; it depends on
nothing above numpy, so the planner and the optimizer's constant folding both use it.
"""
from __future__ import annotations

import numpy as np

from ggonnx.errors import InvalidInputError, ShapeError


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
    bound = data.shape[axis]
    if indices.size and (indices.min() < -bound or indices.max() >= bound):
        raise InvalidInputError(f"{node.describe()}: indices must lie in [-{bound}, {bound}), got values from "
                                f"{indices.min()} to {indices.max()}")
    window = tuple(slice(None) if k == axis else slice(0, i) for k, i in enumerate(indices.shape))
    return [np.take_along_axis(data[window], np.where(indices < 0, indices + bound, indices).astype(np.intp), axis)]


KERNELS = {("", "GatherElements"): gather_elements}


class HostKernel:
    """A kernel of ours behind the evaluator interface the planner runs host nodes through."""

    def __init__(self, node, fn, names: list):
        self.node, self.fn, self.names = node, fn, names

    def run(self, output_names, feeds: dict) -> list:
        return self.fn(self.node, *[feeds[n] for n in self.names])


def kernel_for(node, names: list):
    """Our kernel for ``node`` reading inputs fed under ``names``, or None."""
    fn = KERNELS.get((node.domain, node.op_type))
    if fn is None or node.implicit_inputs or len(names) != len([i for i in node.inputs if i]):
        return None
    return HostKernel(node, fn, names)
