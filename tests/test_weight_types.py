"""Weights stored in every ggml type: Session(model, weights=T).

A MatMul / Gemm with a weight in type T must equal x @ dequantize(quantize(W)) up to the
rounding of the activations to the type ggml multiplies T with (q8_0 / q8_K blocks, f16, bf16).
The dequantized reference comes from gguf-py's NumPy code, independent of ggml's C, where it
covers the type.
"""
from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import quants
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx import _core
from ggonnx.weight_types import MIN_ELEMENTS, TYPES

ALL_TYPES = sorted(TYPES)
ACT_BLOCK = {"q8_0": 32, "q8_1": 32, "q8_K": 256}
ACT_REL = {"f32": 1e-6, "f16": 2.0 ** -10, "bf16": 2.0 ** -7}


def model_bytes(nodes, inits, x_shape, out_shapes) -> bytes:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in out_shapes],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def dequantized(name: str, w_rows: np.ndarray) -> np.ndarray:
    """quantize then dequantize ``w_rows`` [N, K] as ggml type ``name``."""
    tid = TYPES[name][0]
    q = _core.quantize(tid, w_rows)
    if name in ("q1_0", "q2_0"):  # not in gguf-py yet: ggml's own dequantizer
        return _core.dequantize(tid, q, w_rows.shape)
    return quants.dequantize(q.reshape(w_rows.shape[0], -1), gguf.GGMLQuantizationType(tid))


