"""Selection, indexing and scan kernels on the host, vectorized: TopK, GatherND, ScatterElements,
ScatterND, NonZero, CumSum, Unique, Einsum. onnx.reference loops in Python for GatherND and
ScatterElements and sorts through a slow path for TopK (us a run, onnx.reference / onnxruntime:
TopK k=10 of [8, 1000] 360 / 12, ScatterElements of 2,048 updates 741 / 12, GatherND of 200 rows
252 / 17); for the others its per-call costs were 1.5-3x onnxruntime's.

Depends on nothing in ggonnx above numpy and errors, like host_kernels.
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.errors import InvalidInputError, ShapeError
from ggonnx.host_shape import _axis, checked_indices


# Up to this k TopK keeps the best k of each row in one C pass (an insertion per value that enters
# them: k = 10 of [8, 1000] in ~5 us where numpy's partition, sort and gathers took ~60 us); above,
# numpy's partition bounds the work on rows that arrive in order.
TOPK_C_MAX_K = 128


def top_k(node, x, k=None):
    """The k largest (largest=0: smallest) along ``axis``, sorted, equal values by lower index
    first as onnxruntime orders them; NaN counts as the largest value (NumPy's sort order)."""
    x = np.asarray(x)
    if x.ndim == 0 or x.dtype.kind not in "iuf":
        return None
    k = int(node.attrs["k"]) if k is None else int(np.asarray(k).reshape(-1)[0]) if np.size(k) == 1 else None
    if k is None:
        raise ShapeError(f"{node.describe()}: k must be a single value")
    axis = _axis(node, int(node.attrs.get("axis", -1)), x.ndim)
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise InvalidInputError(f"{node.describe()}: k = {k} must lie in [0, {n}] (axis {axis} of {list(x.shape)})")
    xa = np.moveaxis(x, axis, -1)
    largest = bool(node.attrs.get("largest", 1))
    if 0 < k <= TOPK_C_MAX_K:  # one pass per row in C (host_topk.c), the same order
        got = _core.top_k_rows(xa, k, largest)
        if got is not None:
            return [np.ascontiguousarray(np.moveaxis(a, -1, axis)) for a in got]
    if 0 < k < n and not (x.dtype.kind == "f" and np.isnan(xa).any()):
        picked = _first_k(xa, k, largest)   # in index order
    else:
        picked = np.broadcast_to(np.arange(n), xa.shape)
    order = np.take_along_axis(picked, _sorted_order(np.take_along_axis(xa, picked, axis=-1), largest), axis=-1)[..., :k]
    values = np.take_along_axis(xa, order, axis=-1)
    return [np.ascontiguousarray(np.moveaxis(values, -1, axis)), np.ascontiguousarray(np.moveaxis(order, -1, axis))]


def _sorted_order(v, largest: bool):
    """Positions sorting v along its last axis, equal values by lower position; descending with a
    stable sort of the reversed axis read backwards (no negation: integers would overflow)."""
    if not largest:
        return np.argsort(v, axis=-1, kind="stable")
    m = v.shape[-1]
    return (m - 1) - np.flip(np.argsort(np.flip(v, -1), axis=-1, kind="stable"), -1)


def _first_k(xa, k: int, largest: bool):
    """[..., k] indices, ascending, of each row's k extreme values (NaN-free), equal values at the
    boundary taken by lower index: a partition finds the k-th value, a stable sort then orders only
    these k (a stable sort of whole rows of 1,000 took 280 us)."""
    n = xa.shape[-1]
    at = n - k if largest else k - 1
    part = np.argpartition(xa, at, axis=-1)
    kth = np.take_along_axis(xa, part[..., at:at + 1], axis=-1)
    tied = xa == kth
    if (np.count_nonzero(tied, axis=-1) == 1).all():   # one k-th value per row: the partition is the set
        return np.sort(part[..., at:] if largest else part[..., :k], axis=-1)
    beyond = xa > kth if largest else xa < kth
    room = k - np.count_nonzero(beyond, axis=-1, keepdims=True)
    keep = beyond | (tied & (np.cumsum(tied, axis=-1) <= room))
    return np.nonzero(keep.reshape(-1, n))[1].reshape(xa.shape[:-1] + (k,))


def gather_nd(node, data, indices):
    """Slices of data at index tuples, as rows of one take: each tuple (with its batch) becomes
    a row number of data seen as [rows, rest] (fancy indexing by r coordinate arrays took 4x)."""
    data, indices = np.asarray(data), np.asarray(indices)
    b = int(node.attrs.get("batch_dims", 0))
    if indices.dtype.kind not in "iu" or indices.ndim < 1 or data.ndim < 1:
        return None
    r = indices.shape[-1]
    if not 0 <= b < min(data.ndim, indices.ndim) or b + r > data.ndim or data.shape[:b] != indices.shape[:b]:
        raise ShapeError(f"{node.describe()}: indices {list(indices.shape)} with batch_dims {b} do not fit data "
                         f"{list(data.shape)}")
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    picked = data.shape[b:b + r]
    flat = indices.reshape(batch, -1, r)
    row = np.arange(batch, dtype=np.intp)[:, None] * int(np.prod(picked, dtype=np.int64))
    for j in range(r):   # row-major position of each tuple among the picked dims, then its batch
        row = row + checked_indices(node, flat[..., j], picked, j) * int(np.prod(picked[j + 1:], dtype=np.int64))
    rows = data.reshape((-1,) + data.shape[b + r:])
    return [rows.take(row.reshape(-1), axis=0).reshape(indices.shape[:-1] + data.shape[b + r:])]


_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scattered(data, where: tuple, updates, reduction: str):
    """A copy of data with ``updates`` written at the index arrays ``where`` (reduction "none": a
    repeated index keeps the last update, as in onnxruntime's loop) or combined by the reduction."""
    out = data.copy()
    values = updates.astype(data.dtype, copy=False)
    if reduction == "none":
        out[where] = values
    else:
        _REDUCE[reduction].at(out, where, values)
    return out


def scatter_elements(node, data, indices, updates):
    data, indices, updates = np.asarray(data), np.asarray(indices), np.asarray(updates)
    if indices.dtype.kind not in "iu" or data.ndim == 0:
        return None
    reduction = node.attrs.get("reduction", "none")
    if reduction != "none" and reduction not in _REDUCE:
        return None
    if indices.shape != updates.shape or indices.ndim != data.ndim or \
            any(i > d for i, d in zip(indices.shape, data.shape)):
        raise ShapeError(f"{node.describe()}: indices {list(indices.shape)} and updates {list(updates.shape)} must "
                         f"have one shape, of data's rank, within data {list(data.shape)}")
    axis = _axis(node, int(node.attrs.get("axis", 0)), data.ndim)
    where = list(np.ix_(*[np.arange(s) for s in indices.shape]))
    where[axis] = checked_indices(node, indices, data.shape, axis)
    return [_scattered(data, tuple(where), updates, reduction)]


def scatter_nd(node, data, indices, updates):
    data, indices, updates = np.asarray(data), np.asarray(indices), np.asarray(updates)
    reduction = node.attrs.get("reduction", "none")
    if indices.dtype.kind not in "iu" or indices.ndim < 1 or (reduction != "none" and reduction not in _REDUCE):
        return None
    r = indices.shape[-1]
    if r > data.ndim or updates.shape != indices.shape[:-1] + data.shape[r:]:
        raise ShapeError(f"{node.describe()}: updates {list(updates.shape)} must be indices' {list(indices.shape[:-1])} "
                         f"then data's {list(data.shape[r:])} (data {list(data.shape)}, indices {list(indices.shape)})")
    flat = indices.reshape(-1, r)
    where = tuple(checked_indices(node, flat[:, j], data.shape, j) for j in range(r))
    return [_scattered(data, where, updates.reshape((flat.shape[0],) + data.shape[r:]), reduction)]


def non_zero(node, x):
    x = np.asarray(x)
    if x.ndim == 0:
        return None
    return [np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)]


