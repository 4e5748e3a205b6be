"""Zero-copy runs (_core.Plan.run): ggml reads inputs in place and computes outputs straight into
pooled arrays. The caller's arrays are never written, outputs never alias one another or an
earlier run's, and a dropped output's memory is reused by the next run."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.planner import IslandStep


def _model(n: int = 64) -> bytes:
    """y = Reshape(x) @ W (a view of the input feeds the GEMM), z = y + 1, x passed through."""
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["x2"]), helper.make_node("MatMul", ["x2", "w"], ["y"]),
             helper.make_node("Add", ["y", "one"], ["z"]), helper.make_node("Identity", ["x"], ["x_out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, n // 2])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "z", "x_out")],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1, n], np.int64), "shape"),
                               numpy_helper.from_array(np.array(1, np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _islands(sess):
    plan = sess._runner.plans[sess._runner.last_sig]
    return [s.plan for s in plan.steps if isinstance(s, IslandStep)]


def test_runs_bind_their_arrays_and_match_onnxruntime():
    model = _model()
    sess, oracle = ggonnx.Session(model, threads=2), ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 32)).astype(np.float32)
    x.flags.writeable = False  # a read-only feed is read in place too
    first = sess.run(None, {"x": x})
    for got, want in zip(first, oracle.run(None, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ins, outs = zip(*(p.direct_io for p in _islands(sess)))
    assert any(any(i) for i in ins) and any(any(o) for o in outs)
    kept = [o.copy() for o in first]
    second = sess.run(None, {"x": rng.standard_normal((3, 2, 32)).astype(np.float32)})
    for a, b in zip(first, kept):  # a later run never writes into an array the caller holds
        np.testing.assert_array_equal(a, b)
    arrays = first + second + [x]
    for i, a in enumerate(arrays):
        assert a is x or a.flags.writeable
        assert not any(np.shares_memory(a, b) for b in arrays[i + 1:])


def test_a_dropped_output_is_reused():
    sess = ggonnx.Session(_model(256), threads=2)
    x = np.ones((5, 2, 128), np.float32)
    y = sess.run(["y"], {"x": x})[0]
    address = y.__array_interface__["data"][0]
    del y
    again = sess.run(None, {"x": x})
    assert address in {o.__array_interface__["data"][0] for o in again}


def test_misaligned_and_strided_feeds():
    sess = ggonnx.Session(_model(), threads=2)
    oracle = ort.InferenceSession(_model(), providers=["CPUExecutionProvider"])
    raw = np.random.default_rng(2).standard_normal(4 * 64 + 1).astype(np.float32)
    unaligned = np.frombuffer(raw.tobytes()[2:2 + 4 * 64 * 4], np.float32).reshape(4, 2, 32)  # 2-byte offset
    strided = np.random.default_rng(3).standard_normal((4, 2, 64)).astype(np.float32)[:, :, ::2]
    for x in (unaligned, strided):
        for got, want in zip(sess.run(None, {"x": x}), oracle.run(None, {"x": np.ascontiguousarray(x)})):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_reshaped_outputs_are_the_nodes_own_memory():
    # an output that is a reshape of a computed node is that node, bound to the output's array
    # (no copy node); the same node reshaped twice is copied for the second output, and a reshape
    # of an input is copied, never the caller's array
    nodes = [helper.make_node("Add", ["x", "w"], ["z"]),
             helper.make_node("Reshape", ["z", "flat"], ["r1"]), helper.make_node("Reshape", ["z", "rows"], ["r2"]),
             helper.make_node("Reshape", ["x", "flat"], ["rx"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("r1", "r2", "rx")],
        [numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(4, 6), "w"),
         numpy_helper.from_array(np.array([-1], np.int64), "flat"), numpy_helper.from_array(np.array([2, -1], np.int64), "rows")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    sess, oracle = ggonnx.Session(model, threads=2), ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    got = sess.run(None, {"x": x})
    for g, w in zip(got, oracle.run(None, {"x": x})):
        np.testing.assert_array_equal(g, w)
    arrays = got + [x]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])
    (island,) = _islands(sess)
    assert island.n_nodes == 3  # the add, and the input's reshape and its copy
    assert island.direct_io[1] == [True, False, True]


def test_growing_outputs_reuse_their_blocks():
    # an output a little larger every run, the previous one still held (a KV cache's present
    # values fed back): pooled blocks a few size classes up serve it, instead of a fresh block
    # (fresh pages to fault in) each time it crosses a class
    from ggonnx import _core
    nodes = [helper.make_node("Add", ["x", "one"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
                              [numpy_helper.from_array(np.array(1, np.float32), "one")])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                          threads=2)
    held = sess.run(None, {"x": np.zeros((1, 40960), np.float32)})[0]
    before = _core.output_blocks_made()
    for n in range(40960, 40960 + 60 * 250, 250):  # 160 KB to 219 KB: two size classes crossed
        x = np.full((1, n), 2.0, np.float32)
        y = sess.run(None, {"x": x})[0]
        np.testing.assert_array_equal(y, x + 1)
        held = y  # noqa: F841 -- the previous output lives while the next run computes
    assert _core.output_blocks_made() - before <= 3


@pytest.mark.parametrize("hw", [1, 3])
def test_concat_of_channel_slices_as_output(hw):
    # two 1x1 convs concatenated along channels: the second writes its channels in place into
    # the first's result (a channel slice). At 1x1 spatial the channels-last result is the output
    # by a reshape; that chain runs through the in-place write, so the output must be the
    # writer's values, not the first conv's memory alone (which left the second conv out)
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Conv", ["x", "w2"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(rng.standard_normal((32, 16, 1, 1)).astype(np.float32), "w1"),
                               numpy_helper.from_array(rng.standard_normal((48, 16, 1, 1)).astype(np.float32), "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    sess, oracle = ggonnx.Session(model, threads=2), ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, 16, hw, hw)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], oracle.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    assert any("packed GEMM" in p.detail for p in sess.placement({"x": x.shape}))