def activation_error(name: str, x: np.ndarray) -> np.ndarray:
    """An upper bound of |x - x converted to the type ggml multiplies weight type ``name`` with|."""
    act = TYPES[name][3]
    if act in ACT_REL:
        return np.abs(x) * ACT_REL[act]
    b = ACT_BLOCK[act]
    amax = np.abs(x).reshape(x.shape[0], -1, b).max(axis=2, keepdims=True)
    return np.broadcast_to(amax / 127.0, (x.shape[0], x.shape[1] // b, b)).reshape(x.shape)


def check_product(name, y, x, wdq_t):
    """y ~ x @ wdq_t within the activation rounding bound."""
    bound = activation_error(name, x) @ np.abs(wdq_t) + 1e-4 * (np.abs(x) @ np.abs(wdq_t)) + 1e-5
    err = np.abs(y - x.astype(np.float64) @ wdq_t)
    assert np.all(err <= bound), f"{name}: max error {err.max():.3g}, bound there {bound.flat[err.argmax()]:.3g}"


@pytest.mark.parametrize("name", ALL_TYPES)
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_matmul_weight_in_type(name, data):
    block = TYPES[name][1]
    k = block * data.draw(st.integers(max(1, 256 // block), max(1, 768 // block)), label="k blocks")
    n = data.draw(st.integers(-(-MIN_ELEMENTS // k), 40), label="n")
    m = data.draw(st.integers(1, 9), label="m")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16), label="seed"))
    w = (rng.standard_normal((k, n)) * rng.uniform(0.01, 2.0)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    sess = ggonnx.Session(model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w}, (m, k),
                                      [("y", (m, n))]), weights=name)
    assert sess.weight_types() == ({} if name == "f32" else {"W": name})
    (y,) = sess.run(None, {"x": x})
    check_product(name, y, x, dequantized(name, np.ascontiguousarray(w.T)).T.astype(np.float64))


@pytest.mark.parametrize("name", ["q8_0", "q4_K", "bf16", "q4_0"])
def test_gemm_weight_in_type_with_bias_alpha_beta(name):
    rng = np.random.default_rng(1)
    m, k, n = 5, 512, 24
    wt = rng.standard_normal((n, k)).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "Wt", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)
    sess = ggonnx.Session(model_bytes([node], {"Wt": wt, "C": c}, (m, k), [("y", (m, n))]), weights=name)
    assert sess.weight_types() == {"Wt": name}
    (y,) = sess.run(None, {"x": x})
    check_product(name, (y - 2.0 * c) / 0.5, x, dequantized(name, wt).T.astype(np.float64))


def test_weight_rule_falls_back_where_the_block_does_not_fit():
    rng = np.random.default_rng(2)
    inits = {"A": rng.standard_normal((96, 64)).astype(np.float32),     # K 96: not a multiple of 256
             "B": rng.standard_normal((100, 64)).astype(np.float32),    # K 100: no block fits
             "C": rng.standard_normal((256, 8)).astype(np.float32)}     # 2048 values: too small
    nodes = [helper.make_node("MatMul", ["x", "A"], ["a"]),
             helper.make_node("Concat", ["x", "x", "pad"], ["x256"], axis=1),
             helper.make_node("Slice", ["x256", "s", "e100", "ax"], ["x100"]),
             helper.make_node("MatMul", ["x100", "B"], ["b"]), helper.make_node("MatMul", ["x256", "C"], ["c"])]
    inits.update(s=np.array([0]), e100=np.array([100]), ax=np.array([1]), pad=np.zeros((3, 64), np.float32))
    sess = ggonnx.Session(model_bytes(nodes, inits, (3, 96), [("a", (3, 64)), ("b", (3, 64)), ("c", (3, 8))]),
                          weights="q4_K")
    assert sess.weight_types() == {"A": "iq4_nl"}
    x = rng.standard_normal((3, 96)).astype(np.float32)
    a, b, c = sess.run(None, {"x": x})
    x256 = np.concatenate([x, x, np.zeros((3, 64), np.float32)], axis=1)
    np.testing.assert_allclose(b, x256[:, :100] @ inits["B"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(c, x256 @ inits["C"], rtol=1e-4, atol=1e-4)
    check_product("iq4_nl", a, x, dequantized("iq4_nl", np.ascontiguousarray(inits["A"].T)).T.astype(np.float64))


def test_repacked_types_land_in_the_repack_buffer_and_report_it():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((256, 64)).astype(np.float32)
    sess = ggonnx.Session(model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w}, (4, 256),
                                      [("y", (4, 64))]), weights="q4_0")
    detail = [p.detail for p in sess.placement() if p.op_type == "MatMul"][0]
    assert "q4_0 weight" in detail
    if _core.amx_weights():
        assert "(AMX)" in detail   # 64 rows: ggml's AMX kernels take the weight first
    elif "AVX2" in _core.cpu_features():
        assert "repacked" in detail


@pytest.mark.skipif(not _core.amx_weights(), reason="this CPU, OS or build has no AMX int8")
@pytest.mark.parametrize("name", ["q8_0", "q4_0", "q4_1", "q4_K", "q5_K", "q6_K", "iq4_xs"])
@pytest.mark.parametrize("m", [1, 5, 16, 37])
def test_amx_weight_matmul(name, m):
    """Weights in the AMX tile layout (rows a multiple of 32): ggml's AMX kernels, one row (its
    VNNI path) and tiles with a partial last block of rows, equal x @ dequantize(W) within the
    activation rounding; a second session in between (its own tile shapes) changes nothing."""
    rng = np.random.default_rng(m)
    k, n = 512, 96
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    data = model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w}, (m, k), [("y", (m, n))])
    sess = ggonnx.Session(data, weights=name)
    assert "(AMX)" in [p.detail for p in sess.placement() if p.op_type == "MatMul"][0]
    ref = dequantized(name, np.ascontiguousarray(w.T)).T.astype(np.float64)
    check_product(name, sess.run(None, {"x": x})[0], x, ref)
    other = ggonnx.Session(model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w[:256, :32].copy()},
                                       (m, 256), [("y", (m, 32))]), weights="q8_0")
    other.run(None, {"x": x[:, :256].copy()})
    check_product(name, sess.run(None, {"x": x})[0], x, ref)


@pytest.mark.skipif(not _core.amx_weights(), reason="this CPU, OS or build has no AMX int8")
@pytest.mark.parametrize("name", ["q8_0", "q4_0", "q4_K", "q5_K"])
@settings(max_examples=12, deadline=None)
@given(m=st.integers(2, 100), k_blocks=st.integers(1, 12), n_blocks=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_typed_weights_with_several_rows_on_amx_tiles(name, m, k_blocks, n_blocks, seed):
    """q8_0, q4_0, q4_K and q5_K weights times more than one row (vendor/ggml/patches/0004,
    0007-0009: rows quantized in the tiles' order, threads over column blocks, 4- and 5-bit tiles
    unpacked once per column block): any row count (a partial last block of 32 rows), depth in
    the type's blocks (32 for q8_0 and q4_0, 256 for the K-quants) and outputs in blocks of 32,
    rows of zeros and of large values, equal x @ dequantize(W) within the activation rounding."""
    block = 32 if name in ("q8_0", "q4_0") else 256
    k, n = block * k_blocks, 32 * n_blocks
    if k * n < MIN_ELEMENTS:
        k = -(-MIN_ELEMENTS // n // block) * block
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0] = 0.0
    x[-1] *= 1e4
    data = model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w}, (m, k), [("y", (m, n))])
    sess = ggonnx.Session(data, weights=name)
    assert "(AMX)" in sess.placement()[0].detail
    check_product(name, sess.run(None, {"x": x})[0], x, dequantized(name, np.ascontiguousarray(w.T)).T.astype(np.float64))