def _running(ufunc, identity):
    """CumSum / CumProd: the running ``ufunc`` along the axis input, in order (numpy's
    accumulate, as onnxruntime's loop), optionally excluding each element itself (``identity``
    first) and from the end. An axis outside the input's dims raises."""
    def kernel(node, x, axis):
        x = np.asarray(x)
        if x.ndim == 0 or x.dtype.kind not in "iuf" or np.size(axis) != 1:
            return None
        a = _axis(node, int(np.asarray(axis).reshape(-1)[0]), x.ndim)
        reverse = bool(node.attrs.get("reverse", 0))
        v = np.flip(x, a) if reverse else x
        out = ufunc.accumulate(v, axis=a, dtype=x.dtype)
        if node.attrs.get("exclusive", 0):   # shifted one along, the identity first: no inverse's rounding
            shifted = np.full_like(out, identity)
            dst = [slice(None)] * x.ndim
            src = [slice(None)] * x.ndim
            dst[a], src[a] = slice(1, None), slice(0, -1)
            shifted[tuple(dst)] = out[tuple(src)]
            out = shifted
        return [np.ascontiguousarray(np.flip(out, a)) if reverse else out]
    return kernel


cum_sum = _running(np.add, 0)
cum_prod = _running(np.multiply, 1)


def unique(node, x):
    """Unique values (or slices along ``axis``), the first index of each, the inverse and the
    counts; sorted=0 keeps the order of first appearance. numpy's unique, with its int64 outputs
    in onnxruntime's shapes."""
    x = np.asarray(x)
    if x.dtype.kind not in "iufb" or x.size == 0:
        return None
    axis = node.attrs.get("axis")
    if axis is not None:
        axis = _axis(node, int(axis), x.ndim)
    y, first, inverse, counts = np.unique(x if axis is not None else x.reshape(-1), return_index=True,
                                          return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not node.attrs.get("sorted", 1):   # in order of first appearance
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        y = np.take(y, order, axis=axis if axis is not None else 0)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return [y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)]


