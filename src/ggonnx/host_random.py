"""Host kernels of the random ops, so that ``ggonnx.set_seed`` seeds the nodes without a seed
attribute (onnx.reference draws those from a fresh, unseeded generator on every call).

A node with a ``seed`` attribute draws the same values on every run, as onnx.reference does; the
values are NumPy's (PCG64), not onnxruntime's.
"""
from __future__ import annotations

import numpy as np

from ggonnx import runtime_info
from ggonnx.errors import ShapeError

_process_rng = np.random.default_rng()


def _rng(node):
    seed = node.attrs.get("seed")
    if seed is not None:
        return np.random.default_rng(int(seed))
    return runtime_info.seeded_rng() or _process_rng


def _dtype(node, default):
    import onnx.helper
    code = node.attrs.get("dtype")
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(code))) if code is not None else np.dtype(default)


def _shape(node, like):
    shape = np.shape(like) if like is not None else tuple(int(d) for d in node.attrs.get("shape", ()))
    if any(d < 0 for d in shape):
        raise ShapeError(f"{node.describe()}: negative dims in shape {list(shape)}")
    return shape


def random_normal(node, like=None):
    shape = _shape(node, like)
    dtype = _dtype(node, np.asarray(like).dtype if like is not None else np.float32)
    mean, scale = float(node.attrs.get("mean", 0.0)), float(node.attrs.get("scale", 1.0))
    return [_rng(node).normal(mean, scale, shape).astype(dtype)]


def random_uniform(node, like=None):
    shape = _shape(node, like)
    dtype = _dtype(node, np.asarray(like).dtype if like is not None else np.float32)
    low, high = float(node.attrs.get("low", 0.0)), float(node.attrs.get("high", 1.0))
    return [_rng(node).uniform(low, high, shape).astype(dtype)]


def bernoulli(node, p):
    p = np.asarray(p)
    return [(_rng(node).uniform(0.0, 1.0, p.shape) < p).astype(_dtype(node, p.dtype))]


def multinomial(node, logits):
    """[batch, classes] unnormalized log-probabilities -> [batch, sample_size] class indices."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ShapeError(f"{node.describe()}: input must be [batch, classes], got {list(logits.shape)}")
    n = int(node.attrs.get("sample_size", 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    rng = _rng(node)
    out = np.stack([rng.choice(logits.shape[1], size=n, p=row) for row in probs])
    return [out.astype(_dtype(node, np.int32))]


# never folded at load or plan time: each run draws again
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
                        "Multinomial"})

KERNELS = {("", "RandomNormal"): random_normal, ("", "RandomNormalLike"): random_normal,
           ("", "RandomUniform"): random_uniform, ("", "RandomUniformLike"): random_uniform,
           ("", "Bernoulli"): bernoulli, ("", "Multinomial"): multinomial}
