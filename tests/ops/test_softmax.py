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


@settings(max_examples=40, deadline=None)
@given(heads=st.integers(1, 3), rows=st.integers(1, 4), n=st.sampled_from([1, 7, 16, 33, 197]),
       mask_shape=st.sampled_from(["row", "per_row", "per_head", "full"]), scale=st.sampled_from([None, 0.125, -0.5]),
       mask_input=st.booleans(), seed=seeds)
def test_softmax_of_scaled_and_masked_scores(heads, rows, n, mask_shape, scale, mask_input, seed):
    """Softmax(x * s + mask), attention's scores: the scaling and the Add of a mask that repeats
    over heads and rows run inside the softmax (one graph node where s > 0 or s is absent); a
    -1e9 or -inf mask entry gives exactly 0. Matches NumPy, the mask fed or a constant."""
    from onnx import TensorProto, helper, numpy_helper

    import ggonnx
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((1, heads, rows, n)) * 4).astype(np.float32)
    m_shape = {"row": (n,), "per_row": (1, 1, rows, n), "per_head": (1, heads, 1, n), "full": (1, heads, rows, n)}[mask_shape]
    mask = np.where(rng.random(m_shape) < 0.3, np.float32(-1e9), np.float32(0)).astype(np.float32)
    mask[..., 0] = 0                         # every row keeps one score
    if mask_shape == "full" and n > 1:
        mask[..., -1] = -np.inf
    nodes, inits, inputs = [], [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))]
    scores = "x"
    if scale is not None:
        nodes.append(helper.make_node("Mul", ["x", "s"], ["xs"]))
        inits.append(numpy_helper.from_array(np.array(scale, np.float32), "s"))
        scores = "xs"
    if mask_input:
        inputs.append(helper.make_tensor_value_info("m", TensorProto.FLOAT, list(m_shape)))
    else:
        inits.append(numpy_helper.from_array(mask, "m"))
    nodes += [helper.make_node("Add", [scores, "m"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))],
                          inits)
    sess = ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    (got,) = sess.run(None, {"x": x, "m": mask} if mask_input else {"x": x})
    z = x.astype(np.float64) * (1.0 if scale is None else np.float32(scale)) + mask
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert np.all(got[np.broadcast_to(mask, x.shape) < -1e8] == 0)
    plan = next(iter(sess._runner.plans.values()))
    if mask_input or mask.size > 1:  # a one-value constant mask is a scalar Add: folded as a bias instead
        assert (plan.single.n_nodes == 1) == (scale is None or scale > 0)
