"""ONNX-ML ops in ggml where they fit: ArrayFeatureExtractor picking class labels by an in-island
ArgMax (a classifier's label step), so the whole model stays one ggml graph."""
from __future__ import annotations

import numpy as np

from ggonnx.emitter import onnx_to_ne
from ggonnx.ops.registry import register


@register("ArrayFeatureExtractor", domain="ai.onnx.ml", any_rank=True)
def lower_array_feature_extractor(ctx, node, inputs):
    """A constant 1-D table at integer indices held in this island with a proven bound (an
    ArgMax's): [1, n] as onnxruntime shapes a 1-D table's result. Other forms run on the host."""
    table, ids = inputs
    if table.const is None or table.rank != 1 or ids.bound is None or not ctx.in_island(ids):
        ctx.unsupported("only a constant 1-D table at bounded in-island indices")
    values = np.asarray(table.const)
    if values.dtype.kind not in "iuf" or ids.bound > len(values) or \
            not np.array_equal(values.astype(np.float32).astype(values.dtype), values):
        ctx.unsupported(f"a {values.dtype} table of {len(values)} the indices' bound {ids.bound} or float32 cannot hold")
    shape = (1, int(np.prod(ids.shape)))
    flat = ctx.e.reshape(ctx.tensor(ids), onnx_to_ne(shape))
    if np.array_equal(values, np.arange(len(values))):  # labels 0..K-1: the indices themselves
        out = ctx.output(flat, shape)
        out.bound = ids.bound
    else:
        out = ctx.output(ctx.e.lookup(ctx.tensor(table), flat), shape)
        if values.dtype.kind in "iu" and values.min() >= 0:
            out.bound = int(values.max()) + 1
    out.dtype = values.dtype
    return [out]
