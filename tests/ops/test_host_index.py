"""TopK, GatherND, ScatterElements, ScatterND, NonZero and CumSum on host kernels of ours
(ggonnx.host_index) against onnxruntime: ties, both directions, any axis; batch_dims and negative
indices; every reduction with repeated indices; out-of-range indices named."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

from ._helpers import THREADS, seeds, shapes

_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.int64: TensorProto.INT64,
          np.int32: TensorProto.INT32}


def _run_both(node, feeds: dict, outs: list, consts: dict | None = None, opset: int = 18):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, _TYPES[a.dtype.type], a.shape)
                                            for n, a in feeds.items()],
                              [helper.make_tensor_value_info(o, t, None) for o, t in outs],
                              [numpy_helper.from_array(a, n) for n, a in (consts or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, feeds)
    assert [p.where for p in sess.placement()] == ["host"]
    return got, want


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 3, max_side=40), largest=st.integers(0, 1), ties=st.booleans(), k_pick=st.integers(0, 100),
       axis_pick=st.integers(0, 2), dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int32]),
       c_pass=st.booleans(), seed=seeds)
def test_top_k_matches_onnxruntime(shape, largest, ties, k_pick, axis_pick, dtype, c_pass, seed):
    """TopK by the C pass (k up to host_index.TOPK_C_MAX_K) and by numpy's partition (above)."""
    from ggonnx import host_index
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, shape) if ties else rng.standard_normal(shape) * 100
    x = x.astype(dtype)
    axis = axis_pick % len(shape)
    k = k_pick % (shape[axis] + 1)
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    saved, host_index.TOPK_C_MAX_K = host_index.TOPK_C_MAX_K, (host_index.TOPK_C_MAX_K if c_pass else 0)
    try:
        got, want = _run_both(node, {"x": x}, [("v", _TYPES[dtype]), ("i", TensorProto.INT64)],
                              {"k": np.array([k], np.int64)})
    finally:
        host_index.TOPK_C_MAX_K = saved
    for a, e in zip(got, want):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 4), m=st.integers(1, 30), k_pick=st.integers(0, 30), largest=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=seeds)
def test_top_k_c_pass_orders_nan_and_ties_as_numpy(rows, m, k_pick, largest, dtype, seed):
    """NaN is the largest value and ties go to the lower index in both of our TopK paths (the C
    pass and numpy's stable sort), with infinities and signed zeros among the values."""
    from ggonnx import _core, host_index
    from ggonnx.ir import Node
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5], dtype), (rows, m))
    k = k_pick % (m + 1)
    node = Node("topk", "TopK", "", ["x", "k"], ["v", "i"], {"largest": int(largest)}, 11)
    saved, host_index.TOPK_C_MAX_K = host_index.TOPK_C_MAX_K, 0
    try:
        want = host_index.top_k(node, x, np.array([k]))
    finally:
        host_index.TOPK_C_MAX_K = saved
    values, indices = _core.top_k_rows(x, k, largest)
    np.testing.assert_array_equal(indices, want[1])
    np.testing.assert_array_equal(values, want[0])


@settings(max_examples=40, deadline=None)
@given(batch_dims=st.integers(0, 1), r=st.integers(1, 2), rows=st.integers(1, 6), seed=seeds)
def test_gather_nd_matches_onnxruntime(batch_dims, r, rows, seed):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    dims = data.shape[batch_dims:batch_dims + r]
    idx = np.stack([rng.integers(-d, d, (3, rows) if batch_dims else (rows,)) for d in dims], axis=-1).astype(np.int64)
    node = helper.make_node("GatherND", ["d", "i"], ["y"], batch_dims=batch_dims)
    (got,), (want,) = _run_both(node, {"d": data, "i": idx}, [("y", TensorProto.FLOAT)])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(reduction=st.sampled_from(["none", "add", "mul", "max", "min"]), axis=st.integers(-2, 1),
       repeats=st.booleans(), seed=seeds)
