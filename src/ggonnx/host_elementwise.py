"""Host kernels for the elementwise glue of shape arithmetic and masks (Add, Equal, Where,
Range...), which plans fold per signature and which a plan family replays at every new cache
length, and for ArgMax / ArgMin (a classifier's label): one numpy call each, where
onnx.reference spends ~10-50 us in its evaluator's plumbing.

Inputs of two dtypes (a model onnx's checker would refuse) and float Range (whose element count
onnx.reference rounds its own way) return None: the planner then runs onnx.reference, as before
these kernels. Integer division by zero raises, as onnxruntime does (there is no right answer).
"""
from __future__ import annotations

import numpy as np

from ggonnx.errors import InvalidInputError, ShapeError


def _numeric(*arrays) -> bool:
    dt = arrays[0].dtype
    return all(a.dtype == dt for a in arrays) and (np.issubdtype(dt, np.number))


def _broadcast(node, fn, a, b):
    try:
        return fn(a, b)
    except ValueError as exc:
        raise ShapeError(f"{node.describe()}: inputs {a.shape} and {b.shape} do not broadcast") from exc


def _arith(fn):
    def kernel(node, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if not _numeric(a, b):
            return None
        with np.errstate(all="ignore"):  # float overflow and NaN follow IEEE, as onnxruntime's
            return [np.asarray(_broadcast(node, fn, a, b), dtype=a.dtype)]
    return kernel


def div(node, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if not _numeric(a, b):
        return None
    if np.issubdtype(a.dtype, np.integer):
        if np.any(b == 0):
            raise InvalidInputError(f"{node.describe()}: integer division by zero")
        q = _broadcast(node, np.floor_divide, a, b)
        q += ((q * b != a) & ((a < 0) != (b < 0))).astype(q.dtype)  # truncate toward zero, as C++
        return [q]
    with np.errstate(all="ignore"):
        return [np.asarray(_broadcast(node, np.divide, a, b), dtype=a.dtype)]


def _compare(fn):
    def kernel(node, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            return None
        return [np.asarray(_broadcast(node, fn, a, b))]
    return kernel


def _logical(fn):
    def kernel(node, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != np.bool_ or b.dtype != np.bool_:
            return None
        return [np.asarray(_broadcast(node, fn, a, b))]
    return kernel


def not_(node, x):
    x = np.asarray(x)
    return [np.logical_not(x)] if x.dtype == np.bool_ else None


def where(node, cond, x, y):
    cond, x, y = np.asarray(cond), np.asarray(x), np.asarray(y)
    if cond.dtype != np.bool_ or x.dtype != y.dtype:
        return None
    try:
        return [np.where(cond, x, y)]
    except ValueError as exc:
        raise ShapeError(f"{node.describe()}: condition {cond.shape}, X {x.shape} and Y {y.shape} "
                         f"do not broadcast") from exc


def range_(node, start, limit, delta):
    start, limit, delta = np.asarray(start), np.asarray(limit), np.asarray(delta)
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise ShapeError(f"{node.describe()}: start, limit and delta must be scalars, got "
                         f"{start.shape}, {limit.shape}, {delta.shape}")
    if not np.issubdtype(start.dtype, np.integer) or not start.dtype == limit.dtype == delta.dtype:
        return None
    s, e, d = int(start.reshape(())), int(limit.reshape(())), int(delta.reshape(()))
    if d == 0:
        return None  # onnx.reference's error names it
    return [np.arange(s, e, d, dtype=start.dtype)]


def log_softmax(node, x):
    """x - max - log(sum(exp(x - max))): onnx.reference takes the log of the softmax, which is
    -inf wherever exp underflows (a score 1e30 below the row's largest is -1e30, not -inf)."""
    if x.dtype.kind != "f" or x.ndim == 0:
        return None
    axis = node.attrs.get("axis", -1 if node.opset >= 13 else 1)
    if not -x.ndim <= axis < x.ndim:
        return None   # onnx.reference's error names it
    axis %= x.ndim
    shape = x.shape
    if node.opset < 13:   # the input seen as [prod(dims before axis), prod(the rest)]
        x = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
        axis = 1
    with np.errstate(invalid="ignore", over="ignore"):
        d = x - np.max(x, axis=axis, keepdims=True)
        y = d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))
    return [y.reshape(shape).astype(x.dtype, copy=False)]


def _arg(fn):
    """ArgMax / ArgMin (a classifier's label step): the first extreme along ``axis`` (the last
    with select_last_index), NaN winning at its first place as in NumPy; int64 indices."""
    def kernel(node, x):
        x = np.asarray(x)
        if x.ndim == 0 or not _numeric(x):
            return None
        axis = int(node.attrs.get("axis", 0))
        if not -x.ndim <= axis < x.ndim:
            raise ShapeError(f"{node.describe()}: axis {axis} is out of range for an input of rank {x.ndim}")
        axis %= x.ndim
        if x.shape[axis] == 0:
            return None  # onnx.reference names the empty reduction
        if node.attrs.get("select_last_index", 0):
            idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
        else:
            idx = fn(x, axis=axis)
        idx = np.asarray(idx, dtype=np.int64)
        return [np.expand_dims(idx, axis) if node.attrs.get("keepdims", 1) else idx]
    return kernel


KERNELS = {("", "ArgMax"): _arg(np.argmax), ("", "ArgMin"): _arg(np.argmin), ("", "Add"): _arith(np.add), ("", "Sub"): _arith(np.subtract), ("", "Mul"): _arith(np.multiply),
           ("", "Div"): div,
           ("", "Equal"): _compare(np.equal), ("", "Less"): _compare(np.less),
           ("", "LessOrEqual"): _compare(np.less_equal), ("", "Greater"): _compare(np.greater),
           ("", "GreaterOrEqual"): _compare(np.greater_equal),
           ("", "And"): _logical(np.logical_and), ("", "Or"): _logical(np.logical_or),
           ("", "Xor"): _logical(np.logical_xor), ("", "Not"): not_,
           ("", "Where"): where, ("", "Range"): range_, ("", "LogSoftmax"): log_softmax}
