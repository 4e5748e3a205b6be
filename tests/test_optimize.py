"""Import-time rewrites: constant folding, BatchNormalization folded into Conv and ConvTranspose, the
GELU and SiLU fusions."""
import numpy as np
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.importer import import_model

RNG = np.random.default_rng(0)


def _conv_bn_model(with_bias: bool):
    w = numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    params = [numpy_helper.from_array((RNG.random(4) + 0.5).astype(np.float32), n)
              for n in ("scale", "beta", "mean", "var")]
    inits = [w] + params
    conv_inputs = ["x", "w"]
    if with_bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "b"))
        conv_inputs.append("b")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"], epsilon=1e-3),
             helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_batchnorm_folds_into_conv():
    for with_bias in (False, True):
        model = _conv_bn_model(with_bias)
        assert [n.op_type for n in import_model(model).nodes] == ["Conv", "Relu"]
        x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
        np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], want[0], rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(group=st.sampled_from([1, 2, 3]), cg=st.integers(1, 3), ocg=st.integers(1, 3), k=st.integers(1, 3),
       stride=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_batchnorm_folds_into_conv_transpose(group, cg, ocg, k, stride, bias, seed):
    """The BN scale of output channel o lands on the weight slices that feed o, in every group."""
    rng = np.random.default_rng(seed)
    c, oc = group * cg, group * ocg
    inits = [numpy_helper.from_array(rng.standard_normal((c, ocg, k, k)).astype(np.float32), "w")]
    inits += [numpy_helper.from_array((rng.random(oc) + 0.5).astype(np.float32), n)
              for n in ("scale", "beta", "mean", "var")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(oc).astype(np.float32), "b"))
        inputs.append("b")
    nodes = [helper.make_node("ConvTranspose", inputs, ["c"], group=group, strides=[stride, stride], name="convT"),
             helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"], epsilon=1e-3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, 5, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    assert [n.op_type for n in import_model(model).nodes] == ["ConvTranspose"]
    x = rng.standard_normal((2, c, 5, 4)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], want[0], rtol=1e-4, atol=1e-4)


def test_constant_subgraphs_fold_at_import():
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["w"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
             helper.make_node("Transpose", ["w"], ["wt"]),
             helper.make_node("MatMul", ["x", "wt"], ["y"])]
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    imported = import_model(model)
    assert [n.op_type for n in imported.nodes] == ["MatMul"] and imported.initializers["wt"].shape == (2, 3)
    x = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], np.ones((4, 3)))


def test_exact_gelu_pattern_fuses_into_one_ggml_node():
    from math import erf
    for half_first in (False, True):
        consts = [numpy_helper.from_array(np.float32(v), n) for v, n in
                  ((np.sqrt(2), "sqrt2"), (1.0, "one"), (0.5, "half"))]
        nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                 helper.make_node("Add", ["e", "one"], ["a"])]
        if half_first:
            nodes += [helper.make_node("Mul", ["x", "half"], ["hx"]), helper.make_node("Mul", ["hx", "a"], ["y"])]
        else:
            nodes += [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        assert [n.op_type for n in import_model(model).nodes] == ["Gelu"]
        x = RNG.standard_normal((2, 5)).astype(np.float32)
        want = 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))
        sess = ggonnx.Session(model)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)
        assert [p.where for p in sess.placement()] == ["ggml"]


def _sigmoid_mul_model(mul_inputs, extra_outputs=()):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", mul_inputs, ["y"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3, 4, 5]) for n in ("x", "z")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y",) + tuple(extra_outputs)]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_silu_pattern_fuses_into_swish():
    x, z = (RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(2))
    for mul_inputs in (["x", "s"], ["s", "x"]):
        model = _sigmoid_mul_model(mul_inputs)
        assert [n.op_type for n in import_model(model).nodes] == ["Swish"]
        sess = ggonnx.Session(model)
        np.testing.assert_allclose(sess.run(None, {"x": x, "z": z})[0], x / (1 + np.exp(-x)), rtol=1e-5, atol=1e-6)
        assert [p.where for p in sess.placement()] == ["ggml"]


