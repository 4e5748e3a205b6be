"""GGUF files: ggonnx.quantize writes a model's weights in a ggml type; Session opens the file
and computes exactly what a session quantizing the ONNX model at load computes."""
from __future__ import annotations

import gguf
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx import cli
from ggonnx.errors import ModelLoadError

RNG = np.random.default_rng(7)


def net() -> bytes:
    """Embedding rows -> Gemm (transB) -> MatMul, and a Conv + BatchNormalization branch."""
    inits = {
        "table": RNG.standard_normal((64, 256)).astype(np.float32),
        "Wg": RNG.standard_normal((128, 256)).astype(np.float32) * 0.1,
        "bg": RNG.standard_normal(128).astype(np.float32),
        "Wm": RNG.standard_normal((128, 96)).astype(np.float32) * 0.1,
        "Wc": RNG.standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.1,
        "bn_s": RNG.uniform(0.5, 1.5, 32).astype(np.float32), "bn_b": RNG.standard_normal(32).astype(np.float32),
        "bn_m": RNG.standard_normal(32).astype(np.float32), "bn_v": RNG.uniform(0.5, 1.5, 32).astype(np.float32),
    }
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]),
             helper.make_node("Gemm", ["emb", "Wg", "bg"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["r"]), helper.make_node("MatMul", ["r", "Wm"], ["y"]),
             helper.make_node("Conv", ["img", "Wc"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["z"])]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("ids", TensorProto.INT64, [5]),
                                         helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 32, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 96]),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 32, 8, 8])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


FEEDS = {"ids": np.array([3, 0, 63, 7, 7]), "img": RNG.standard_normal((1, 32, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("wtype", ["q8_0", "q4_K", "bf16", "q6_K"])
def test_gguf_file_computes_what_quantizing_at_load_computes(tmp_path, wtype):
    model = net()
    path = tmp_path / "net.gguf"
    typed = ggonnx.quantize(model, path, weights=wtype)
    assert set(typed) == {"table", "Wg", "Wm", "Conv_4__bn_folded_W"}   # the BN folded into the conv first
    at_load = ggonnx.Session(model, weights=wtype)
    from_file = ggonnx.Session(str(path))
    for a, b in zip(at_load.run(None, FEEDS), from_file.run(None, FEEDS)):
        np.testing.assert_array_equal(a, b)
    assert from_file.weight_types() == at_load.weight_types() == typed
    y32 = ggonnx.Session(model).run(None, FEEDS)[0]
    a = from_file.run(None, FEEDS)[0]
    assert float(np.sum(a * y32) / np.linalg.norm(a) / np.linalg.norm(y32)) > 0.99


def test_gguf_of_a_graph_with_nodes_fused_past_its_opset(tmp_path):
    """gpt2's erf/tanh Gelu chains fuse into a Gelu node (opset 20) in an opset-17 model: the
    stored graph is checked at each node's own opset when the file loads (it was refused)."""
    w = RNG.standard_normal((256, 64)).astype(np.float32) * 0.1
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Div", ["h", "sqrt2"], ["hs"]),
             helper.make_node("Erf", ["hs"], ["e"]), helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "e1"], ["he"]), helper.make_node("Mul", ["he", "half"], ["y"])]
    consts = {"W": w, "sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}
    g = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 64])],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert "Gelu" in [p.op_type for p in ggonnx.Session(model).placement()]
    path = tmp_path / "gelu.gguf"
    ggonnx.quantize(model, path, weights="q8_0")
    x = RNG.standard_normal((3, 256)).astype(np.float32)
    np.testing.assert_array_equal(ggonnx.Session(str(path)).run(None, {"x": x})[0],
                                  ggonnx.Session(model, weights="q8_0").run(None, {"x": x})[0])


