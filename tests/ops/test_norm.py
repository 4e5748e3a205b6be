"""Normalizations and reductions: BatchNormalization, LayerNormalization, RMSNormalization, LRN, ReduceMean,
ReduceSum."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ._helpers import (assert_close, floats32, given_attrs, randn, run_op_placed, seeds, shapes, signed_axes,
                       sum_atol)


@st.composite
def batchnorm_cases(draw):
    return dict(shape=draw(shapes(2, 4, max_side=4)), opset=draw(st.sampled_from([9, 15])),
                epsilon=draw(st.none() | floats32(1e-6, 0.1)))


# the parameters are initializers in real models (ggml); as graph inputs the host runs the node
@pytest.mark.parametrize("params_const", [True, False])
@settings(max_examples=40, deadline=None)
@given(case=batchnorm_cases(), seed=seeds)
def test_batchnorm(params_const, case, seed):
    shape = case["shape"]
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, scale, bias, mean = randn(rng, shape), randn(rng, (c,)), randn(rng, (c,)), randn(rng, (c,))
    var = rng.uniform(0.1, 2.0, c).astype(np.float32)
    (got,), where = run_op_placed("BatchNormalization", [x, scale, bias, mean, var],
                                  const=(1, 2, 3, 4) if params_const else (), opset=case["opset"],
                                  **given_attrs(epsilon=case["epsilon"]))
    # one output: inference mode, normalizing with the given mean and var
    eps = 1e-5 if case["epsilon"] is None else case["epsilon"]
    bshape = (c,) + (1,) * (len(shape) - 2)
    p = {k: v.astype(np.float64).reshape(bshape) for k, v in dict(scale=scale, bias=bias, mean=mean, var=var).items()}
    want = (x - p["mean"]) / np.sqrt(p["var"] + eps) * p["scale"] + p["bias"]
    assert_close(got, want)
    if params_const:
        assert where == "ggml"


@st.composite
def _broadcasting_to(draw, shape):
    """A shape that broadcasts to ``shape`` without growing it: a suffix, some dims set to 1."""
    suffix = shape[draw(st.integers(0, len(shape))):]
    return tuple(1 if draw(st.booleans()) else d for d in suffix)


@st.composite
def layernorm_cases(draw):
    shape = draw(shapes(1, 4, max_side=5))
    rank = len(shape)
    axis = draw(st.none() | st.integers(-rank, rank - 1))
    normalized = shape[(-1 if axis is None else axis):]
    return dict(shape=shape, axis=axis, scale=draw(_broadcasting_to(normalized)),
                bias=draw(st.none() | _broadcasting_to(normalized)), epsilon=draw(st.none() | floats32(1e-6, 1e-2)),
                const=tuple(i for i in (1, 2) if draw(st.booleans())))


@settings(max_examples=60, deadline=None)
@given(case=layernorm_cases(), seed=seeds)
def test_layer_norm(case, seed):
    shape, axis = case["shape"], case["axis"]
    rng = np.random.default_rng(seed)
    x, scale = randn(rng, shape), randn(rng, case["scale"])
    bias = None if case["bias"] is None else randn(rng, case["bias"])
    (got,), where = run_op_placed("LayerNormalization", [x, scale, bias], const=case["const"], opset=17,
                                  **given_attrs(axis=axis, epsilon=case["epsilon"]))
    start = (-1 if axis is None else axis) % len(shape)
    axes = tuple(range(start, len(shape)))
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=axes, keepdims=True)
    eps = 1e-5 if case["epsilon"] is None else case["epsilon"]
    want = centered / np.sqrt((centered ** 2).mean(axis=axes, keepdims=True) + eps) * scale
    if bias is not None:
        want = want + bias
    assert_close(got, want, atol=sum_atol(int(np.prod(shape[start:]))))
    assert where == "ggml"


@settings(max_examples=30, deadline=None)
@given(rows=st.sampled_from([(1, 1), (1, 7), (2, 5)]), hidden=st.sampled_from([1, 15, 16, 17, 33, 768]),
       with_bias=st.booleans(), seed=seeds)
def test_layer_norm_full_scale_and_bias(rows, hidden, with_bias, seed):
    # a transformer's LayerNorm: scale and bias of the normalized size, one pass per row (NORM_AFFINE)
    # over the vector width and its tail, rows split between threads
    rng = np.random.default_rng(seed)
    x = randn(rng, rows + (hidden,)) * 3 + 1
    scale, bias = randn(rng, (hidden,)), randn(rng, (hidden,)) if with_bias else None
    (got,), where = run_op_placed("LayerNormalization", [x, scale, bias], const=(1, 2), opset=17)
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=-1, keepdims=True)
    want = centered / np.sqrt((centered ** 2).mean(axis=-1, keepdims=True) + 1e-5) * scale
    if bias is not None:
        want = want + bias
    assert_close(got, want, atol=sum_atol(hidden))
    assert where == "ggml"


def lrn_reference(x, size, alpha, beta, bias):
    """The spec: x / (bias + alpha/size * square_sum)^beta, square_sum[n, c] over the channels
    [c - floor((size-1)/2), c + ceil((size-1)/2)] that exist."""
    x = x.astype(np.float64)
    lo = (size - 1) // 2
    sq = np.pad(x ** 2, [(0, 0), (lo, size - 1 - lo), (0, 0), (0, 0)])
    c = x.shape[1]
    square_sum = sum(sq[:, i:i + c] for i in range(size))
    return x / (bias + alpha / size * square_sum) ** beta


@st.composite
def lrn_cases(draw):
    # more channels than the window, and fewer
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return dict(shape=shape, size=draw(st.integers(1, 6)), alpha=draw(st.none() | floats32(1e-4, 1.0)),
                beta=draw(st.none() | floats32(0.25, 1.5)), bias=draw(st.none() | floats32(0.5, 2.0)))


@settings(max_examples=60, deadline=None)
@given(case=lrn_cases(), scale=st.sampled_from([1.0, 3.0]), seed=seeds)
def test_lrn(case, scale, seed):
    x = randn(np.random.default_rng(seed), case["shape"], scale)
    (got,), where = run_op_placed("LRN", [x], size=case["size"],
                                  **given_attrs(alpha=case["alpha"], beta=case["beta"], bias=case["bias"]))
    defaults = dict(alpha=1e-4, beta=0.75, bias=1.0)
    params = {k: defaults[k] if case[k] is None else case[k] for k in defaults}
    assert_close(got, lrn_reference(x, case["size"], **params))
    assert where == "ggml"


# (op, opset, how axes are given): ReduceMean takes them as an input from opset 18, ReduceSum from 13
REDUCE_FORMS = [("ReduceMean", 13, "attribute"), ("ReduceMean", 18, "input"),
                ("ReduceSum", 11, "attribute"), ("ReduceSum", 13, "input")]
REDUCE_FNS = {"ReduceMean": np.mean, "ReduceSum": np.sum}


@st.composite
def reduce_cases(draw):
    op, opset, form = draw(st.sampled_from(REDUCE_FORMS))
    shape = draw(shapes(0, 4, max_side=4))
    rank = len(shape)
    if rank and draw(st.booleans()):
        picked = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        axes = signed_axes(draw, picked, rank)
    else:
        # no axes: the input omitted, or (as an input) an empty tensor
        axes = draw(st.sampled_from([None, []])) if form == "input" else None
    noop = draw(st.none() | st.integers(0, 1)) if form == "input" else None
    return dict(op=op, opset=opset, form=form, shape=shape, axes=axes, keepdims=draw(st.none() | st.integers(0, 1)),
                noop=noop)


@settings(max_examples=120, deadline=None)
@given(case=reduce_cases(), seed=seeds)
def test_reduce(case, seed):
    op, axes, shape = case["op"], case["axes"], case["shape"]
    x = randn(np.random.default_rng(seed), shape)
    attrs = given_attrs(keepdims=case["keepdims"], noop_with_empty_axes=case["noop"])
    if case["form"] == "attribute":
        inputs, const = [x], ()
        attrs.update(given_attrs(axes=axes))
    else:
        inputs, const = [x, None if axes is None else np.array(axes, dtype=np.int64)], (1,)
    (got,), where = run_op_placed(op, inputs, const=const, opset=case["opset"], **attrs)

    x64 = x.astype(np.float64)
    if not axes and case["noop"]:
        # noop_with_empty_axes: no axes means the identity, not a full reduction
        want, reduced = x64, ()
    else:
        reduced = tuple(range(len(shape))) if not axes else tuple(a % len(shape) for a in axes)
        want = REDUCE_FNS[op](x64, axis=reduced, keepdims=case["keepdims"] != 0)
    assert_close(got, want, atol=sum_atol(int(np.prod([shape[a] for a in reduced]))))
    if reduced:
        assert where == "ggml"


@settings(max_examples=40, deadline=None)
@given(shape=shapes(1, 4, min_side=1, max_side=6), data=st.data(), eps=st.sampled_from([1e-6, 1e-5, 0.1]),
       seed=seeds)
def test_rms_normalization(shape, data, eps, seed):
    """RMSNormalization (opset 23) over the dims from axis on, scaled: ggml_rms_norm."""
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    x, scale = randn(rng, shape), randn(rng, shape[a:])
    (got,), where = run_op_placed("RMSNormalization", [x, scale], const=(1,), opset=23, axis=axis, epsilon=eps)
    x64 = x.astype(np.float64)
    ms = (x64 ** 2).mean(axis=tuple(range(a, len(shape))), keepdims=True)
    assert_close(got, x64 / np.sqrt(ms + np.float32(eps)) * scale, rtol=1e-4, atol=1e-5)
    assert where == "ggml"