def test_silu_lookalikes_are_left_alone():
    # the gate of another tensor, and a sigmoid that is also a graph output
    for model in (_sigmoid_mul_model(["z", "s"]), _sigmoid_mul_model(["x", "s"], extra_outputs=("s",))):
        assert [n.op_type for n in import_model(model).nodes] == ["Sigmoid", "Mul"]
        x, z = (RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(2))
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x, "z": z})
        for got, ref in zip(ggonnx.Session(model).run(None, {"x": x, "z": z}), want):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def _gelu_tanh_model(cube: str, half_first: bool, coef: float = 0.044715, scale: float = float(np.sqrt(2 / np.pi))):
    consts = [numpy_helper.from_array(np.float32(v), n) for v, n in
              ((3.0, "three"), (coef, "coef"), (scale, "scale"), (1.0, "one"), (0.5, "half"))]
    if cube == "pow":
        nodes = [helper.make_node("Pow", ["x", "three"], ["cube"])]
    else:
        nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Mul", ["x", "sq"], ["cube"])]
    nodes += [helper.make_node("Mul", ["coef", "cube"], ["c"]), helper.make_node("Add", ["x", "c"], ["inner"]),
              helper.make_node("Mul", ["inner", "scale"], ["z"]), helper.make_node("Tanh", ["z"], ["t"]),
              helper.make_node("Add", ["t", "one"], ["a"])]
    if half_first:
        nodes += [helper.make_node("Mul", ["x", "half"], ["hx"]), helper.make_node("Mul", ["hx", "a"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_tanh_gelu_pattern_fuses_into_one_ggml_node():
    x = (RNG.standard_normal((3, 7)) * 3).astype(np.float32)
    want = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)))
    for cube in ("pow", "mul"):
        for half_first in (False, True):
            model = _gelu_tanh_model(cube, half_first)
            nodes = import_model(model).nodes
            assert [(n.op_type, n.attrs.get("approximate")) for n in nodes] == [("Gelu", "tanh")]
            sess = ggonnx.Session(model)
            np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)
            assert [p.where for p in sess.placement()] == ["ggml"]


def test_tanh_gelu_lookalikes_are_left_alone():
    """Another cubic coefficient or tanh scale is not GELU: it keeps its nodes (and its value)."""
    x = RNG.standard_normal((3, 7)).astype(np.float32)
    for coef, scale in ((0.05, float(np.sqrt(2 / np.pi))), (0.044715, 0.9)):
        model = _gelu_tanh_model("pow", False, coef, scale)
        assert "Tanh" in [n.op_type for n in import_model(model).nodes]
        want = 0.5 * x * (1 + np.tanh(scale * (x + coef * x.astype(np.float64) ** 3)))
        np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)


def _rms_norm_model(form: str, axes=(-1,), exponent: float = 2.0, eps: float = 1e-6):
    w = (RNG.random(8) + 0.5).astype(np.float32)
    consts = [numpy_helper.from_array(np.float32(exponent), "two"), numpy_helper.from_array(np.float32(eps), "eps"),
              numpy_helper.from_array(np.float32(1.0), "one"), numpy_helper.from_array(w, "w"),
              numpy_helper.from_array(np.array(axes, np.int64), "axes")]
    nodes = [helper.make_node("Pow", ["x", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq", "axes"], ["ms"]),
             helper.make_node("Add", ["ms", "eps"], ["v"]), helper.make_node("Sqrt", ["v"], ["r"])]
    if form == "reciprocal_mul":
        nodes += [helper.make_node("Div", ["one", "r"], ["inv"]), helper.make_node("Mul", ["x", "inv"], ["n"])]
    else:
        nodes += [helper.make_node("Div", ["x", "r"], ["n"])]
    nodes.append(helper.make_node("Mul", ["w", "n"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), w


def test_rms_norm_pattern_fuses_into_rms_normalization():
    x = RNG.standard_normal((3, 5, 8)).astype(np.float32)
    for form in ("reciprocal_mul", "div"):
        model, w = _rms_norm_model(form)
        assert [n.op_type for n in import_model(model).nodes] == ["RMSNormalization"]
        want = w * x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
        sess = ggonnx.Session(model)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)
        assert [p.where for p in sess.placement()] == ["ggml"]


def test_rms_norm_lookalikes_are_left_alone():
    """Another axis or exponent is not an RMSNorm over the last dim: nothing fuses, values hold."""
    x = RNG.standard_normal((3, 5, 8)).astype(np.float32)
    for axes, exponent in (((1,), 2.0), ((-1,), 3.0)):
        model, w = _rms_norm_model("div", axes, exponent)
        assert "RMSNormalization" not in [n.op_type for n in import_model(model).nodes]
        x64 = x.astype(np.float64)
        want = w * x64 / np.sqrt((x64 ** exponent).mean(axes[0], keepdims=True) + 1e-6)
        np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)