def einsum(node, *operands):
    """numpy's einsum of the equation along a contraction path found once per input shapes (the
    same einsum onnx.reference calls, without its evaluator's per-call costs)."""
    eq = node.attrs.get("equation")
    arrays = [np.asarray(a) for a in operands]
    if not isinstance(eq, str) or not arrays or any(a.dtype != arrays[0].dtype or a.dtype.kind not in "iuf"
                                                     for a in arrays):
        return None
    eq = eq.replace(" ", "")
    try:
        path = False
        if len(arrays) > 1:   # the contraction order, found once per input shapes (einsum_path took 20 us a call)
            paths = node.__dict__.setdefault("_einsum_paths", {})
            key = tuple(a.shape for a in arrays)
            path = paths.get(key)
            if path is None:
                path = paths[key] = np.einsum_path(eq, *arrays, optimize="greedy")[0]
        out = np.einsum(eq, *arrays, optimize=path)
    except ValueError as exc:
        raise ShapeError(f"{node.describe()}: equation {eq!r} does not fit inputs {[list(a.shape) for a in arrays]}: "
                         f"{exc}") from None
    return [np.asarray(out, dtype=arrays[0].dtype)]


KERNELS = {("", "TopK"): top_k, ("", "GatherND"): gather_nd, ("", "ScatterElements"): scatter_elements,
           ("", "Scatter"): scatter_elements, ("", "ScatterND"): scatter_nd, ("", "NonZero"): non_zero,
           ("", "CumSum"): cum_sum, ("", "CumProd"): cum_prod, ("", "Unique"): unique, ("", "Einsum"): einsum}
