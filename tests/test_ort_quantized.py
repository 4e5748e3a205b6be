"""Models quantized by onnxruntime's own tools run in ggml and match onnxruntime.

quantize_dynamic (DynamicQuantizeLinear + MatMulInteger), quantize_static in QDQ and QOperator
(QLinearMatMul, QLinearConv, QLinearAdd) formats and MatMulNBits (4-bit blocks) are generated
here from small float models. With ``weights="f32"`` ggonnx dequantizes the weights once and
runs the float ops, which must equal onnxruntime wherever onnxruntime's arithmetic is float
too; by default the int8 / 4-bit weights become ggml q8_0 / q4_0 / q4_1 blocks, and the result
must sit within onnxruntime's own quantization error of float32.
"""
from __future__ import annotations

import gguf
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from gguf import quants
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

import ggonnx
from ggonnx.optimize_quant import nbits_weight

RNG = np.random.default_rng(0)
M, K, H, N = 4, 256, 128, 64


def mlp() -> onnx.ModelProto:
    inits = {"W": RNG.standard_normal((K, H)).astype(np.float32) * 0.1,
             "B": RNG.standard_normal(H).astype(np.float32),
             "W2": RNG.standard_normal((H, N)).astype(np.float32) * 0.1}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["y"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def convnet() -> onnx.ModelProto:
    inits = {"W": RNG.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.2,
             "B": RNG.standard_normal(32).astype(np.float32) * 0.1,
             "W2": RNG.standard_normal((16, 32, 1, 1)).astype(np.float32) * 0.2}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "W2"], ["y"])]
    g = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 10, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 10, 12])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