@pytest.mark.skipif(not _core.amx_bf16(), reason="this CPU, OS or build has no AMX-BF16")
@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 80), seed=st.integers(0, 2 ** 16))
def test_bf16_weights_on_amx_tiles_equal_ggml_bf16_kernel(m, k, n, seed):
    """bf16 weights on our AMX tile kernel (kernels_amx.c), any M, K, N (partial tiles of rows,
    depth and outputs): x @ bf16(W) within the bf16 rounding of x, and the same as ggml's own
    bf16 kernel (GGONNX_AMX=0) up to float32 summation order."""
    _check_bf16_on_amx_tiles(m, k, n, seed)


@pytest.mark.skipif(not _core.amx_bf16(), reason="this CPU, OS or build has no AMX-BF16")
@pytest.mark.parametrize("m,k,n", [(70, 300, 160), (33, 64, 128), (100, 4100, 130), (5, 4096, 200)])
def test_bf16_amx_tiles_threads_over_output_blocks(m, k, n):
    """Enough output blocks (4 or more at 2 threads) for threads to own runs of them; a depth of
    4,100 keeps two row blocks of X at a time, so 100 rows take two chunks."""
    _check_bf16_on_amx_tiles(m, k, n, 7)


def _check_bf16_on_amx_tiles(m, k, n, seed):
    if k * n < MIN_ELEMENTS:
        k = -(-MIN_ELEMENTS // n)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    data = model_bytes([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": w}, (m, k), [("y", (m, n))])
    amx = ggonnx.Session(data, weights="bf16")
    assert "AMX tiles" in amx.placement()[0].detail
    (y,) = amx.run(None, {"x": x})
    check_product("bf16", y, x, dequantized("bf16", np.ascontiguousarray(w.T)).T.astype(np.float64))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GGONNX_AMX", "0")
        ggml_bf16 = ggonnx.Session(data, weights="bf16")
    assert "AMX" not in ggml_bf16.placement()[0].detail
    np.testing.assert_allclose(y, ggml_bf16.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_unknown_weight_type_is_refused():
    with pytest.raises(ValueError, match="unknown weight type 'q9_9'"):
        ggonnx.Session(model_bytes([helper.make_node("Relu", ["x"], ["y"])], {}, (2,), [("y", (2,))]), weights="q9_9")


def test_quantize_rejects_rows_the_block_does_not_divide():
    with pytest.raises(ggonnx.errors.GraphBuildError, match="multiple of 32"):
        _core.quantize(TYPES["q8_0"][0], np.zeros((2, 40), np.float32))


@pytest.mark.parametrize("name", ["q8_0", "q4_0", "bf16"])
@pytest.mark.parametrize("kernel,stride,pads", [(1, 1, 0), (3, 1, 1), (3, 2, 1), (1, 2, 0)])
def test_conv_weight_in_type(name, kernel, stride, pads):
    """A dense conv with its weight in type T equals the float32 conv of the dequantized weight,
    up to the rounding of the activations (at most one q8 step of each 32-value block)."""
    rng = np.random.default_rng(kernel * 10 + stride)
    c, oc = 64, 80
    w = rng.standard_normal((oc, c, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    x = rng.standard_normal((2, c, 9, 11)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[kernel, kernel], strides=[stride] * 2,
                            pads=[pads] * 4)
    oh, ow = (9 + 2 * pads - kernel) // stride + 1, (11 + 2 * pads - kernel) // stride + 1
    out = [("y", (2, oc, oh, ow))]
    sess = ggonnx.Session(model_bytes([node], {"W": w, "B": b}, x.shape, out), weights=name)
    assert sess.weight_types() == {"W": name}
    (y,) = sess.run(None, {"x": x})
    rows = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(oc, -1))   # (ky, kx, c) rows, as stored
    w_dq = dequantized(name, rows).reshape(oc, kernel, kernel, c).transpose(0, 3, 1, 2)
    (ref,) = ggonnx.Session(model_bytes([node], {"W": np.ascontiguousarray(w_dq), "B": b}, x.shape, out)).run(
        None, {"x": x})
    scale = np.abs(x).max() * np.abs(w_dq).sum(axis=(1, 2, 3)).max()
    assert np.abs(y - ref).max() <= scale * (1 / 127 if TYPES[name][3] == "q8_0" else 2.0 ** -7)


@pytest.mark.parametrize("wiring", ["bias_residual_relu", "residual_computed_later", "relu_before_add",
                                    "output_read_twice", "clip_no_residual"])
def test_typed_conv_epilogue_joins_residual_and_activation(wiring):
    """A typed-weight conv's bias, a residual Add and an activation run as one epilogue pass
    only where that is the same sum (the residual computed before the conv, no activation yet,
    nothing else reading the conv's output): equal to the float32 graph of the dequantized
    weights."""
    rng = np.random.default_rng(3)
    c = 64
    x = rng.standard_normal((2, c, 7, 9)).astype(np.float32)
    w1 = (0.1 * rng.standard_normal((c, c, 3, 3))).astype(np.float32)
    w2 = (0.2 * rng.standard_normal((c, c, 1, 1))).astype(np.float32)
    b1, b2 = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    conv1 = helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1])
    conv2 = helper.make_node("Conv", ["x", "W2", "B2"], ["c2"])
    relu = lambda a, y: helper.make_node("Relu", [a], [y])  # noqa: E731
    nodes = {
        "bias_residual_relu": [conv2, conv1, helper.make_node("Add", ["c1", "c2"], ["s"]), relu("s", "y")],
        "residual_computed_later": [conv1, conv2, helper.make_node("Add", ["c1", "c2"], ["s"]), relu("s", "y")],
        "relu_before_add": [conv2, conv1, relu("c1", "r"), helper.make_node("Add", ["r", "c2"], ["y"])],
        "output_read_twice": [conv2, conv1, helper.make_node("Add", ["c1", "c2"], ["s"]),
                              helper.make_node("Mul", ["s", "c1"], ["y"])],
        "clip_no_residual": [conv1, helper.make_node("Clip", ["c1", "lo", "hi"], ["y"])],
    }[wiring]
    inits = {"W1": w1, "W2": w2, "B1": b1, "B2": b2, "lo": np.float32(-0.5), "hi": np.float32(0.5)}
    out = [("y", (2, c, 7, 9))]
    sess = ggonnx.Session(model_bytes(nodes, inits, x.shape, out), weights="f16")
    assert set(sess.weight_types().values()) == {"f16"}
    dq = {}
    for k, w in (("W1", w1), ("W2", w2)):
        rows = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(c, -1))
        dq[k] = np.ascontiguousarray(dequantized("f16", rows).reshape(w.shape[0], w.shape[2], w.shape[3], c)
                                     .transpose(0, 3, 1, 2))
    (ref,) = ggonnx.Session(model_bytes(nodes, {**inits, **dq}, x.shape, out)).run(None, {"x": x})
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())


