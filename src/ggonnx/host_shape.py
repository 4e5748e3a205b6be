"""Host kernels of ours for the shape arithmetic exported transformers fold at plan time.

A model with a free sequence axis folds hundreds of Shape / Gather / Unsqueeze / Concat /
Slice nodes per new input signature; through onnx.reference each costs a one-node model and
an evaluator (gpt2 with a KV cache: 700 folds, half of a 130 ms plan). These follow the ONNX
spec for the integer and float tensors such folds see; anything else (strings, float8 casts)
is left to onnx.reference.
"""
from __future__ import annotations

import math

import numpy as np

from ggonnx.errors import InvalidInputError, ShapeError

_CAST_TYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
               9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _axis(node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{node.describe()}: axis {axis} out of range for rank {rank}")
    return axis % rank


def checked_indices(node, indices, data_shape, axis: int):
    """Indices into ``axis`` of data of ``data_shape``, negative ones counted from the end, as
    intp; an index out of range is an InvalidInputError naming the node."""
    bound = data_shape[axis]
    if indices.size <= 8:  # a few indices (a column picked per run): Python ints beat 4 numpy reductions
        vals = indices.reshape(-1).tolist()
        if all(-bound <= v < bound for v in vals):
            return (indices if min(vals, default=0) >= 0 else indices + bound * (indices < 0)).astype(np.intp)
    if indices.size and (indices.min() < -bound or indices.max() >= bound):
        raise InvalidInputError(f"{node.describe()}: indices into axis {axis} of data {data_shape} must lie in "
                                f"[-{bound}, {bound}), got values from {indices.min()} to {indices.max()}")
    return np.where(indices < 0, indices + bound, indices).astype(np.intp)


def shape(node, data):
    return [np.array(np.shape(data)[node.attrs.get("start", 0):node.attrs.get("end", None)], dtype=np.int64)]


def gather(node, data, indices):
    data, indices = np.asarray(data), np.asarray(indices)
    axis = _axis(node, int(node.attrs.get("axis", 0)), data.ndim)
    # indexing, not np.take: take copies a whole unaligned table first (a weight read in place
    # from the model file, model_file.py: gpt2's 3 MB position table, 0.17 ms a Gather)
    picked = checked_indices(node, indices, data.shape, axis)
    if picked.ndim == 0:  # one index: a view (skl2onnx picks each column this way), no copy
        picked = int(picked)
    return [np.asarray(data[(slice(None),) * axis + (picked,)])]


def unsqueeze(node, data, axes):
    data = np.asarray(data)
    rank = data.ndim + np.size(axes)
    picked = sorted(_axis(node, int(a), rank) for a in np.reshape(axes, -1))
    if len(set(picked)) != len(picked):
        raise ShapeError(f"{node.describe()}: repeated axes {np.reshape(axes, -1).tolist()}")
    out = list(data.shape)
    for a in picked:
        out.insert(a, 1)
    return [data.reshape(out)]


def squeeze(node, data, axes=None):
    data = np.asarray(data)
    if axes is None:
        return [data.reshape([d for d in data.shape if d != 1])]
    picked = {_axis(node, int(a), data.ndim) for a in np.reshape(axes, -1)}  # repeats allowed, as onnxruntime
    if any(data.shape[a] != 1 for a in picked):
        raise ShapeError(f"{node.describe()}: cannot squeeze axes {sorted(picked)} of {data.shape}")
    return [data.reshape([d for k, d in enumerate(data.shape) if k not in picked])]


def concat(node, *inputs):
    arrays = [np.asarray(a) for a in inputs]
    if not arrays or any(a.ndim != arrays[0].ndim for a in arrays) or arrays[0].ndim == 0:
        raise ShapeError(f"{node.describe()}: cannot concatenate shapes {[a.shape for a in arrays]}")
    axis = _axis(node, int(node.attrs["axis"]), arrays[0].ndim)
    if len(arrays) == 1:  # a copy of one input (exporters feed Shape this way): its array, as Reshape's view
        return [arrays[0]]
    try:
        return [np.concatenate(arrays, axis=axis)]
    except ValueError:
        raise ShapeError(f"{node.describe()}: cannot concatenate shapes {[a.shape for a in arrays]} on axis {axis}") \
            from None


def flatten(node, data):
    data = np.asarray(data)
    rank = data.ndim
    axis = int(node.attrs.get("axis", 1))
    if not -rank <= axis <= rank:
        raise ShapeError(f"{node.describe()}: axis {axis} out of range [-{rank}, {rank}] for input {data.shape}")
    if axis < 0:
        axis += rank
    return [data.reshape(math.prod(data.shape[:axis]), math.prod(data.shape[axis:]))]


def expand(node, data, shape_):
    data, shape_ = np.asarray(data), np.asarray(shape_)
    if shape_.ndim != 1 or shape_.dtype.kind not in "iu" or (shape_ < 0).any():
        raise ShapeError(f"{node.describe()}: the shape must be a 1-D tensor of non-negative integers, "
                         f"got {shape_.tolist()}")
    try:
        out = np.broadcast_shapes(data.shape, tuple(shape_.tolist()))
    except ValueError:
        raise ShapeError(f"{node.describe()}: cannot expand {data.shape} to {shape_.tolist()}") from None
    return [np.array(np.broadcast_to(data, out))]  # a copy: a broadcast view is read-only


def slice_(node, data, starts, ends, axes=None, steps=None):
    data = np.asarray(data)
    starts, ends = np.reshape(starts, -1), np.reshape(ends, -1)
    axes = np.arange(len(starts)) if axes is None else np.reshape(axes, -1)
    steps = np.ones(len(starts), np.int64) if steps is None else np.reshape(steps, -1)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"{node.describe()}: starts, ends, axes and steps differ in length")
    index = [slice(None)] * data.ndim
    seen = set()
    for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
        a = _axis(node, int(a), data.ndim)
        if st == 0 or a in seen:
            raise ShapeError(f"{node.describe()}: step 0 or axis {a} repeated")
        seen.add(a)
        dim = data.shape[a]
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        else:  # ends clamp to -1: "before the first element", which a Python slice spells None
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
        index[a] = slice(s, None if e < 0 else e, st)
    return [data[tuple(index)]]


