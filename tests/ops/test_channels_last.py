"""Channels-last (NHWC) regions: a Conv's output stays channels-last through the ops after it
(activations, pools, residual Adds, squeeze-excite Muls, Concat, BatchNormalization, global
pools) and leaves the island in the plain layout. Each drawn block is checked against
onnxruntime, and every node must run in ggml."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

import ggonnx
from ggonnx.errors import GgonnxError
from ggonnx.ops import coalesce

from ._helpers import THREADS, make_model, randn, seeds

TAILS = ["Relu", "Clip6", "HardSwish", "SiLU", "HardSigmoid", "LeakyRelu", "MaxPool", "AveragePool",
         "GlobalAveragePool", "GlobalMaxPool", "Residual", "SqueezeExcite", "Concat", "BatchNorm",
         "AddConst", "MulPlainInput"]


@st.composite
def blocks(draw):
    kind = draw(st.sampled_from(["dense", "depthwise", "pointwise", "grouped"]))
    c = draw(st.integers(2, 20))
    oc = c if kind == "depthwise" else draw(st.integers(1, 20))
    group = c if kind == "depthwise" else 1
    if kind == "grouped":  # output channels per group dividing 16 (one packed GEMM) or not
        group = draw(st.integers(2, 4))
        c = group * draw(st.integers(1, 6))
        oc = group * draw(st.sampled_from([1, 2, 4, 8, 16, 32, 3, 5]))
    k = 1 if kind == "pointwise" else draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2)) if k > 1 else 1
    symmetric = draw(st.booleans())
    pb = [draw(st.integers(0, k - 1 if k > 1 else 0)) for _ in range(2)]
    pe = pb if symmetric else [draw(st.integers(0, k - 1 if k > 1 else 0)) for _ in range(2)]
    h, w = (draw(st.integers((k - 1) * d + 2, 11)) for _ in range(2))
    tails = draw(st.lists(st.sampled_from(TAILS), min_size=1, max_size=3).filter(
        lambda t: sum(x in ("MaxPool", "AveragePool") for x in t) <= 1 and not any(
            x in ("MaxPool", "AveragePool") and any(y.startswith("Global") for y in t[:i]) for i, x in enumerate(t))))
    pool = dict(k=draw(st.integers(1, 3)), s=draw(st.integers(1, 2)), ceil=draw(st.integers(0, 1)),
                pad=draw(st.integers(0, 1)), count_pad=draw(st.integers(0, 1)), dil=draw(st.integers(1, 2)))
    return dict(kind=kind, group=group, n=draw(st.integers(1, 2)), c=c, oc=oc, k=k, s=s, d=d, pads=pb + pe, h=h, w=w,
                tails=tails, pool=pool, bias=draw(st.booleans()))


def _graph(case, rng):
    """Nodes, initializers and the input of one drawn block."""
    nodes, consts = [], {}
    counter = iter(range(1000))

    def name(prefix):
        return f"{prefix}{next(counter)}"

    def const(arr):
        n = name("c")
        consts[n] = np.asarray(arr, dtype=np.float32)
        return n

    def node(op, inputs, **attrs):
        out = name("t")
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    c, oc, k = case["c"], case["oc"], case["k"]
    group = case["group"]
    w = randn(rng, (oc, c // group, k, k), scale=1 / np.sqrt(c * k * k / group))
    conv_in = [ "x", const(w)] + ([const(randn(rng, (oc,), 0.1))] if case["bias"] else [])
    y = node("Conv", conv_in, kernel_shape=[k, k], strides=[case["s"]] * 2, dilations=[case["d"]] * 2,
             pads=case["pads"], group=group)
    shape_c = oc
    for tail in case["tails"]:
        p = case["pool"]
        if tail == "Relu":
            y = node("Relu", [y])
        elif tail == "Clip6":
            y = node("Clip", [y, const(0.0), const(6.0)])
        elif tail == "HardSwish":
            y = node("HardSwish", [y])
        elif tail == "HardSigmoid":
            y = node("HardSigmoid", [y], alpha=0.3, beta=0.4)
        elif tail == "LeakyRelu":
            y = node("LeakyRelu", [y], alpha=0.1)
        elif tail == "SiLU":
            y = node("Mul", [y, node("Sigmoid", [y])])
        elif tail in ("MaxPool", "AveragePool"):
            attrs = dict(kernel_shape=[p["k"]] * 2, strides=[p["s"]] * 2, ceil_mode=p["ceil"],
                         pads=[min(p["pad"], p["k"] - 1)] * 4)
            if tail == "MaxPool":
                attrs["dilations"] = [p["dil"]] * 2
            else:
                attrs["count_include_pad"] = p["count_pad"]
            y = node(tail, [y], **attrs)
        elif tail in ("GlobalAveragePool", "GlobalMaxPool"):
            y = node(tail, [y])
        elif tail == "Residual":
            y = node("Add", [y, node("Relu", [y])])
        elif tail == "SqueezeExcite":
            gate = node("Sigmoid", [node("GlobalAveragePool", [y])])
            y = node("Mul", [y, gate])
        elif tail == "Concat":
            other = node("Conv", [y, const(randn(rng, (3, shape_c, 1, 1)))])
            y = node("Concat", [y, other], axis=1)
            shape_c += 3
        elif tail == "BatchNorm":
            y = node("BatchNormalization", [y, const(rng.uniform(0.5, 2, shape_c)), const(randn(rng, (shape_c,))),
                                            const(randn(rng, (shape_c,))), const(rng.uniform(0.5, 2, shape_c))])
        elif tail == "AddConst":
            y = node("Add", [y, const(randn(rng, (shape_c, 1, 1)))])
        elif tail == "MulPlainInput":  # a plain-layout value of the same shape meets a channels-last one
            y = node("Mul", [y, node("Tanh", [y])])
    return nodes, consts, y


@settings(max_examples=60, deadline=None)
@given(blocks(), seeds)
def test_block_matches_onnxruntime(case, seed):
    p, pads = case["pool"], case["pads"]
    conv_out = [(size + pads[i] + pads[i + 2] - case["d"] * (case["k"] - 1) - 1) // case["s"] + 1
                for i, size in enumerate((case["h"], case["w"]))]
    # a pool window wider than its padded input: onnxruntime and the ONNX spec disagree on the
    # output size (C truncation vs floor), which is not a channels-last question
    assume(min(conv_out) + 2 * min(p["pad"], p["k"] - 1) >= (p["k"] - 1) * p["dil"] + 1)
    rng = np.random.default_rng(seed)
    nodes, consts, out = _graph(case, rng)
    x = randn(rng, (case["n"], case["c"], case["h"], case["w"]))
    model = make_model(nodes, {"x": x}, consts, outputs=[out], opset=17)
    try:
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]
    except Exception:  # a pool that leaves no output: onnxruntime refuses, and so must we
        with pytest.raises(GgonnxError):
            ggonnx.Session(model, threads=THREADS).run(None, {"x": x})
        return
    # a pool window entirely in the padding yields -FLT_MAX, and a conv over that overflows in
    # an order-dependent way (inf or NaN): no layout question there
    assume(np.all(np.abs(want) < 1e30))
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    assert all(p.where == "ggml" for p in sess.placement())  # BatchNormalization may fold into the Conv


def test_resnet_style_block_stays_channels_last():
    """Conv-Relu-Conv + residual, pool: every node computes on channels-last data."""
    rng = np.random.default_rng(0)
    x = randn(rng, (1, 16, 12, 12))
    w1, w2 = randn(rng, (16, 16, 3, 3), 0.1), randn(rng, (16, 16, 3, 3), 0.1)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "a"], ["d"]),
             helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": x}, {"w1": w1, "w2": w2}, outputs=["y"])
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
    assert all(p.detail.startswith("channels-last") for p in sess.placement())


def test_convnext_style_block_needs_no_transposes():
    """Depthwise conv, NCHW->NHWC Transpose, LayerNorm, MLP, layer scale, NHWC->NCHW Transpose,
    residual Add: both Transposes reinterpret the channels-last memory (no copy), matching
    onnxruntime."""
    rng = np.random.default_rng(5)
    c = 16
    x = randn(rng, (2, c, 7, 9))
    consts = {"dw": randn(rng, (c, 1, 7, 7), 0.1), "g": np.abs(randn(rng, (c,))), "b": randn(rng, (c,), 0.1),
              "w1": randn(rng, (c, 4 * c), 0.2), "b1": randn(rng, (4 * c,), 0.1),
              "w2": randn(rng, (4 * c, c), 0.1), "b2": randn(rng, (c,), 0.1), "s": randn(rng, (c,), 0.1)}
    nodes = [helper.make_node("Conv", ["x", "dw"], ["a"], pads=[3, 3, 3, 3], group=c),
             helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["n", "w1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["h2"]),
             helper.make_node("Mul", ["h2", "s"], ["ls"]),
             helper.make_node("Transpose", ["ls"], ["back"], perm=[0, 3, 1, 2]),
             helper.make_node("Add", ["back", "x"], ["y"])]
    model = make_model(nodes, {"x": x}, consts, outputs=["y"], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
    placement = sess.placement()
    assert all(p.where == "ggml" for p in placement)
    assert placement[-1].detail.startswith("channels-last")   # the residual Add


@pytest.mark.parametrize("c,oc,k,group", [(3, 20, 3, 1), (100, 40, 3, 1), (520, 33, 3, 1), (900, 17, 1, 1),
                                          (800, 64, 3, 2), (96, 96, 3, 12)])
def test_deep_convs_run_in_depth_chunks(c, oc, k, group):
    """Depths beyond one cache chunk (kernels.c KC): whole taps per chunk, a tap's channels split
    over chunks, grouped panels; partial sums must add up to onnxruntime's result."""
    rng = np.random.default_rng(c + oc)
    x = randn(rng, (2, c, 6, 5))
    w = randn(rng, (oc, c // group, k, k), 1 / np.sqrt(c * k * k / group))
    b = randn(rng, (oc,), 0.1)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[k // 2] * 4, group=group),
             helper.make_node("Relu", ["a"], ["y"])]
    model = make_model(nodes, {"x": x}, {"w": w, "b": b}, outputs=["y"], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
    assert all(p.where == "ggml" for p in sess.placement())


@settings(max_examples=40, deadline=None)
@given(c=st.sampled_from([16, 17, 24, 33, 64]), oc=st.integers(1, 16), k=st.integers(1, 3), s=st.integers(1, 2),
       d=st.integers(1, 2), n=st.integers(1, 2), hw=st.tuples(st.integers(5, 9), st.integers(5, 9)),
       tail=st.sampled_from([None, "Relu", "Sigmoid", "HardSwish"]), bias=st.booleans(), seed=seeds)
def test_narrow_convs(c, oc, k, s, d, n, hw, tail, bias, seed):
    """Convs to at most 8 channels from 16 or more run as dot products along the depth, blocks of
    4 pixels x 4 outputs (odd pixel and channel counts included), activation in the epilogue;
    9 to 16 outputs run on the one-panel outer-product tile."""
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, c) + hw)
    consts = {"w": randn(rng, (oc, c, k, k), 1 / np.sqrt(c * k * k))}
    inputs = ["x", "w"]
    if bias:
        consts["b"] = randn(rng, (oc,), 0.1)
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["a"], pads=[k // 2, 0, k // 2, k // 2], strides=[s, s],
                              dilations=[d, d])]
    if tail:
        nodes.append(helper.make_node(tail, ["a"], ["y"]))
    model = make_model(nodes, {"x": x}, consts, outputs=[nodes[-1].output[0]], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
    assert all(p.where == "ggml" for p in sess.placement())


@pytest.mark.parametrize("wiring", ["two_convs_then_relu", "conv_plus_earlier", "relu_before_add",
                                    "conv_output_read_twice", "matmul_bias_relu", "matmul_bias_2d"])
def test_adds_fold_into_gemm_epilogues(wiring):
    """Residual Adds and bias Adds fold into the producing GEMM's epilogue (before its
    activation) only where that is the same sum: the residual computed before the GEMM, no
    activation applied yet, nothing else reading the GEMM's output."""
    rng = np.random.default_rng(7)
    c = 12
    consts = {"w1": randn(rng, (c, c, 3, 3), 0.15), "w2": randn(rng, (c, c, 1, 1), 0.3),
              "m": randn(rng, (c, 20), 0.3), "bm": randn(rng, (20,), 0.5)}
    x = randn(rng, (2, c, 5, 6))
    conv1 = helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1])
    conv2 = helper.make_node("Conv", ["x", "w2"], ["c2"])
    if wiring == "two_convs_then_relu":   # the first conv's GEMM cannot read c2 (computed later)
        nodes = [conv1, conv2, helper.make_node("Add", ["c1", "c2"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    elif wiring == "conv_plus_earlier":
        nodes = [conv2, helper.make_node("Relu", ["c2"], ["r"]), helper.make_node("Conv", ["r", "w1"], ["c3"], pads=[1] * 4),
                 helper.make_node("Add", ["c3", "c2"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    elif wiring == "relu_before_add":      # relu(conv) + skip: the residual must not join after the relu
        nodes = [conv2, conv1, helper.make_node("Relu", ["c1"], ["r"]), helper.make_node("Add", ["r", "c2"], ["y"])]
    elif wiring == "conv_output_read_twice":
        nodes = [conv2, conv1, helper.make_node("Add", ["c1", "c2"], ["s"]),
                 helper.make_node("Mul", ["s", "c1"], ["y"])]
    else:
        flat = helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1])
        mm = helper.make_node("MatMul", ["t" if wiring == "matmul_bias_relu" else "f", "m"], ["mm"])
        pre = [flat] if wiring == "matmul_bias_relu" else [
            flat, helper.make_node("Reshape", ["t", "shape"], ["f"])]
        consts["shape"] = np.array([-1, c], np.int64)
        nodes = pre + [mm, helper.make_node("Add", ["bm", "mm"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, {"x": x}, consts, outputs=["y"], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
    assert all(p.where == "ggml" for p in sess.placement())


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(["pointwise", "conv3", "depthwise"]), st.sampled_from([3, 16, 20, 33]),
                                st.booleans(), st.booleans()), min_size=2, max_size=3),
       order=st.permutations(range(3)), extra_reader=st.booleans(), after=st.sampled_from(["Relu", "Conv", "none"]),
       n=st.integers(1, 2), seed=seeds)
def test_concat_of_convs_writes_in_place(parts, order, extra_reader, after, n, seed):
    """A channel Concat of convs (fire and inception modules): each conv writes its channels of
    the result (kernels.h: channel slices) where every part is a packed GEMM or implicit-GEMM
    conv read by nothing else; the Concat's order may differ from the convs' order, and what
    follows the Concat (an activation that must not fold into one slice, another conv) sees
    all channels. Checked against onnxruntime, with the fallbacks (a depthwise part, a part
    read twice)."""
    rng = np.random.default_rng(seed)
    c = 16
    x = randn(rng, (n, c, 9, 11))
    nodes, consts, names = [], {}, []
    for i, (kind, oc, bias, relu) in enumerate(parts):
        oc = c if kind == "depthwise" else oc
        k = 1 if kind == "pointwise" else 3
        consts[f"w{i}"] = randn(rng, (oc, 1 if kind == "depthwise" else c, k, k), 0.3)
        ins = ["x", f"w{i}"] + ([f"b{i}"] if bias else [])
        if bias:
            consts[f"b{i}"] = randn(rng, (oc,))
        nodes.append(helper.make_node("Conv", ins, [f"y{i}"], pads=[k // 2] * 4, group=c if kind == "depthwise" else 1))
        name = f"y{i}"
        if relu:
            nodes.append(helper.make_node("Relu", [name], [f"r{i}"]))
            name = f"r{i}"
        names.append(name)
    perm = [j for j in order if j < len(parts)]
    nodes.append(helper.make_node("Concat", [names[j] for j in perm], ["cat"], axis=1))
    outputs = ["out"]
    if after == "Relu":
        nodes.append(helper.make_node("Relu", ["cat"], ["out"]))
    elif after == "Conv":
        total = sum(c if kind == "depthwise" else oc for kind, oc, _, _ in parts)
        consts["wa"] = randn(rng, (8, total, 1, 1), 0.2)
        nodes.append(helper.make_node("Conv", ["cat", "wa"], ["out"]))
    else:
        outputs = ["cat"]
    if extra_reader:  # the first part also leaves the graph: its conv cannot write into the concat
        outputs.append(names[0])
    model = make_model(nodes, {"x": x}, consts, outputs=outputs, opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))


@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.sampled_from(["conv", "relu", "pool", "sigmoid", "input"]), min_size=2, max_size=7),
       n=st.integers(1, 2), seed=seeds)
def test_channels_last_concat_of_any_parts(picks, n, seed):
    """A channel Concat of channels-last values that are not conv outputs of their own (pools,
    activations, the same value twice, a plain-layout input): one pass per four parts
    (kernels_spatial.c), against onnxruntime."""
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, 5, 6, 7))
    consts = {"w": randn(rng, (12, 5, 3, 3), 0.3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("MaxPool", ["conv"], ["pool"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["conv"], ["sigmoid"]),
             helper.make_node("Concat", [("x" if p == "input" else p) for p in picks], ["y"], axis=1)]
    model = make_model(nodes, {"x": x}, consts, outputs=["y"], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", [1, 3, 4, 5, 16, 17, 33])
@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (4, 4), (1, 17), (4, 8), (3, 11), (10, 10)])
def test_layout_conversions_at_block_edges(c, hw):
    """NCHW -> NHWC before a conv and back after it (ggonnx_transpose2d): few channels unrolled,
    32x32 tiles, partial tiles."""
    rng = np.random.default_rng(c * 100 + hw[0] * hw[1])
    x = randn(rng, (2, c) + hw)
    w = randn(rng, (c, c, 1, 1), 0.5)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], {"x": x}, {"w": w}, outputs=["y"])
    want = np.einsum("nchw,oc->nohw", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(a=st.integers(1, 4), b=st.integers(1, 6), n=st.integers(1, 3), hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       perm=st.permutations(range(5)), reader=st.sampled_from(["Transpose", "Sigmoid", "output"]), seed=seeds)
def test_split_channels_then_transpose(a, b, n, hw, perm, reader, seed):
    """A detection head's Reshape of a conv output [N, A*B, H, W] into [N, A, B, H, W] keeps the
    channels-last memory; a Transpose of it (any perm; YOLO's [0, 1, 3, 4, 2] is one copy of
    contiguous rows) and any other reader (an op, a graph output: converted) match onnxruntime."""
    rng = np.random.default_rng(seed)
    h, w = hw
    x = randn(rng, (n, 3, h + 2, w + 2))
    consts = {"k": randn(rng, (a * b, 3, 3, 3), 0.3), "shape": np.array([-1, a, b, h, w], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["r"])]
    if reader == "Transpose":
        nodes.append(helper.make_node("Transpose", ["r"], ["y"], perm=list(perm)))
    elif reader == "Sigmoid":
        nodes += [helper.make_node("Sigmoid", ["r"], ["s"]), helper.make_node("Transpose", ["s"], ["y"], perm=list(perm))]
    else:
        nodes.append(helper.make_node("Identity", ["r"], ["y"]))
    model = make_model(nodes, {"x": x}, consts, outputs=["y"], opset=17)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    shape, stored = (n, a, b, h, w), (n, h, w, a, b)
    if reader == "output" or coalesce.transpose(shape, list(perm)) is not None or reader == "Transpose" and \
            coalesce.transpose(stored, [(0, 3, 4, 1, 2)[p] for p in perm]) is not None:
        assert all(p.where == "ggml" for p in sess.placement())  # else five groups of dims move: host
