"""Softmax: opset < 13 flattens to 2-D at `axis`, opset >= 13 normalizes along `axis` only."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ._helpers import assert_close, randn, run_op, run_op_placed, seeds, shapes


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


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 4), n=st.sampled_from([1, 2, 15, 16, 17, 33, 197, 1500]), masked=st.floats(0, 0.9),
       mask_value=st.sampled_from([-np.inf, -1e9, np.finfo(np.float32).min]), seed=seeds)
def test_softmax_rows_with_masked_scores(rows, n, masked, mask_value, seed):
    """Our softmax kernel: any row length (vector tails), masked scores exactly 0, rows in L1."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * 4).astype(np.float32)
    drop = rng.random((rows, n)) < masked
    drop[:, 0] = False                      # every row keeps one score
    x[drop] = mask_value
    (got,), where = run_op_placed("Softmax", [x], opset=13, axis=-1)
    x64 = x.astype(np.float64)
    want = np.exp(x64 - x64.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert np.all(got[drop] == 0) and where == "ggml"


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), n=st.sampled_from([1, 7, 16, 33, 197]),
       scale=st.sampled_from([0.125, 0.5, 3.0, -0.5]), masked=st.booleans(), seed=seeds)
def test_scaled_softmax_fuses_the_scale(rows, n, scale, masked, seed):
    """Softmax(x * s), attention's scaling: s > 0 runs inside the softmax's exp pass (the scale
    row is left unread); a negative s stays a separate row. Both match NumPy."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import ggonnx
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * 4).astype(np.float32)
    if masked and n > 1 and scale > 0:  # a masked score times a negative scale would be +inf
        x[:, -1] = -np.inf
    g = helper.make_graph([helper.make_node("Mul", ["x", "s"], ["xs"]), helper.make_node("Softmax", ["xs"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])],
                          [numpy_helper.from_array(np.array(scale, np.float32), "s")])
    sess = ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    (got,) = sess.run(None, {"x": x})
    x64 = x.astype(np.float64) * np.float32(scale)
    want = np.exp(x64 - x64.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    assert_close(got, want, rtol=1e-5, atol=1e-7)
    plan = next(iter(sess._runner.plans.values()))
    assert (plan.single.n_nodes == 1) == (scale > 0)  # fused: the softmax is the graph's only node
