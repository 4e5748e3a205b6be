"""The onnxruntime-compatible surface, onnx.backend, show_config and the CLI."""
import io

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import ggonnx
import ggonnx.backend
from models import mlp


def test_inputs_and_outputs_like_onnxruntime():
    model = mlp()
    ours = ggonnx.Session(model)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(ours.get_inputs() + ours.get_outputs(), ref.get_inputs() + ref.get_outputs()):
        assert (a.name, a.shape, a.type) == (b.name, b.shape, b.type)


def test_inference_session_accepts_onnxruntime_arguments(tmp_path):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp().SerializeToString())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ggonnx.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    assert sess.threads == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = np.ones((2, 64), np.float32)
    (y,) = sess.run(["y"], {"x": x})
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider"):
        ggonnx.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_threads_default_to_available_cpus():
    import os
    from ggonnx.session import available_cpus
    n = available_cpus()
    assert 1 <= n <= len(os.sched_getaffinity(0))  # affinity, capped by a cgroup quota if any
    assert ggonnx.Session(mlp()).threads == n


def test_show_config_names_ggml_and_backends():
    out = io.StringIO()
    ggonnx.show_config(file=out)
    text = out.getvalue()
    assert "ggml 0.20.2" in text and "CPU" in text and "MatMul" in text


def test_onnx_backend_prepare_and_run_node():
    model = mlp()
    x = np.ones((3, 64), np.float32)
    rep = ggonnx.backend.prepare(model)
    (y,) = rep.run([x])
    assert y.shape == (3, 10)
    assert ggonnx.backend.supports_device("CPU") and not ggonnx.backend.supports_device("CUDA")
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)
    (c,) = ggonnx.backend.run_node(node, [a, b])
    np.testing.assert_array_equal(c, a + b)


def test_constant_only_output():
    node = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [2], [1.0, 2.0]))
    relu = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
                               helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    y, c = ggonnx.Session(helper.make_model(graph)).run(None, {"x": np.array([-1, 1], np.float32)})
    np.testing.assert_array_equal(y, [0, 1])
    np.testing.assert_array_equal(c, [1, 2])


def test_negative_declared_dims_are_free_like_onnxruntime():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "h", None])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3, "h", None])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    ours = ggonnx.InferenceSession(model)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert ours.get_inputs()[0].shape == ref.get_inputs()[0].shape == [None, 3, "h", None]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(ours.run(None, {"x": x})[0], ref.run(None, {"x": x})[0])


def test_placement_without_shapes_reports_the_signature_run_last():
    sess = ggonnx.Session(mlp())
    assert sess.placement()[0].flops == 2 * 1 * 64 * 256  # nothing ran yet: free dims are 1
    sess.run(None, {"x": np.ones((8, 64), np.float32)})
    assert sess.placement()[0].flops == 2 * 8 * 64 * 256
    assert sess.placement({"x": (2, 64)})[0].flops == 2 * 2 * 64 * 256
