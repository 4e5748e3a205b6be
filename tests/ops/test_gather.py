"""Gather of matrix rows (embedding lookups) against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ggonnx.errors import InvalidInputError

from ._helpers import assert_close, randn, run_op_placed, seeds


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
