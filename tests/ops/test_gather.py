"""Gather of matrix rows (embedding lookups) and GatherElements against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ggonnx.errors import InvalidInputError

from ._helpers import assert_close, randn, run_op, run_op_placed, seeds, shapes


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 12), width=st.integers(1, 9),
       idx_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       const_table=st.booleans(), idx_dtype=st.sampled_from([np.int64, np.int32]), seed=seeds)
def test_gather_rows(rows, width, idx_shape, const_table, idx_dtype, seed):
    rng = np.random.default_rng(seed)
    table = randn(rng, (rows, width))
    idx = rng.integers(-rows, rows, size=idx_shape).astype(idx_dtype)  # negatives count from the end
    (got,), where = run_op_placed("Gather", [table, idx], const=(0,) if const_table else ())
    assert_close(got, table[idx], rtol=0, atol=0)
    assert where == "ggml"


def test_out_of_range_indices_raise_not_crash():
    table = np.ones((5, 3), np.float32)
    with pytest.raises(InvalidInputError, match="Gather.*indices"):
        run_op_placed("Gather", [table, np.array([1, 5], np.int64)], const=(0,))


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 4, min_side=1, max_side=70), data=st.data(), seed=seeds)
def test_gather_elements_matches_numpy(shape, data, seed):
    """Our host kernel (onnx.reference's gathers row-wise past np.choose's 64 arrays): any axis,
    negative indices, index shapes up to the data's off the axis, long axes included."""
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    idx_shape = tuple(data.draw(st.integers(1, 3)) if k == a else data.draw(st.integers(1, d))
                      for k, d in enumerate(shape))
    x = randn(rng, shape)
    idx = rng.integers(-shape[a], shape[a], idx_shape).astype(np.int64)
    (got,) = run_op("GatherElements", [x, idx], const=(1,), axis=axis)
    window = tuple(slice(None) if k == a else slice(0, i) for k, i in enumerate(idx_shape))
    assert_close(got, np.take_along_axis(x[window], np.where(idx < 0, idx + shape[a], idx), a), rtol=0, atol=0)


def test_gather_elements_out_of_range_raises():
    with pytest.raises(InvalidInputError, match="GatherElements"):
        run_op("GatherElements", [np.ones((2, 3), np.float32), np.array([[0, 3]], np.int64)], axis=1)


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 4, max_side=5), data=st.data(), seed=seeds)
def test_gather_at_constant_indices_in_ggml(shape, data, seed):
    """Gather at constant indices on any axis (negative ones included; a scalar index drops the
    axis): views of runs of consecutive indices, in ggml, as numpy's take."""
    from onnx import helper
    from ._helpers import run_graph_placed
    rng = np.random.default_rng(seed)
    x = randn(rng, shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    size = shape[axis]
    ids = np.asarray(data.draw(st.one_of(st.integers(-size, size - 1),
                                         st.lists(st.integers(-size, size - 1), min_size=1, max_size=4))), np.int64)
    if x.ndim + ids.ndim - 1 > 4:
        ids = ids.reshape(-1)[:1].reshape(())
    node = helper.make_node("Gather", ["x", "ids"], ["y"], axis=axis)
    (got,), where = run_graph_placed([node], {"x": x}, {"ids": ids})
    assert where == ["ggml"]
    np.testing.assert_array_equal(got, np.take(x, ids, axis=axis))