def test_scatter_elements_matches_onnxruntime(reduction, axis, repeats, seed):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((4, 6)).astype(np.float32)
    upd_shape = (3, 4) if axis % 2 == 0 else (4, 3)
    bound = data.shape[axis]
    if repeats:   # repeated targets: reductions accumulate, "none" keeps the last update (both runtimes)
        idx = rng.integers(-bound, bound, upd_shape)
    else:         # distinct targets along each line, negative half the time
        idx = np.stack([rng.permutation(bound)[:upd_shape[axis % 2]] for _ in range(upd_shape[1 - axis % 2])],
                       axis=1 - axis % 2) - (bound if seed % 2 else 0)
    updates = rng.standard_normal(upd_shape).astype(np.float32)
    node = helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=axis, reduction=reduction)
    (got,), (want,) = _run_both(node, {"d": data, "i": idx.astype(np.int64), "u": updates}, [("y", TensorProto.FLOAT)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_out_of_range_indices_name_the_node():
    node = helper.make_node("GatherND", ["d", "i"], ["y"], name="the_node")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("d", TensorProto.FLOAT, [3, 2]),
                                            helper.make_tensor_value_info("i", TensorProto.INT64, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    with pytest.raises(ggonnx.GgonnxError, match="the_node.*GatherND.*must lie in"):
        sess.run(None, {"d": np.zeros((3, 2), np.float32), "i": np.array([[7]], np.int64)})


@settings(max_examples=40, deadline=None)
@given(reduction=st.sampled_from(["none", "add", "mul", "max", "min"]), r=st.integers(1, 3), n=st.integers(1, 5),
       seed=seeds)
def test_scatter_nd_matches_onnxruntime(reduction, r, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((4, 3, 5)).astype(np.float32)
    if reduction == "none":   # distinct targets: onnxruntime leaves a repeated one's order open
        n = min(n, int(np.prod(data.shape[:r])))
        flat = rng.permutation(int(np.prod(data.shape[:r])))[:n]
        idx = np.stack(np.unravel_index(flat, data.shape[:r]), axis=-1)
    else:
        idx = np.stack([rng.integers(0, d, n) for d in data.shape[:r]], axis=-1)
    idx = np.where(rng.random(idx.shape) < 0.3, idx - np.array(data.shape[:r]), idx).astype(np.int64)  # negatives
    updates = rng.standard_normal((n,) + data.shape[r:]).astype(np.float32)
    node = helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)
    (got,), (want,) = _run_both(node, {"d": data, "i": idx, "u": updates}, [("y", TensorProto.FLOAT)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shape=shapes(1, 4, max_side=6), density=st.sampled_from([0.0, 0.3, 1.0]), seed=seeds)
def test_non_zero_matches_onnxruntime(shape, density, seed):
    x = (np.random.default_rng(seed).random(shape) < density).astype(np.float32)
    (got,), (want,) = _run_both(helper.make_node("NonZero", ["x"], ["y"]), {"x": x}, [("y", TensorProto.INT64)])
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["CumSum", "CumProd"]), shape=shapes(1, 3, max_side=8), exclusive=st.integers(0, 1),
       reverse=st.integers(0, 1), axis_pick=st.integers(0, 5), dtype=st.sampled_from([np.float32, np.int64, np.int32]),
       seed=seeds)
def test_cum_sum_and_prod_match_onnxruntime(op, shape, exclusive, reverse, axis_pick, dtype, seed):
    scale = 10 if op == "CumSum" else 1.5   # products of a few dozen values near 1 stay finite
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    axis = axis_pick % len(shape) - (len(shape) if axis_pick >= 3 else 0)
    node = helper.make_node(op, ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)
    (got,), (want,) = _run_both(node, {"x": x}, [("y", _TYPES[dtype])], {"a": np.array(axis, np.int64)},
                                opset=18 if op == "CumSum" else 26)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_run_time_axes_and_split_sizes_out_of_range_raise():
    """A cumulative op's axis input outside the dims, and split sizes that are negative or do not
    add up to the split dim, raise naming the node, as onnxruntime refuses them (they computed
    along axis 0, or split short, before)."""
    x = np.arange(6, dtype=np.float32)
    node = helper.make_node("CumProd", ["x", "a"], ["y"], name="the_node")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6]),
                                            helper.make_tensor_value_info("a", TensorProto.INT32, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])
    with pytest.raises(ggonnx.errors.GgonnxError, match="the_node.*axis -2147483648 out of range"):
        ggonnx.Session(model, threads=THREADS).run(None, {"x": x, "a": np.array([-2**31], np.int32)})
    for op, outs, sizes in (("Split", ["y0", "y1"], [2, 1000000]), ("Split", ["y0", "y1"], [7, -1]),
                            ("SplitToSequence", ["y0"], [2, 3]), ("SplitToSequence", ["y0"], 0)):
        node = helper.make_node(op, ["x", "s"], outs, name="the_node")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6]),
                                                helper.make_tensor_value_info("s", TensorProto.INT64, np.shape(sizes))],
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
                                  if op == "Split" else [helper.make_tensor_sequence_value_info("y0", TensorProto.FLOAT,
                                                                                                None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        with pytest.raises(ggonnx.errors.InvalidInputError, match="the_node.*split size"):
            ggonnx.Session(model, threads=THREADS).run(None, {"x": x, "s": np.array(sizes, np.int64)})
    node = helper.make_node("SplitToSequence", ["x", "s"], ["y0"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6]),
                                            helper.make_tensor_value_info("s", TensorProto.INT64, [])],
                              [helper.make_tensor_sequence_value_info("y0", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x, "s": np.array(4, np.int64)})[0]
    assert [p.tolist() for p in got] == [[0, 1, 2, 3], [4, 5]]


@settings(max_examples=40, deadline=None)
@given(shape=shapes(1, 3, max_side=6), axis_pick=st.sampled_from([None, 0, 1, -1]), sorted_=st.integers(0, 1),
       dtype=st.sampled_from([np.float32, np.int64]), seed=seeds)
def test_unique_matches_onnxruntime(shape, axis_pick, sorted_, dtype, seed):
    x = np.random.default_rng(seed).integers(-2, 3, shape).astype(dtype)   # repeats
    attrs = {"sorted": sorted_}
    if axis_pick is not None:
        attrs["axis"] = axis_pick % len(shape) if axis_pick >= 0 else axis_pick
    node = helper.make_node("Unique", ["x"], ["y", "i", "inv", "c"], **attrs)
    got, want = _run_both(node, {"x": x}, [("y", _TYPES[dtype]), ("i", TensorProto.INT64), ("inv", TensorProto.INT64),
                                            ("c", TensorProto.INT64)])
    for a, e in zip(got, want):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("equation, shapes", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->ji", [(3, 4)]), ("ii->i", [(4, 4)]), ("ij,j->i", [(3, 4), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 2)]), ("i,i", [(5,), (5,)]), ("abc,cd->abd", [(2, 3, 4), (4, 6)]),
    ("ij->", [(3, 3)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)])])
def test_einsum_matches_onnxruntime(equation, shapes):
    rng = np.random.default_rng(0)
    feeds = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    node = helper.make_node("Einsum", list(feeds), ["y"], equation=equation)
    (got,), (want,) = _run_both(node, feeds, [("y", TensorProto.FLOAT)], opset=12)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
