"""If and Loop run their bodies as nested plans: ggml where the body is static."""
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.control_flow import ControlFlowEvaluator

RNG = np.random.default_rng(0)
W = (RNG.standard_normal((4, 4)) * 0.5).astype(np.float32)


def _f32(name, shape=None):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _body_placements(sess):
    """Where the nodes of each nested body ran, for every control-flow step of every plan."""
    out = []
    for plan in sess._runner.plans.values():
        for step in plan.steps:
            if isinstance(getattr(step, "evaluator", None), ControlFlowEvaluator):
                for body in step.evaluator.bodies.values():
                    out += [p.where for plan_ in body.runner.plans.values() for p in plan_.placement]
    return out


def _check(model, feeds):
    ours = ggonnx.Session(model)
    got = ours.run(None, feeds)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return ours


def test_loop_body_runs_in_ggml():
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_in", "W"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
         helper.make_node("Add", ["r", "one"], ["x_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["x_out"], ["scan"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), _f32("x_in", [2, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _f32("x_out", [2, 4]),
         _f32("scan", [2, 4])])
    loop = helper.make_node("Loop", ["M", "cond", "x"], ["x_final", "scans"], body=body)
    graph = helper.make_graph([loop], "g", [_f32("x", [2, 4])], [_f32("x_final"), _f32("scans")],
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.float32(1.0), "one"),
                               numpy_helper.from_array(np.array(3, np.int64), "M"),
                               numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    sess = _check(model, {"x": x})
    expected = x
    for _ in range(3):
        expected = np.maximum(expected @ W, 0) + 1
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-5)
    assert _body_placements(sess).count("ggml") >= 3  # MatMul, Relu, Add of the body


def test_if_branches_run_in_ggml():
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y_then"])], "then", [],
                               [_f32("y_then", [3, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["y_else"])], "else", [], [_f32("y_else", [3, 4])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                            _f32("x", [3, 4])], [_f32("y")], [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    sess = _check(model, {"c": np.array(True), "x": x})
    _check(model, {"c": np.array(False), "x": x})
    np.testing.assert_allclose(sess.run(None, {"c": np.array(False), "x": x})[0], -x)
    assert set(_body_placements(sess)) == {"ggml"}


def test_scan_body_runs_in_ggml_with_axes_and_directions():
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "W"], ["m"]), helper.make_node("Add", ["s_in", "m"], ["s_out"]),
         helper.make_node("Tanh", ["s_out"], ["y_t"])],
        "body", [_f32("s_in", [3, 4]), _f32("x_t", [3, 4])], [_f32("s_out", [3, 4]), _f32("y_t", [3, 4])])
    node = helper.make_node("Scan", ["s0", "xs"], ["s_final", "ys"], body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[-1])
    graph = helper.make_graph([node], "g", [_f32("s0", [3, 4]), _f32("xs", [3, 5, 4])],
                              [_f32("s_final"), _f32("ys")], [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"s0": RNG.standard_normal((3, 4)).astype(np.float32),
             "xs": RNG.standard_normal((3, 5, 4)).astype(np.float32)}
    sess = _check(model, feeds)
    assert set(_body_placements(sess)) == {"ggml"}


def test_folded_if_reading_a_shape_is_replanned_per_signature():
    """An If folded at plan time from a shape-derived outer value must not be cached as a weight."""
    then_g = helper.make_graph([helper.make_node("Identity", ["n_f"], ["t"])], "then", [], [_f32("t", [1])])
    else_g = helper.make_graph([helper.make_node("Neg", ["n_f"], ["f"])], "else", [], [_f32("f", [1])])
    nodes = [helper.make_node("Shape", ["x"], ["n"]),
             helper.make_node("Cast", ["n"], ["n_f"], to=TensorProto.FLOAT),
             helper.make_node("If", ["cond"], ["k"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Add", ["x", "k"], ["y"])]
    graph = helper.make_graph(nodes, "g", [_f32("x", ["N"])], [_f32("y")],
                              [numpy_helper.from_array(np.array(True), "cond")])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    for n in (2, 3, 2):
        x = np.arange(n, dtype=np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + n)