def cast(node, x):
    to = _CAST_TYPES.get(int(node.attrs.get("to", 0)))
    x = np.asarray(x)
    if to is None or x.dtype.kind not in "biuf":
        return None
    return [x.astype(to)]


def reshape(node, data, shape_):
    data, target = np.asarray(data), [int(d) for d in np.reshape(shape_, -1)]
    if not node.attrs.get("allowzero", 0):
        target = [data.shape[k] if d == 0 and k < data.ndim else d for k, d in enumerate(target)]
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ShapeError(f"{node.describe()}: invalid shape {target}")
    try:
        return [data.reshape(target)]
    except ValueError:
        raise ShapeError(f"{node.describe()}: cannot reshape {data.shape} to {target}") from None


def constant_of_shape(node, shape_):
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dims = [int(d) for d in np.reshape(shape_, -1)]
    if any(d < 0 for d in dims):
        raise ShapeError(f"{node.describe()}: negative dims {dims}")
    return [np.full(dims, value[0], dtype=value.dtype)]


def _split_sizes(node, sizes, dim: int, n_parts=None) -> np.ndarray:
    """Split sizes from a run-time input, checked: non-negative, as many as the node's outputs,
    adding up to the split dim (onnxruntime refuses anything else)."""
    sizes = np.asarray(sizes).reshape(-1)
    if sizes.dtype.kind not in "iu" or (sizes < 0).any() or int(sizes.sum()) != dim or \
            (n_parts is not None and len(sizes) != n_parts):
        raise InvalidInputError(f"{node.describe()}: split sizes {sizes.tolist()[:8]} must be "
                                f"{'' if n_parts is None else f'{n_parts} '}non-negative sizes adding up to {dim}")
    return sizes


def split(node, x, sizes=None):
    """Split at run-time sizes (equal parts, whose rule differs by opset, stay with onnx.reference)."""
    x = np.asarray(x)
    if sizes is None or x.ndim == 0:
        return None
    a = _axis(node, int(node.attrs.get("axis", 0)), x.ndim)
    cuts = np.cumsum(_split_sizes(node, sizes, x.shape[a], len(node.outputs)))[:-1]
    return np.split(x, cuts, axis=a)


def split_to_sequence(node, x, sizes=None):
    """SplitToSequence at run-time sizes: a list of parts (a scalar size: chunks of it, the last
    smaller); without sizes onnx.reference keeps keepdims' rule."""
    x = np.asarray(x)
    if sizes is None or x.ndim == 0:
        return None
    a = _axis(node, int(node.attrs.get("axis", 0)), x.ndim)
    dim = x.shape[a]
    sizes = np.asarray(sizes)
    if sizes.ndim == 0:
        step = int(sizes)
        if sizes.dtype.kind not in "iu" or step <= 0:
            raise InvalidInputError(f"{node.describe()}: split size {sizes.tolist()} must be a positive integer")
        cuts = np.arange(step, dim, step)
    else:
        cuts = np.cumsum(_split_sizes(node, sizes, dim))[:-1]
    return [list(np.split(x, cuts, axis=a))]


KERNELS = {("", "Shape"): shape, ("", "Gather"): gather, ("", "Unsqueeze"): unsqueeze, ("", "Squeeze"): squeeze,
           ("", "Concat"): concat, ("", "Slice"): slice_, ("", "Cast"): cast, ("", "Reshape"): reshape,
           ("", "ConstantOfShape"): constant_of_shape, ("", "Split"): split,
           ("", "SplitToSequence"): split_to_sequence, ("", "Flatten"): flatten, ("", "Expand"): expand}
