"""Slice, Split and Expand (views and repeats in ggml) against NumPy."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import onnxruntime as ort

from ._helpers import assert_close, make_model, op_node, randn, run_op_placed, seeds, shapes


@st.composite
def slice_cases(draw):
    shape = draw(shapes(1, 4, max_side=6))
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                         unique_by=lambda a: a % len(shape)))
    # starts/ends beyond the dims and negative ones: ONNX clamps like Python slices for positive
    # steps; for negative ones it clamps starts to [0, dim - 1] (a Python slice would be empty)
    starts = [draw(st.integers(-8, 8)) for _ in axes]
    ends = [draw(st.integers(-8, 8)) for _ in axes]
    step = draw(st.sampled_from([1, 1, 1, 2, -1]))
    return shape, axes, starts, ends, step


@settings(max_examples=80, deadline=None)
@given(case=slice_cases(), seed=seeds)
def test_slice(case, seed):
    shape, axes, starts, ends, step = case
    x = randn(np.random.default_rng(seed), shape)
    args = [x, np.array(starts, np.int64), np.array(ends, np.int64), np.array(axes, np.int64),
            np.full(len(axes), step, np.int64)]
    if step > 0:
        index = [slice(None)] * len(shape)
        for a, s, e in zip(axes, starts, ends):
            index[a % len(shape)] = slice(s, e, step)
        want = x[tuple(index)]
    else:  # onnxruntime is the oracle of the negative-step clamping
        node, feeds, consts = op_node("Slice", args, const=(1, 2, 3, 4))
        model = make_model([node], feeds, consts).SerializeToString()
        (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    (got,), where = run_op_placed("Slice", args, const=(1, 2, 3, 4))
    assert_close(got, want, rtol=0, atol=0)
    if step == 1 and want.size:
        assert where == "ggml"


@st.composite
def split_cases(draw):
    shape = draw(shapes(1, 4, min_side=1, max_side=6))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    cuts = sorted(draw(st.lists(st.integers(1, max(dim - 1, 1)), max_size=3, unique=True))) if dim > 1 else []
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [dim])]
    return shape, axis, sizes


@settings(max_examples=60, deadline=None)
@given(case=split_cases(), seed=seeds, explicit=st.booleans())
def test_split(case, seed, explicit):
    shape, axis, sizes = case
    x = randn(np.random.default_rng(seed), shape)
    wants = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    if not explicit and len(set(sizes)) != 1:
        explicit = True  # equal parts only without the split input
    inputs = [x, np.array(sizes, np.int64)] if explicit else [x]
    outs, where = run_op_placed("Split", inputs, const=(1,), n_outputs=len(sizes), axis=axis)
    for got, want in zip(outs, wants):
        assert_close(got, want, rtol=0, atol=0)
    assert where == "ggml"


@st.composite
def expand_cases(draw):
    shape = draw(shapes(0, 3, max_side=3))
    extra = draw(st.lists(st.integers(1, 3), max_size=4 - len(shape)))
    # each kept dim: the same size, or expanded from 1, or 1 in the target
    target = [draw(st.sampled_from([d, 1] if d != 1 else [1, 2, 3])) for d in shape]
    return shape, extra + target


@settings(max_examples=60, deadline=None)
@given(case=expand_cases(), seed=seeds)
def test_expand(case, seed):
    shape, target = case
    x = randn(np.random.default_rng(seed), shape)
    want = x * np.ones(target, np.float32)
    (got,), where = run_op_placed("Expand", [x, np.array(target, np.int64)], const=(1,))
    assert_close(got, want, rtol=0, atol=0)
    if want.size and x.size:
        assert where == "ggml"
