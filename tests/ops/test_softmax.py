"""Softmax: opset < 13 flattens to 2-D at `axis`, opset >= 13 normalizes along `axis` only."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ._helpers import assert_close, randn, run_op, seeds, shapes


def softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def softmax_reference(x: np.ndarray, axis: int, opset: int) -> np.ndarray:
    x = x.astype(np.float64)
    axis = axis % x.ndim
    if opset >= 13:
        return softmax_along(x, axis)
    rows = int(np.prod(x.shape[:axis]))
    return softmax_along(x.reshape(rows, -1), 1).reshape(x.shape)


@st.composite
def softmax_cases(draw):
    shape = draw(shapes(1, 4, max_side=6))
    rank = len(shape)
    opset = draw(st.sampled_from([1, 11, 13]))
    # negative axes only exist from opset 11 on
    lo = -rank if opset >= 11 else 0
    axis = st.integers(lo, rank - 1)
    # before opset 13 the default axis is 1, out of range for a 1-D input
    if opset >= 13 or rank > 1:
        axis = st.none() | axis
    return shape, opset, draw(axis)


@settings(max_examples=60, deadline=None)
@given(case=softmax_cases(), scale=st.sampled_from([1.0, 10.0]), seed=seeds)
def test_softmax(case, scale, seed):
    shape, opset, axis = case
    x = randn(np.random.default_rng(seed), shape, scale)
    attrs = {} if axis is None else {"axis": axis}
    (got,) = run_op("Softmax", [x], opset=opset, **attrs)
    default_axis = -1 if opset >= 13 else 1
    assert_close(got, softmax_reference(x, default_axis if axis is None else axis, opset))
