"""A classifier's label step in ggml: ArgMax / ArgMin along any axis (NaN and ties as NumPy), and
ArrayFeatureExtractor of a constant class table at those indices, cast to int64: the whole
model one ggml graph, checked against NumPy and onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

from ._helpers import THREADS, randn, run_graph_placed, seeds, shapes


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 4, max_side=6), op=st.sampled_from(["ArgMax", "ArgMin"]), keepdims=st.integers(0, 1),
       last=st.integers(0, 1), special=st.sampled_from(["none", "ties", "nan"]), axis_pick=st.integers(0, 3),
       seed=seeds)
def test_arg_extreme_in_ggml_matches_numpy(shape, op, keepdims, last, special, axis_pick, seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, shape)
    if special == "ties":   # few distinct values: first / last among equals matters
        x = np.round(x).astype(np.float32)
    elif special == "nan":
        x.reshape(-1)[rng.integers(0, x.size, 1 + x.size // 5)] = np.nan
    axis = axis_pick % len(shape) - (len(shape) if axis_pick >= 2 else 0)   # negative axes too
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=last)
    (got,), where = run_graph_placed([node], {"x": x}, opset=13, out_types={"y": TensorProto.INT64})
    fn = np.argmax if op == "ArgMax" else np.argmin
    want = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis) if last else fn(x, axis=axis)
    if keepdims:
        want = np.expand_dims(want, axis)
    assert where == ["ggml"] and got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def _classifier(classes: np.ndarray) -> bytes:
    """skl2onnx's MLP tail: Softmax, ArgMax, ArrayFeatureExtractor of the classes, Reshape, Cast."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=1),
             helper.make_node("ArgMax", ["p"], ["i"], axis=1),
             helper.make_node("ArrayFeatureExtractor", ["classes", "i"], ["c"], domain="ai.onnx.ml"),
             helper.make_node("Reshape", ["c", "flat"], ["r"]), helper.make_node("Cast", ["r"], ["label"], to=7)]
    w = np.random.default_rng(1).standard_normal((5, len(classes))).astype(np.float32)
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, None),
                               helper.make_tensor_value_info("p", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(classes, "classes"),
                               numpy_helper.from_array(np.array([-1], np.int64), "flat")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()


@settings(max_examples=20, deadline=None)
@given(classes=st.sampled_from([np.arange(3, dtype=np.int32), np.arange(4), np.array([7, 3, 11], np.int64),
                                np.array([2.5, -1.0, 4.0], np.float32)]), batch=st.sampled_from([1, 3, 40]),
       seed=seeds)
def test_classifier_label_step_runs_in_one_ggml_graph(classes, batch, seed):
    if classes.dtype == np.float32:   # a float table: the label output is float
        model = onnx.load_from_string(_classifier(classes))
        model.graph.node[-1].attribute[0].i = TensorProto.FLOAT
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
        data = model.SerializeToString()
    else:
        data = _classifier(classes)
    x = randn(np.random.default_rng(seed), (batch, 5))
    sess = ggonnx.Session(data, threads=THREADS)
    got = sess.run(None, {"x": x})
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert [p.where for p in sess.placement()] == ["ggml"] * 6
    assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_a_class_table_shorter_than_the_indices_runs_on_the_host():
    """Indices proven in [0, 4) never read a table of 3 in ggml: that lookup is the host's, which
    raises the out-of-range index rather than reading past the table."""
    data = onnx.load_from_string(_classifier(np.arange(4)))
    for t in data.graph.initializer:
        if t.name == "classes":
            t.CopyFrom(numpy_helper.from_array(np.array([5, 6, 7], np.int64), "classes"))
    sess = ggonnx.Session(data.SerializeToString(), threads=THREADS)
    x = np.zeros((1, 5), np.float32)
    x[0, 0] = 1.0
    try:
        sess.run(None, {"x": x})
    except ggonnx.GgonnxError:
        pass
    where = {p.op_type: p.where for p in sess.placement()}
    assert where["ArgMax"] == "ggml" and where["ArrayFeatureExtractor"] == "host"
