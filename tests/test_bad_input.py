"""Bad models and bad feeds raise clear Python exceptions; the process survives."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.errors import InvalidInputError, ModelLoadError, ShapeError, UnsupportedOpError
from models import mlp


@pytest.fixture(scope="module")
def sess():
    return ggonnx.Session(mlp(), threads=1)


def test_garbage_bytes(tmp_path):
    with pytest.raises(ModelLoadError):
        ggonnx.Session(b"\x00\x01 this is not an onnx model \xff" * 10)
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError):
        ggonnx.Session(str(bad))


def test_truncated_file(tmp_path):
    data = mlp().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        ggonnx.Session(str(path))


def test_names_that_are_not_utf8(tmp_path):
    # a damaged byte inside an op type: protobuf hands the field back as bytes
    model = mlp().SerializeToString()
    at = model.index(b"MatMul")
    damaged = model[:at] + b"\xff" + model[at + 1:]
    path = tmp_path / "damaged.onnx"
    path.write_bytes(damaged)
    for source in (damaged, str(path)):
        with pytest.raises(ModelLoadError, match="not valid UTF-8"):
            ggonnx.Session(source)


def test_an_attribute_given_twice():
    node = helper.make_node("ArgMin", ["x"], ["y"], axis=1)
    node.attribute.extend([helper.make_attribute("axis", 0.5)])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelLoadError, match="attribute 'axis' appears more than once"):
        ggonnx.Session(model.SerializeToString())


def test_missing_file():
    with pytest.raises(ModelLoadError, match="not found"):
        ggonnx.Session("/nonexistent/model.onnx")


def test_wrong_dtype(sess):
    with pytest.raises(InvalidInputError, match="'x'.*float64"):
        sess.run(None, {"x": np.ones((2, 64), np.float64)})


def test_wrong_rank_and_shape(sess):
    with pytest.raises(InvalidInputError, match="'x'"):
        sess.run(None, {"x": np.ones((2, 64, 1), np.float32)})
    with pytest.raises(InvalidInputError, match=r"\[2, 63\]"):
        sess.run(None, {"x": np.ones((2, 63), np.float32)})


def test_missing_and_extra_inputs(sess):
    with pytest.raises(InvalidInputError, match="missing input 'x'"):
        sess.run(None, {})
    with pytest.raises(InvalidInputError, match="unknown input name.*'z'"):
        sess.run(None, {"x": np.ones((1, 64), np.float32), "z": np.ones(1, np.float32)})
    with pytest.raises(InvalidInputError, match="unknown output"):
        sess.run(["nope"], {"x": np.ones((1, 64), np.float32)})


def _one_node(op, inputs, shapes, **attrs):
    node = helper.make_node(op, [n for n, _ in inputs], ["y"], name="the_node", **attrs)
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for (n, _), s in zip(inputs, shapes)]
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unknown_op_names_the_node():
    model = _one_node("FancyNewOp", [("x", None)], [[2, 2]])
    with pytest.raises(UnsupportedOpError, match="the_node.*FancyNewOp"):
        ggonnx.Session(model)


def test_op_without_lowering_runs_on_host():
    model = _one_node("Erf", [("x", None)], [[2, 3]])
    sess = ggonnx.Session(model)
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    from math import erf
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.vectorize(erf)(x), rtol=1e-6)
    assert [p.where for p in sess.placement()] == ["host"]


def test_failing_host_kernel_names_node_and_shapes():
    idx = numpy_helper.from_array(np.array([7], np.int64), "idx")
    node = helper.make_node("Gather", ["x", "idx"], ["y"], name="the_gather", axis=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [idx])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(InvalidInputError, match=r"the_gather.*Gather.*\(2, 3\)"):
        sess.run(None, {"x": np.ones((2, 3), np.float32)})


def test_shape_mismatch_inside_graph_names_node():
    # declared shapes the op's inference refuses: a model error at load, as in onnxruntime
    model = _one_node("MatMul", [("a", None), ("b", None)], [["M", 4], [5, 3]])
    with pytest.raises(ModelLoadError, match="the_node.*Incompatible dimensions for matrix multiplication"):
        ggonnx.Session(model)
    # free dims that only meet at run time: a ShapeError naming node and op then
    model = _one_node("MatMul", [("a", None), ("b", None)], [["M", "K"], ["K2", 3]])
    sess = ggonnx.Session(model)
    with pytest.raises(ShapeError, match="the_node.*MatMul"):
        sess.run(None, {"a": np.ones((2, 4), np.float32), "b": np.ones((5, 3), np.float32)})
    model = _one_node("Add", [("a", None), ("b", None)], [[2, 3], [4, 3]])
    with pytest.raises(ModelLoadError, match="the_node.*Incompatible dimensions"):
        ggonnx.Session(model)
    model = _one_node("Add", [("a", None), ("b", None)], [["N", 3], ["N2", 3]])
    with pytest.raises(ShapeError, match="the_node.*Add.*do not broadcast"):
        ggonnx.Session(model).run(None, {"a": np.ones((2, 3), np.float32), "b": np.ones((4, 3), np.float32)})


def test_dangling_input_and_cycle():
    relu = helper.make_node("Relu", ["ghost"], ["y"], name="dangling")
    graph = helper.make_graph([relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(ModelLoadError, match="dangling.*'ghost'"):
        ggonnx.Session(helper.make_model(graph))
    a = helper.make_node("Relu", ["b_out"], ["a_out"], name="cyc_a")
    b = helper.make_node("Relu", ["a_out"], ["b_out"], name="cyc_b")
    graph = helper.make_graph([a, b], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("b_out", TensorProto.FLOAT, [2])])
    with pytest.raises(ModelLoadError, match="cyc_a.*later node"):
        ggonnx.Session(helper.make_model(graph))


def test_unknown_domain():
    node = helper.make_node("Relu", ["x"], ["y"], name="custom", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(ModelLoadError, match="custom.*com.example"):
        ggonnx.Session(helper.make_model(graph))


def test_non_float_input_runs_on_host_and_wrong_dtype_is_refused():
    node = helper.make_node("Neg", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT32, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2])])
    sess = ggonnx.Session(helper.make_model(graph))
    np.testing.assert_array_equal(sess.run(None, {"x": np.array([1, -2], np.int32)})[0], [-1, 2])
    with pytest.raises(InvalidInputError, match="'x'.*int32.*float32"):
        sess.run(None, {"x": np.array([1, -2], np.float32)})


def test_rank_above_four_runs_on_host_not_crashing():
    model = _one_node("Relu", [("x", None)], [[1, 2, 1, 2, 3]])
    x = np.random.default_rng(0).standard_normal((1, 2, 1, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(ggonnx.Session(model).run(None, {"x": x})[0], np.maximum(x, 0))


def test_bad_weight_shape_in_conv():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    with pytest.raises(ShapeError, match="conv"):
        ggonnx.Session(helper.make_model(graph))


def test_session_survives_errors(sess):
    for bad in ({"x": np.ones((2, 63), np.float32)}, {"x": np.ones((2, 64), np.int64)}, {}):
        with pytest.raises(InvalidInputError):
            sess.run(None, bad)
    assert sess.run(None, {"x": np.ones((2, 64), np.float32)})[0].shape == (2, 10)


def test_type_mismatch_names_the_node():
    node = helper.make_node("Add", ["x", "y"], ["z"], name="bad_add")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                            helper.make_tensor_value_info("y", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    with pytest.raises(ModelLoadError, match="bad_add.*int64"):
        ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_absurd_thread_counts_are_refused():
    for threads in (-1, 100_000):
        with pytest.raises(ValueError, match="threads"):
            ggonnx.Session(mlp(), threads=threads)


@pytest.mark.parametrize("op, attrs, opset", [
    ("ReduceMean", dict(keepdims=7, axes=[1]), 13),     # onnxruntime reads it as 0, the kernels as 1
    ("CumSum", dict(exclusive=2), 14),
    ("Trilu", dict(upper=5), 14),
    ("LpNormalization", dict(p=3), 13),
    ("DepthToSpace", dict(blocksize=0), 13),
    ("Gelu", dict(approximate="fast"), 20),
    ("MaxPool", dict(kernel_shape=[1], auto_pad="SAME"), 13),
])
def test_out_of_spec_attribute_values_are_model_errors(op, attrs, opset):
    inputs = ["x", "ax"] if op == "CumSum" else ["x"]
    extra = [helper.make_tensor("ax", TensorProto.INT64, [], [0])] if op == "CumSum" else []
    g = helper.make_graph([helper.make_node(op, inputs, ["y"], name="the_node", **attrs)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], extra)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    name = next(iter(attrs)) if op != "MaxPool" else "auto_pad"
    with pytest.raises(ggonnx.InvalidGraph, match=f"the_node.*{op}.*{name}="):
        ggonnx.Session(model)


@pytest.mark.parametrize("node, why", [
    (helper.make_node("ReverseSequence", ["x", "lens"], ["y"], name="the_node", time_axis=0, batch_axis=0),
     "time_axis=0 and batch_axis=0"),
    (helper.make_node("TfIdfVectorizer", ["xi"], ["y"], name="the_node", min_gram_length=1, max_gram_length=7,
                      max_skip_count=0, mode="TF", ngram_counts=[0, 2], ngram_indexes=[0, 1],
                      pool_int64s=[1, 2, 3]), "max_gram_length=7"),
])
def test_attributes_that_contradict_each_other_are_model_errors(node, why):
    """Attributes whose allowed values depend on each other, refused at load as onnxruntime
    refuses them when it builds its kernel."""
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                        helper.make_tensor_value_info("lens", TensorProto.INT64, [3]),
                                        helper.make_tensor_value_info("xi", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ggonnx.InvalidGraph, match=f"the_node.*{why}"):
        ggonnx.Session(model)


@pytest.mark.parametrize("node, why", [
    (helper.make_node("Relu", [""], ["y"], name="the_node"), "required input 0"),
    (helper.make_node("Relu", ["x", "x"], ["y"], name="the_node"), "takes at most 1"),
    (helper.make_node("MaxPool", ["x4"], ["y"], name="the_node", kernel_shape=[2, 2], pads=[0, 2, 0, 0]),
     "smaller than kernel_shape"),
    (helper.make_node("Conv", ["x4", "x4"], ["y"], name="the_node", pads=[0, -1, 0, 0]), ">= 0"),
])
def test_structural_errors_found_by_the_fuzzer(node, why):
    """Cases tools/fuzz.py found crashing (onnx's shape inference on an empty required input) or
    hanging (a pool padded by 2**31): model errors naming the node, before inference runs."""
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                        helper.make_tensor_value_info("x4", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ggonnx.InvalidGraph, match=f"the_node.*{why}"):
        ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize("node, opset, why", [
    (helper.make_node("RMSNormalization", ["x", "x"], ["y"], name="the_node", epsilon=float("nan")), 23,
     "epsilon=nan must be a number >= 0"),
    (helper.make_node("LayerNormalization", ["x", "x"], ["y"], name="the_node", epsilon=-1.0), 17,
     "epsilon=-1.0 must be a number >= 0"),
    (helper.make_node("Split", ["x"], ["y", "b", "c"], name="the_node", axis=1, num_outputs=2), 18,
     "num_outputs=2 must equal the node's 3 outputs"),
])
def test_attributes_that_aborted_in_c_are_model_errors(node, opset, why):
    """Fuzzer cases that aborted the process: ggml's norms assert eps >= 0, onnx's C++ shape
    inference asserts Split's outputs match num_outputs."""
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ggonnx.InvalidGraph, match=f"the_node.*{why}"):
        ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]))