def test_gguf_holds_blocks_a_model_shipped(tmp_path):
    """An onnxruntime MatMulNBits model: its 4-bit blocks go to the file as they are (q4_0)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    import onnx
    w = RNG.standard_normal((256, 64)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])], [numpy_helper.from_array(w, "W")])
    q = MatMulNBitsQuantizer(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), block_size=32,
                             is_symmetric=True)
    q.process()
    data = q.model.model.SerializeToString()
    assert onnx.load_from_string(data).graph.node[0].op_type == "MatMulNBits"
    path = tmp_path / "nbits.gguf"
    assert set(ggonnx.quantize(data, path, weights=None).values()) == {"q4_0"}
    x = RNG.standard_normal((2, 256)).astype(np.float32)
    np.testing.assert_array_equal(ggonnx.Session(str(path)).run(None, {"x": x})[0], ggonnx.Session(data).run(None, {"x": x})[0])


def test_folded_reads_of_a_typed_table_use_its_dequantized_blocks(tmp_path):
    """Rows gathered by constant indices fold at plan time: from a file, of the stored blocks."""
    table = RNG.standard_normal((32, 256)).astype(np.float32)
    w = RNG.standard_normal((256, 64)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gather", ["table", "pos"], ["e"]), helper.make_node("Add", ["x", "e"], ["s"]),
                           helper.make_node("MatMul", ["s", "W"], ["y"]),
                           helper.make_node("Gather", ["table", "ids"], ["t"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 256]),
                           helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 64]),
                           helper.make_tensor_value_info("t", TensorProto.FLOAT, [3, 256])],
                          [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "W"),
                           numpy_helper.from_array(np.array([0, 1, 2]), "pos")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path = tmp_path / "t.gguf"
    ggonnx.quantize(model, path, weights="q8_0")
    x, ids = RNG.standard_normal((3, 256)).astype(np.float32), np.array([0, 1, 2])
    y, t = ggonnx.Session(str(path)).run(None, {"x": x, "ids": ids})
    np.testing.assert_allclose(t, table[:3], atol=np.abs(table).max() / 127)   # the gathered blocks
    y_quantized_at_load = ggonnx.Session(model, weights="q8_0").run(None, {"x": x, "ids": ids})[0]
    np.testing.assert_allclose(y, y_quantized_at_load, atol=0.05 * np.abs(y).max())


def test_bad_gguf_files_raise_clear_errors(tmp_path):
    path = tmp_path / "net.gguf"
    ggonnx.quantize(net(), path, weights="q8_0")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelLoadError):
        ggonnx.Session(str(truncated))
    other = tmp_path / "llama.gguf"
    w = gguf.GGUFWriter(str(other), arch="llama")
    w.add_tensor("x", np.zeros(4, np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    with pytest.raises(ModelLoadError, match="not one ggonnx wrote"):
        ggonnx.Session(str(other))
    with pytest.raises(ModelLoadError, match="opened by path"):
        ggonnx.Session(data)
    with pytest.raises(ValueError, match="needs the float32 model"):
        ggonnx.Session(str(path), weights="q4_K")
    with pytest.raises(ValueError, match="unknown weight type"):
        ggonnx.quantize(net(), tmp_path / "x.gguf", weights="q3_X")


def test_cli_quantize_then_run(tmp_path, capsys):
    src, out = tmp_path / "net.onnx", tmp_path / "net.gguf"
    src.write_bytes(net())
    assert cli.main(["quantize", str(src), "-o", str(out), "--weights", "q4_0"]) == 0
    assert "q4_0 typed weights" in capsys.readouterr().out
    assert cli.main(["info", str(out)]) == 0
    assert "q4_0 weight" in capsys.readouterr().out


def test_inference_session_takes_the_weight_type_and_gguf_files(tmp_path):
    path, model = tmp_path / "net.gguf", net()
    ggonnx.quantize(model, path, weights="q8_0")
    a = ggonnx.InferenceSession(model, providers=["CPUExecutionProvider"], weights="q8_0").run(None, FEEDS)
    b = ggonnx.InferenceSession(str(path)).run(None, FEEDS)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