class Reader(CalibrationDataReader):
    def __init__(self, shape):
        self.feeds = iter([{"x": RNG.standard_normal(shape).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.feeds, None)


def quantized(tmp_path, model, how: str) -> bytes:
    src, dst = tmp_path / "model.onnx", tmp_path / f"model_{how}.onnx"
    onnx.save(model, src)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if how == "dynamic":
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    elif how == "dynamic_per_channel":
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
    elif how == "qdq":
        quantize_static(src, dst, Reader(shape), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
    elif how == "qoperator":
        quantize_static(src, dst, Reader(shape), quant_format=QuantFormat.QOperator,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    else:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        block, symmetric = how.split("_")[1:]
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # the quantizer rewrites the model it is given
        q = MatMulNBitsQuantizer(copy, block_size=int(block), is_symmetric=symmetric == "sym")
        q.process()
        return q.model.model.SerializeToString()
    return dst.read_bytes()


def run_all(model_bytes: bytes, float_model: onnx.ModelProto, x: np.ndarray, weights=None):
    ours = ggonnx.Session(model_bytes, weights=weights)
    y = ours.run(None, {"x": x})[0]
    ref = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    f32 = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return ours, y, ref, f32


def all_in_ggml(sess, x_shape):
    host = [(p.op_type, p.detail) for p in sess.placement({"x": x_shape})
            if p.where != "ggml" and p.detail != "folded at plan time"]
    assert not host, f"ran on the host: {host}"


@pytest.mark.parametrize("how,wtype", [("dynamic", "q8_0"), ("dynamic_per_channel", "q8_0"), ("qdq", "q8_0"),
                                       ("qoperator", "q8_0"), ("nbits_32_sym", "q4_0"), ("nbits_128_asym", "q4_1")])
def test_onnxruntime_quantized_mlp_runs_in_ggml_within_its_quantization_error(tmp_path, how, wtype):
    model = mlp()
    data = quantized(tmp_path, model, how)
    x = RNG.standard_normal((M, K)).astype(np.float32)
    sess, y, ref, f32 = run_all(data, model, x)
    all_in_ggml(sess, x.shape)
    assert set(sess.weight_types().values()) == {wtype}
    own_error = np.abs(ref - f32).max()          # onnxruntime's quantization error
    assert np.abs(y - ref).max() <= 1.5 * own_error
    assert np.abs(y - f32).max() <= 1.5 * own_error


@pytest.mark.parametrize("how", ["qdq", "qoperator", "nbits_32_sym", "nbits_128_asym"])
def test_dequantized_weights_equal_onnxruntime_where_its_arithmetic_is_float(tmp_path, how):
    """weights="f32": the int8 / 4-bit weights dequantized once, the activations' Quantize /
    DequantizeLinear pairs in ggml: onnxruntime's result up to float rounding."""
    model = mlp()
    data = quantized(tmp_path, model, how)
    x = RNG.standard_normal((M, K)).astype(np.float32)
    sess, y, _, _ = run_all(data, model, x, weights="f32")
    all_in_ggml(sess, x.shape)
    assert sess.weight_types() == {}
    # onnxruntime's graph optimizations turn QDQ pairs into integer kernels, whose arithmetic is
    # not float on every CPU (without VNNI, MLAS's u8 x s8 products saturate at int16): with
    # them off, each QuantizeLinear / DequantizeLinear / MatMul runs as written
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("how", ["qdq", "qoperator", "dynamic", "dynamic_per_channel"])
def test_onnxruntime_quantized_convnet_runs_in_ggml(tmp_path, how):
    model = convnet()
    data = quantized(tmp_path, model, how)
    x = RNG.standard_normal((1, 16, 10, 12)).astype(np.float32)
    sess, y, ref, f32 = run_all(data, model, x)
    all_in_ggml(sess, x.shape)
    assert np.abs(y - ref).max() <= 1.5 * np.abs(ref - f32).max()
    if how.startswith("dynamic"):  # ConvInteger: the 1x1 conv's int8 rows (K = 32) as q8_0 blocks; the
        # 3x3 conv's K = 144 is no multiple of 32: dequantized to float32
        assert list(sess.weight_types().values()) == ["q8_0"]


@pytest.mark.parametrize("block,zero_points", [(32, False), (64, True), (128, False)])
def test_matmul_nbits_blocks_become_exact_ggml_blocks(block, zero_points):
    n, k = 8, 256
    blocks = k // block
    q = RNG.integers(0, 16, (n, blocks, block), dtype=np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    scales = RNG.uniform(0.01, 0.1, (n, blocks)).astype(np.float16).astype(np.float32)  # exact in fp16
    zp = RNG.integers(0, 16, (n, blocks), dtype=np.uint8) if zero_points else None
    zp_packed = None if zp is None else (zp[:, 0::2] | (zp[:, 1::2] << 4)).astype(np.uint8)
    w, typed = nbits_weight(packed, scales, zp_packed, n, k, 4, block)
    expect = ((q.astype(np.float32) - (8 if zp is None else zp[..., None])) * scales[..., None]).reshape(n, k)
    np.testing.assert_array_equal(w.T, expect)
    name, raw = typed
    assert name == ("q4_1" if zero_points else "q4_0")
    dq = quants.dequantize(raw.reshape(n, -1), gguf.GGMLQuantizationType[name.upper()])
    np.testing.assert_allclose(dq, expect, rtol=0, atol=1e-3 * np.abs(expect).max())
    if not zero_points:
        np.testing.assert_array_equal(dq, expect)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.floats(-3, 3), st.sampled_from(["none", "nan", "inf", "-inf", "positive", "constant"]),
       st.integers(0, 2**32 - 1))
def test_dynamic_quantize_linear_on_the_host_matches_onnxruntime(size, log_scale, special, seed):
    """A lone DynamicQuantizeLinear (no MatMulInteger to fold it into) runs our host kernel. A NaN
    is drawn only into inputs of at most 8 values, where onnxruntime's min/max is not vectorized
    and skips it (README, "Where ggonnx and onnxruntime differ")."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(size) * 10.0 ** log_scale).astype(np.float32)
    if special == "positive":
        x = np.abs(x)
    elif special == "constant":
        x[:] = x[0]
    elif special != "none" and (special != "nan" or size <= 8):
        x[rng.integers(size)] = float(special)
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero_point"])
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None),
                               helper.make_tensor_value_info("scale", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("zero_point", TensorProto.UINT8, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = ggonnx.Session(model).run(None, {"x": x})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