def test_float_copies_of_typed_weights_are_released_and_later_plans_still_agree():
    """After a plan, a matmul weight uploaded only as typed rows drops its float32 array (the
    session holds about the quantized bytes); plans for new shapes reuse the uploaded rows."""
    rng = np.random.default_rng(5)
    table = rng.standard_normal((16, 256)).astype(np.float32)
    w = rng.standard_normal((256, 64)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "pos"], ["e"]), helper.make_node("Add", ["x", "e"], ["s"]),
             helper.make_node("MatMul", ["s", "W"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64])],
                          [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "W"),
                           numpy_helper.from_array(np.zeros(1, np.int64), "pos")])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    sess = ggonnx.Session(data, weights="q8_0")
    xs = [rng.standard_normal((m, 256)).astype(np.float32) for m in (3, 5, 3)]
    first = sess.run(None, {"x": xs[0]})[0]
    graph = sess._graph
    assert set(graph.placeholder_weights) == {"W"}
    assert graph.initializers["W"].strides == (0, 0)          # no float32 copy left
    for x in xs[1:]:   # new signatures plan from the uploaded rows and the kept table bytes
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ggonnx.Session(data, weights="q8_0").run(
            None, {"x": x})[0])
    np.testing.assert_array_equal(sess.run(None, {"x": xs[0]})[0], first)
