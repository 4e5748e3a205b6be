"""Initializers read in place from the model file (model_file.py): the spans found in the
protobuf wire format are the parsed tensors' bytes, a session opened by path computes what
onnxruntime does from them, and a file rewritten under a live session is refused, not read."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.errors import ModelLoadError
from ggonnx.model_file import MIN_MAPPED_BYTES, MappedModel, is_mapped, strip_weights

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_]


def _mlp(rng, hidden: int = 256) -> onnx.ModelProto:
    """x @ W1 + b1 -> Relu -> @ W2, with W1/W2 big enough to be mapped and b1 too small."""
    w1 = rng.standard_normal((64, hidden)).astype(np.float32)
    w2 = rng.standard_normal((hidden, 128)).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 128])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                               numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(1, 40), min_size=0, max_size=3),
                          st.text("abcxyz_/.:é", min_size=1, max_size=12)), min_size=1, max_size=6, unique_by=lambda t: t[2]),
       st.integers(0, 2**31))
def test_spans_are_the_parsed_raw_data(tensors, seed):
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal(shape) * 50).astype(dtype), name)
             for dtype, shape, name in tensors]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="n" * 300)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], inits)
    model = helper.make_model(graph, doc_string="d" * 200)
    buf = model.SerializeToString()
    stripped, mapped = strip_weights(buf)
    parsed = onnx.ModelProto()
    parsed.ParseFromString(stripped)
    assert set(mapped) == {t.name for t in inits if len(t.raw_data) >= MIN_MAPPED_BYTES}
    for t in inits:
        if t.name in mapped:
            dtype, dims, offset, length = mapped[t.name]
            assert (dtype, list(dims)) == (t.data_type, list(t.dims))
            assert buf[offset:offset + length] == t.raw_data
    for t, p in zip(inits, parsed.graph.initializer):
        assert (p.name, p.data_type, list(p.dims)) == (t.name, t.data_type, list(t.dims))
        assert p.raw_data == (b"" if t.name in mapped else t.raw_data)
    assert parsed.graph.node == model.graph.node and parsed.doc_string == model.doc_string


def test_path_session_reads_weights_in_place(tmp_path):
    rng = np.random.default_rng(0)
    model = _mlp(rng)
    path = str(tmp_path / "mlp.onnx")
    onnx.save(model, path)
    proto, views = MappedModel(path).load()
    assert set(views) == {"w1", "w2"}  # b1 is below MIN_MAPPED_BYTES
    assert all(v.nbytes >= MIN_MAPPED_BYTES and not v.flags.writeable for v in views.values())
    for t in model.graph.initializer:
        np.testing.assert_array_equal(views[t.name] if t.name in views else numpy_helper.to_array(
            next(p for p in proto.graph.initializer if p.name == t.name)), numpy_helper.to_array(t))
    stripped = {t.name: t for t in proto.graph.initializer}
    assert not stripped["w1"].raw_data and list(stripped["w1"].dims) == [64, 256]
    sess = ggonnx.Session(path, threads=2)
    assert is_mapped(sess._graph.initializers["w1"]) and is_mapped(sess._graph.initializers["w2"])
    oracle = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for n in (1, 3, 7):  # new signatures after the first upload read the file's pages again
        x = rng.standard_normal((n, 64)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], oracle.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    q8 = ggonnx.Session(path, threads=2, weights="q8_0")
    x = rng.standard_normal((2, 64)).astype(np.float32)
    got, want = q8.run(None, {"x": x})[0], oracle.run(None, {"x": x})[0]
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999


def test_a_file_rewritten_under_a_session_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    path = str(tmp_path / "mlp.onnx")
    onnx.save(_mlp(rng), path)
    sess = ggonnx.Session(path, threads=2)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    before = sess.run(None, {"x": x})[0]
    with open(path, "r+b") as fh:  # written in place, as an exporter overwriting the path does
        fh.write(_mlp(np.random.default_rng(2)).SerializeToString())
    os.utime(path, ns=(0, 1))  # a different modification time even on a coarse clock
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], before)  # planned already: ggml holds it
    with pytest.raises(ModelLoadError, match="changed on disk"):
        sess.run(None, {"x": rng.standard_normal((5, 64)).astype(np.float32)})


def test_a_file_replaced_by_rename_keeps_its_weights(tmp_path):
    rng = np.random.default_rng(3)
    path, other = str(tmp_path / "mlp.onnx"), str(tmp_path / "new.onnx")
    onnx.save(_mlp(rng), path)
    oracle = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    sess = ggonnx.Session(path, threads=2)
    onnx.save(_mlp(np.random.default_rng(4)), other)
    os.replace(other, path)  # the mapped inode is the old file's, unchanged
    x = rng.standard_normal((4, 64)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], oracle.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_host_steps_copy_mapped_constants(tmp_path):
    # ScatterND into a big initializer runs on the host and reads it every run: a copy, not the file
    rng = np.random.default_rng(5)
    table = rng.standard_normal((4096, 8)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("ScatterND", ["table", "i", "u"], ["y"])], "g",
                              [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1]),
                               helper.make_tensor_value_info("u", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096, 8])],
                              [numpy_helper.from_array(table, "table")])
    path = str(tmp_path / "scatter.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    sess = ggonnx.Session(path, threads=2)
    feeds = {"i": np.array([[5], [4095]], np.int64), "u": np.ones((2, 8), np.float32)}
    want = table.copy()
    want[[5, 4095]] = 1
    np.testing.assert_array_equal(sess.run(None, feeds)[0], want)
    assert [p.where for p in sess.placement()] == ["host"]
    plan = sess._runner.plans[sess._runner.last_sig]
    assert plan.env_consts and not any(is_mapped(c) for c in plan.env_consts.values())


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_damaged_file_loads_as_its_bytes_do(tmp_path_factory, data):
    # flipped or truncated bytes: opened by path (mapped) the model either fails with the error
    # its bytes give, or runs to the same outputs
    buf = bytearray(_mlp(np.random.default_rng(6)).SerializeToString())
    if data.draw(st.booleans()):
        del buf[data.draw(st.integers(1, len(buf) - 1)):]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    path = str(tmp_path_factory.mktemp("damaged") / "m.onnx")
    with open(path, "wb") as fh:
        fh.write(buf)
    x = np.random.default_rng(7).standard_normal((2, 64)).astype(np.float32)

    def outcome(model):
        try:
            sess = ggonnx.Session(model, threads=2)
            return [np.asarray(o) for o in sess.run(None, {i.name: x for i in sess.get_inputs()})]
        except ggonnx.errors.GgonnxError as exc:
            return type(exc)

    by_path, by_bytes = outcome(path), outcome(bytes(buf))
    if isinstance(by_bytes, type):
        assert by_path is by_bytes
    else:
        assert not isinstance(by_path, type)
        for a, b in zip(by_path, by_bytes):
            np.testing.assert_array_equal(a, b)
