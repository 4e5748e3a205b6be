"""onnxruntime's contrib ops (com.microsoft): each expansion against onnxruntime's own CPU kernel,
and the tiny transformers after onnxruntime's transformer optimizer."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.errors import UnsupportedOpError

MS = "com.microsoft"
NETS = os.path.join(os.path.dirname(__file__), "data", "nets")
FLOAT = TensorProto.FLOAT


def _model(node, inputs, outputs, inits=()):
    graph = helper.make_graph([node], "contrib", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
                             ).SerializeToString()


def _vi(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _against_ort(model: bytes, feeds: dict, rtol=1e-4, atol=1e-5):
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ggonnx.Session(model, threads=2).run(None, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


dims = st.tuples(st.integers(1, 3), st.integers(1, 9), st.sampled_from([8, 16, 24]))


@settings(max_examples=12, deadline=None)
@given(dims, st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_skip_layer_norm(shape, bias, beta, sum_out, seed):
    b, s, h = shape
    rng = np.random.default_rng(seed)
    names = ["x", "skip", "gamma", "beta" if beta else "", "bias" if bias else ""]
    while names[-1] == "":
        names.pop()
    outs = ["y"] + (["", "", "sum"] if sum_out else [])
    node = helper.make_node("SkipLayerNormalization", names, outs, domain=MS, epsilon=1e-5)
    inits = [numpy_helper.from_array(_rand(rng, h), n) for n in ("gamma", "beta", "bias")]
    model = _model(node, [_vi("x", [b, s, h]), _vi("skip", [b, s, h])],
                   [_vi("y", [b, s, h])] + ([_vi("sum", [b, s, h])] if sum_out else []), inits)
    _against_ort(model, {"x": _rand(rng, b, s, h), "skip": _rand(rng, b, s, h)})


@settings(max_examples=10, deadline=None)
@given(dims, st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_simplified_layer_norms(shape, skip, bias, seed):
    b, s, h = shape
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(_rand(rng, h), n) for n in ("gamma", "bias")]
    if skip:
        node = helper.make_node("SkipSimplifiedLayerNormalization", ["x", "skip", "gamma"] + (["bias"] if bias else []),
                                ["y"], domain=MS, epsilon=1e-6)
        inputs, feeds = [_vi("x", [b, s, h]), _vi("skip", [b, s, h])], {"skip": _rand(rng, b, s, h)}
    else:  # onnxruntime registers this one in the default domain
        node = helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["y"], axis=-1, epsilon=1e-6)
        inputs, feeds = [_vi("x", [b, s, h])], {}
    feeds["x"] = _rand(rng, b, s, h)
    _against_ort(_model(node, inputs, [_vi("y", [b, s, h])], inits), feeds)


@pytest.mark.parametrize("op", ["Gelu", "BiasGelu", "FastGelu", "FastGeluNoBias", "QuickGelu"])
@settings(max_examples=5, deadline=None)
@given(shape=dims, alpha=st.floats(0.5, 2.5), seed=st.integers(0, 2**16))
def test_gelus(shape, op, alpha, seed):
    b, s, h = shape
    rng = np.random.default_rng(seed)
    inputs = ["x"] + (["bias"] if op in ("BiasGelu", "FastGelu") else [])
    attrs = {"alpha": alpha} if op == "QuickGelu" else {}
    node = helper.make_node(op.replace("NoBias", ""), inputs, ["y"], domain=MS, **attrs)
    model = _model(node, [_vi("x", [b, s, h])], [_vi("y", [b, s, h])],
                   [numpy_helper.from_array(_rand(rng, h), "bias")])
    _against_ort(model, {"x": _rand(rng, b, s, h, scale=2.0)})


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_embed_layer_norm(b, s, segments, mask, positions, seed):
    rng = np.random.default_rng(seed)
    h, vocab = 16, 30
    names = ["ids", "seg" if segments else "", "words", "pos_table", "seg_table" if segments else "", "gamma", "beta",
             "mask" if mask else "", "pos_ids" if positions else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("EmbedLayerNormalization", names, ["y", "mask_index"], domain=MS, epsilon=1e-5)
    inits = [numpy_helper.from_array(_rand(rng, *shape), n) for n, shape in
             [("words", (vocab, h)), ("pos_table", (16, h)), ("seg_table", (2, h)), ("gamma", (h,)), ("beta", (h,))]]
    int32 = TensorProto.INT32
    inputs = [_vi("ids", [b, s], int32)] + ([_vi("seg", [b, s], int32)] if segments else []) + \
        ([_vi("mask", [b, s], int32)] if mask else []) + ([_vi("pos_ids", [b, s], int32)] if positions else [])
    model = _model(node, inputs, [_vi("y", [b, s, h]), _vi("mask_index", [b], int32)], inits)
    feeds = {"ids": rng.integers(0, vocab, (b, s)).astype(np.int32)}
    if segments:
        feeds["seg"] = rng.integers(0, 2, (b, s)).astype(np.int32)
    if mask:
        feeds["mask"] = (np.arange(s)[None] < rng.integers(1, s + 1, (b, 1))).astype(np.int32)
    if positions:
        feeds["pos_ids"] = rng.integers(0, 16, (b, s)).astype(np.int32)
    _against_ort(model, feeds)


def _mask(rng, form, b, s, t):
    if form == "lengths":
        return rng.integers(1, t + 1, (b,)).astype(np.int32)
    keep = (rng.random((b, s, t) if form == "3d" else (b, t)) > 0.3).astype(np.int32)
    keep[..., 0] = 1  # every query sees a key
    return keep


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("mask_form", ["none", "lengths", "2d", "3d"])
@settings(max_examples=5, deadline=None)
@given(b=st.integers(1, 2), s=st.integers(2, 8), heads=st.sampled_from([1, 2, 4]), with_bias=st.booleans(),
       scaled=st.booleans(), seed=st.integers(0, 2**16))
def test_attention(b, s, heads, mask_form, causal, with_bias, scaled, seed):
    rng = np.random.default_rng(seed)
    h = 8 * heads
    attrs = {"num_heads": heads, "unidirectional": int(causal)}
    if scaled:
        attrs["scale"] = 0.3
    names = ["x", "w", "b" if with_bias else "", "mask" if mask_form != "none" else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Attention", names, ["y"], domain=MS, **attrs)
    inits = [numpy_helper.from_array(_rand(rng, h, 3 * h, scale=0.3), "w"), numpy_helper.from_array(_rand(rng, 3 * h), "b")]
    inputs = [_vi("x", [b, s, h])]
    feeds = {"x": _rand(rng, b, s, h)}
    if mask_form != "none":
        feeds["mask"] = _mask(rng, mask_form, b, s, s)
        inputs.append(_vi("mask", list(feeds["mask"].shape), TensorProto.INT32))
    _against_ort(_model(node, inputs, [_vi("y", [b, s, h])], inits), feeds)


@pytest.mark.parametrize("past", [0, 3], ids=["no_past", "past"])
@pytest.mark.parametrize("mask_form", ["none", "2d"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@settings(max_examples=4, deadline=None)
@given(b=st.integers(1, 2), s=st.integers(1, 6), kv_len=st.integers(1, 7), heads=st.sampled_from([1, 2]),
       with_bias=st.booleans(), attn_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_multi_head_attention(b, s, kv_len, heads, with_bias, mask_form, past, causal, attn_bias, seed):
    rng = np.random.default_rng(seed)
    if causal:  # new keys other than the queries' own positions: onnxruntime's own pattern, not covered
        kv_len = s
    h = 8 * heads
    names = ["q", "k", "v", "bias" if with_bias else "", "mask" if mask_form != "none" else "",
             "attn_bias" if attn_bias else "", "past_k" if past else "", "past_v" if past else ""]
    while names[-1] == "":
        names.pop()
    outs = ["y"] + (["present_k", "present_v"] if past else [])
    node = helper.make_node("MultiHeadAttention", names, outs, domain=MS, num_heads=heads, unidirectional=int(causal))
    total = past + kv_len
    feeds = {"q": _rand(rng, b, s, h), "k": _rand(rng, b, kv_len, h), "v": _rand(rng, b, kv_len, h)}
    if mask_form != "none":
        feeds["mask"] = _mask(rng, mask_form, b, s, total)
    if attn_bias:
        feeds["attn_bias"] = _rand(rng, 1, heads, s, total)
    if past:
        feeds["past_k"], feeds["past_v"] = _rand(rng, b, heads, past, 8), _rand(rng, b, heads, past, 8)
    inputs = [_vi(n, list(a.shape), TensorProto.INT32 if a.dtype == np.int32 else FLOAT) for n, a in feeds.items()]
    outputs = [_vi("y", [b, s, h])] + ([_vi(n, [b, heads, total, 8]) for n in outs[1:]])
    _against_ort(_model(node, inputs, outputs, [numpy_helper.from_array(_rand(rng, 3 * h), "bias")]), feeds)


def test_attention_with_a_past_state_is_refused_by_name():
    node = helper.make_node("Attention", ["x", "w", "", "", "past"], ["y", "present"], domain=MS, num_heads=2)
    model = _model(node, [_vi("x", [1, 4, 16]), _vi("past", [2, 1, 2, 3, 8])],
                   [_vi("y", [1, 4, 16]), _vi("present", [2, 1, 2, 7, 8])],
                   [numpy_helper.from_array(np.zeros((16, 48), np.float32), "w")])
    with pytest.raises(UnsupportedOpError, match="Attention.*past"):
        ggonnx.Session(model)


@pytest.mark.parametrize("name,model_type", [("bert", "bert"), ("gpt2", "gpt2"), ("vit", "vit"),
                                             ("t5_encoder", "t5"), ("whisper_encoder", "bert")])
def test_optimized_tiny_transformers(tmp_path, name, model_type):
    from onnxruntime.transformers import optimizer
    optimized = optimizer.optimize_model(os.path.join(NETS, f"tiny_{name}.onnx"), model_type=model_type,
                                         num_heads=2, hidden_size=32, opt_level=0)
    contrib = {n.op_type for n in optimized.model.graph.node if n.domain == MS}
    assert contrib, "the optimizer fused nothing: the test would not test contrib ops"
    path = str(tmp_path / "optimized.onnx")
    onnx.save(optimized.model, path)
    oracle = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for info in oracle.get_inputs():
        shape = [d if isinstance(d, int) else 16 for d in info.shape]
        if "int" in info.type:
            feeds[info.name] = rng.integers(0, 50, shape).astype(np.int64)
            if "mask" in info.name:  # padding at the end of every row
                feeds[info.name] = (np.arange(shape[-1]) < 11).astype(np.int64) * np.ones(shape, np.int64)
        else:
            feeds[info.name] = _rand(rng, *shape)
    sess = ggonnx.Session(path, threads=2)
    for got, want in zip(sess.run(None, feeds), oracle.run(None, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    matmuls = [p for p in sess.placement() if p.op_type in ("MatMul", "Gemm")]
    assert matmuls and all(p.where == "ggml" for p in matmuls)


def test_causal_cross_attention_is_refused_not_guessed():
    # causal attention whose new keys outnumber the queries: onnxruntime masks in a pattern of its
    # own there; ggonnx raises (naming the node) rather than answer differently
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain=MS, num_heads=1, unidirectional=1)
    model = _model(node, [_vi("q", [1, 2, 8]), _vi("k", [1, 3, 8]), _vi("v", [1, 3, 8])], [_vi("y", [1, 2, 8])])
    rng = np.random.default_rng(0)
    with pytest.raises(ggonnx.errors.GgonnxError, match="MultiHeadAttention"):
        ggonnx.Session(model).run(None, {"q": _rand(rng, 1, 2, 8), "k": _rand(rng, 1, 3, 8), "v": _rand(rng, 1, 3, 8)})


@pytest.mark.parametrize("interleaved", [0, 1], ids=["halves", "pairs"])
@pytest.mark.parametrize("layout", ["bsh", "bnsd"])
@settings(max_examples=6, deadline=None)
@given(b=st.integers(1, 2), s=st.integers(1, 6), heads=st.sampled_from([1, 2]), partial=st.booleans(),
       offset=st.booleans(), seed=st.integers(0, 2**16))
def test_rotary_embedding(interleaved, layout, b, s, heads, partial, offset, seed):
    rng = np.random.default_rng(seed)
    d, max_pos = 8, 32
    rotary = 4 if partial else d
    attrs = {"interleaved": interleaved, "num_heads": heads}
    if partial:
        attrs["rotary_embedding_dim"] = rotary
    shape = [b, s, heads * d] if layout == "bsh" else [b, heads, s, d]
    angles = np.arange(max_pos)[:, None] * (1.0 / 10000 ** (np.arange(rotary // 2) / (rotary // 2)))[None]
    feeds = {"x": _rand(rng, *shape),
             "pos": np.array([rng.integers(0, max_pos - s)]) if offset else rng.integers(0, max_pos, (b, s)),
             "cos": np.cos(angles).astype(np.float32), "sin": np.sin(angles).astype(np.float32)}
    node = helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain=MS, **attrs)
    inputs = [_vi("x", shape), _vi("pos", list(feeds["pos"].shape), TensorProto.INT64),
              _vi("cos", [max_pos, rotary // 2]), _vi("sin", [max_pos, rotary // 2])]
    _against_ort(_model(node, inputs, [_vi("y", shape)]), feeds)


@pytest.mark.parametrize("rotary", [0, 1], ids=["plain", "rotary"])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@settings(max_examples=5, deadline=None)
@given(b=st.integers(1, 2), s=st.integers(1, 4), past=st.integers(0, 5), interleaved=st.integers(0, 1),
       seed=st.integers(0, 2**16))
def test_group_query_attention(rotary, kv_heads, b, s, past, interleaved, seed):
    rng = np.random.default_rng(seed)
    heads, d, max_pos = 4, 16, 32  # onnxruntime's rotary needs a head size of a multiple of 16
    if past and s > 1:  # onnxruntime: "batch_size must be 1 when sequence_length > 1 and past context is given"
        b = 1
    names = ["q", "k", "v", "past_k", "past_v", "seqlens_k", "total"] + (["cos", "sin"] if rotary else [])
    node = helper.make_node("GroupQueryAttention", names, ["y", "present_k", "present_v"], domain=MS,
                            num_heads=heads, kv_num_heads=kv_heads, do_rotary=rotary, rotary_interleaved=interleaved)
    angles = np.arange(max_pos)[:, None] * (1.0 / 10000 ** (np.arange(d // 2) / (d // 2)))[None]
    feeds = {"q": _rand(rng, b, s, heads * d), "k": _rand(rng, b, s, kv_heads * d), "v": _rand(rng, b, s, kv_heads * d),
             "past_k": _rand(rng, b, kv_heads, past, d), "past_v": _rand(rng, b, kv_heads, past, d),
             "seqlens_k": np.full((b,), past + s - 1, np.int32), "total": np.array(past + s, np.int32)}
    if rotary:
        feeds["cos"], feeds["sin"] = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    inputs = [_vi(n, list(a.shape), TensorProto.INT32 if a.dtype == np.int32 else FLOAT) for n, a in feeds.items()]
    outputs = [_vi("y", [b, s, heads * d]), _vi("present_k", [b, kv_heads, past + s, d]),
               _vi("present_v", [b, kv_heads, past + s, d])]
    _against_ort(_model(node, inputs, outputs), feeds)


def test_group_query_attention_padded_batch_raises():
    # entries of different lengths in one cache: onnxruntime writes each at its own offset, which
    # the expansion does not; it raises instead of answering differently
    heads, d = 2, 8
    node = helper.make_node("GroupQueryAttention", ["q", "k", "v", "past_k", "past_v", "seqlens_k", "total"],
                            ["y"], domain=MS, num_heads=heads, kv_num_heads=heads)
    rng = np.random.default_rng(0)
    feeds = {"q": _rand(rng, 2, 1, heads * d), "k": _rand(rng, 2, 1, heads * d), "v": _rand(rng, 2, 1, heads * d),
             "past_k": _rand(rng, 2, heads, 3, d), "past_v": _rand(rng, 2, heads, 3, d),
             "seqlens_k": np.array([3, 2], np.int32), "total": np.array(4, np.int32)}
    inputs = [_vi(n, list(a.shape), TensorProto.INT32 if a.dtype == np.int32 else FLOAT) for n, a in feeds.items()]
    model = _model(node, inputs, [_vi("y", [2, 1, heads * d])])
    with pytest.raises(ggonnx.errors.GgonnxError, match="GroupQueryAttention"):
        ggonnx.Session(model).run(None, feeds)


def test_bias_split_gelu_against_numpy():
    # onnxruntime has no CPU kernel for it: its documented formula is the oracle,
    # (x + bias) split in halves along the last axis, left * Gelu(right)
    from math import erf
    rng = np.random.default_rng(0)
    x, bias = _rand(rng, 2, 3, 16), _rand(rng, 16)
    node = helper.make_node("BiasSplitGelu", ["x", "bias"], ["y"], domain=MS)
    model = _model(node, [_vi("x", [2, 3, 16])], [_vi("y", [2, 3, 8])], [numpy_helper.from_array(bias, "bias")])
    left, right = np.split((x + bias).astype(np.float64), 2, axis=-1)
    want = left * 0.5 * right * (1 + np.vectorize(erf)(right / np.sqrt(2)))
    np.testing.assert_allclose(ggonnx.Session(model).run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["Attention", "MultiHeadAttention"])
def test_missing_head_count_is_a_load_error(op):
    names = ["x", "w"] if op == "Attention" else ["x", "x", "x"]
    node = helper.make_node(op, names, ["y"], domain=MS)
    model = _model(node, [_vi("x", [1, 4, 16])], [_vi("y", [1, 4, 16])],
                   [numpy_helper.from_array(np.zeros((16, 48), np.float32), "w")] if op == "Attention" else [])
    with pytest.raises(ggonnx.errors.InvalidGraph, match=f"{op}.*num_heads"):
        ggonnx.Session(model)