@pytest.mark.parametrize("op, dtype, opset, why", [
    ("Add", TensorProto.BOOL, 17, "unsupported type: tensor\\(bool\\)"),
    ("Sub", TensorProto.UINT8, 13, "unsupported type: tensor\\(uint8\\)"),    # uint8 from opset 14 on
    ("Relu", TensorProto.INT32, 13, "unsupported type: tensor\\(int32\\)"),
    ("Flatten", TensorProto.FLOAT, 9, "Invalid value\\(-1\\) for attribute 'axis'"),  # negative from opset 11
])
def test_types_and_values_the_op_schema_refuses_are_model_errors(op, dtype, opset, why):
    """onnx's strict inference refuses these as onnxruntime does (the fuzzer's ran_invalid cases)."""
    attrs = {"axis": -1} if op == "Flatten" else {}
    inputs = ["x"] if op in ("Relu", "Flatten") else ["x", "x"]
    g = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], "g",
                          [helper.make_tensor_value_info("x", dtype, [2, 3])],
                          [helper.make_tensor_value_info("y", dtype, None)])
    with pytest.raises(ModelLoadError, match=why):
        ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]))


def test_an_attribute_of_the_wrong_type_is_a_model_error():
    node = helper.make_node("Gemm", ["x", "x"], ["y"], name="the_node", transB=1)
    node.attribute.append(helper.make_attribute("alpha", 2))   # an INT where Gemm takes a FLOAT
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ggonnx.InvalidGraph, match="the_node.*alpha is a INT, Gemm takes a FLOAT"):
        ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_a_recurrent_layer_of_negative_hidden_size_is_a_model_error():
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4, 2])
    r = helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 4])
    node = helper.make_node("RNN", ["x", "w", "r"], ["y"], name="the_node", hidden_size=-1)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2]), w, r],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ggonnx.InvalidGraph, match="the_node.*hidden_size=-1 must be positive"):
        ggonnx.Session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]))
