"""Whole models against onnxruntime (a test-only oracle)."""
import numpy as np
import pytest

import ggonnx
from models import mlp, small_cnn

ort = pytest.importorskip("onnxruntime")


def _compare(model, feeds, rtol=1e-4, atol=1e-5):
    ours = ggonnx.Session(model, threads=2).run(None, feeds)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_mlp_matches_onnxruntime(batch):
    x = np.random.default_rng(batch).standard_normal((batch, 64)).astype(np.float32)
    _compare(mlp(), {"x": x})


@pytest.mark.parametrize("batch", [1, 2])
def test_small_cnn_matches_onnxruntime(batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 24, 24)).astype(np.float32)
    _compare(small_cnn(), {"x": x})


def test_default_model_runs_and_matches_onnxruntime():
    from ggonnx.default_model import make_default_model
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    _compare(make_default_model(), {"image": x})


def test_batch_changes_between_runs_reuse_weights():
    sess = ggonnx.Session(mlp(), threads=2)
    ref = ort.InferenceSession(mlp().SerializeToString(), providers=["CPUExecutionProvider"])
    weight_bytes = None
    for batch in (1, 7, 1, 33, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 64)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref.run(None, {"x": x})[0], rtol=1e-4, atol=1e-6)
        if weight_bytes is None:
            weight_bytes = sess.weight_bytes
        assert sess.weight_bytes == weight_bytes  # new shapes, no new weight upload
    assert sess.plan_count == 3


def test_plan_cache_is_bounded():
    sess = ggonnx.Session(mlp(), threads=1, plan_cache_size=2)
    for batch in range(1, 6):
        sess.run(None, {"x": np.ones((batch, 64), np.float32)})
    assert sess.plan_count == 2


def test_shape_arithmetic_is_folded_on_host():
    """A torch-style Flatten: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ggonnx.Session(model)
    for n in (1, 4):
        x = np.random.default_rng(n).standard_normal((n, 2, 3)).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(x.reshape(n, -1), 0))
    where = {p.op_type: p.where for p in sess.placement({"x": (2, 2, 3)})}
    assert where["Gather"] == "host" and where["Relu"] == "ggml"


def test_sparse_initializer_and_local_function():
    from onnx import TensorProto, helper, numpy_helper
    values = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "w")
    indices = numpy_helper.from_array(np.array([1, 4], np.int64), "w_idx")
    sparse = helper.make_sparse_tensor(values, indices, [2, 3])
    fn = helper.make_function("local", "AddRelu", ["a", "b"], ["c"],
                              [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["c"])],
                              [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("AddRelu", ["x", "w"], ["y"], domain="local")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              sparse_initializer=[sparse])
    model = helper.make_model(graph, functions=[fn],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    x = -np.ones((2, 3), np.float32)
    dense = np.array([[0, 2, 0], [0, 3, 0]], np.float32)
    sess = ggonnx.Session(model)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(x + dense, 0))
    assert {p.op_type: p.where for p in sess.placement()} == {"Add": "ggml", "Relu": "ggml"}


def test_float16_model_runs_in_ggml():
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    w = rng.standard_normal((16, 8)).astype(np.float16)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)],
                              [numpy_helper.from_array(w, "w")])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = rng.standard_normal((4, 16)).astype(np.float16)
    (y,) = sess.run(None, {"x": x})
    assert y.dtype == np.float16
    want = np.maximum(x.astype(np.float32) @ w.astype(np.float32), 0).astype(np.float16)
    np.testing.assert_allclose(y.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)
    assert {p.where for p in sess.placement({"x": (4, 16)})} == {"ggml"}


def test_data_dependent_shapes_retrace():
    """NonZero's output shape follows the data: the plan re-traces when it moves."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Greater", ["x", "zero"], ["mask"]),
             helper.make_node("NonZero", ["mask"], ["idx"]),
             helper.make_node("Cast", ["idx"], ["idx_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["idx_f", "two"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.float32(0), "zero"),
                               numpy_helper.from_array(np.float32(2), "two")])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    for x in ([1, -1, 2, 0, 3, 4], [-1, -1, 5, -1, -1, -1], [1, 1, 1, 1, 1, 1], [1, -1, 2, 0, 3, 4]):
        x = np.array(x, np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], 2 * np.nonzero(x > 0)[0][None].astype(np.float32))
    where = {p.op_type: p.where for p in sess.placement({"x": (6,)})}
    assert where["NonZero"] == "host" and where["Mul"] == "ggml"
