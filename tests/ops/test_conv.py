"""Conv, 1-D and 2-D: strides, explicit and automatic pads, dilations, groups, bias, batches."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import ggonnx
from ggonnx.ops import matmul

from ._helpers import (PAD_MODES, assert_close, make_model, op_node, randn, resolve_pads, run_graph_shapes, run_op,
                       seeds, set_pad_attrs, sum_atol)


def conv_reference(x, w, b, strides, begin, end, dilations, group):
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, oc, cg, kernel = x.shape[0], w.shape[0], w.shape[1], w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    out = [(xp.shape[2 + i] - (k - 1) * d - 1) // s + 1
           for i, (k, s, d) in enumerate(zip(kernel, strides, dilations))]
    y = np.zeros((n, oc, *out))
    ocg = oc // group
    # one strided slice of the padded input per kernel tap, contracted over channels
    for g in range(group):
        xg, wg = xp[:, g * cg:(g + 1) * cg], w[g * ocg:(g + 1) * ocg]
        for tap in np.ndindex(*kernel):
            window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                           for t, d, o, s in zip(tap, dilations, out, strides))
            y[:, g * ocg:(g + 1) * ocg] += np.einsum("nc...,oc->no...", xg[(..., *window)],
                                                     wg[(slice(None), slice(None), *tap)])
    if b is not None:
        y += b.astype(np.float64).reshape((1, oc) + (1,) * len(kernel))
    return y


@st.composite
def conv_cases(draw):
    sp = draw(st.sampled_from([1, 2]))
    kind = draw(st.sampled_from(["dense", "depthwise", "grouped"]))
    if kind == "dense":
        group, c, oc = 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    elif kind == "depthwise":
        c = draw(st.integers(1, 4))
        group, oc = c, c
    else:
        group = draw(st.integers(2, 3))
        c, oc = group * draw(st.integers(1, 2)), group * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(sp)]
    strides = [draw(st.integers(1, 3)) for _ in range(sp)]
    dilations = [draw(st.integers(1, 2)) for _ in range(sp)]
    mode = draw(st.sampled_from(PAD_MODES))
    if mode == "symmetric":
        half = [draw(st.integers(0, 2)) for _ in range(sp)]
        pads = half + half
    elif mode == "asymmetric":
        pads = [draw(st.integers(0, 2)) for _ in range(2 * sp)]
    else:
        pads = None
    sizes = [draw(st.integers(1, 7)) for _ in range(sp)]
    # grow the input until every output dim is at least 1
    pb, pe = (pads[:sp], pads[sp:]) if pads else ([0] * sp, [0] * sp)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        sizes = [max(sz, (k - 1) * d + 1 - b - e) for sz, k, d, b, e in zip(sizes, kernel, dilations, pb, pe)]
    return dict(
        n=draw(st.integers(1, 3)), c=c, oc=oc, group=group, sizes=sizes, kernel=kernel, strides=strides,
        dilations=dilations, mode=mode, pads=pads,
        bias=draw(st.sampled_from([None, "const", "input"])),
        weight_const=draw(st.booleans()),
        explicit_attrs=draw(st.booleans()),   # spell out defaults: kernel_shape, strides=1, ...
    )


def _conv_attrs(case):
    attrs = {}
    if case["explicit_attrs"] or case["group"] != 1:
        attrs["group"] = case["group"]
    if case["explicit_attrs"] or any(s != 1 for s in case["strides"]):
        attrs["strides"] = case["strides"]
    if case["explicit_attrs"] or any(d != 1 for d in case["dilations"]):
        attrs["dilations"] = case["dilations"]
    if case["explicit_attrs"]:
        attrs["kernel_shape"] = case["kernel"]
    return set_pad_attrs(attrs, case)


def _conv_weights(case, rng):
    w = randn(rng, (case["oc"], case["c"] // case["group"], *case["kernel"]))
    b = None if case["bias"] is None else randn(rng, (case["oc"],))
    return w, b


def _conv_expected(case, x, w, b):
    begin, end = resolve_pads(case["mode"], case["pads"], x.shape[2:], case["kernel"], case["strides"],
                              case["dilations"])
    return conv_reference(x, w, b, case["strides"], begin, end, case["dilations"], case["group"])


def _conv_atol(case):
    return sum_atol((case["c"] // case["group"]) * int(np.prod(case["kernel"])))


@settings(max_examples=150, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv(case, seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, (case["n"], case["c"], *case["sizes"]))
    w, b = _conv_weights(case, rng)
    const = ((1,) if case["weight_const"] else ()) + ((2,) if case["bias"] == "const" else ())
    (got,) = run_op("Conv", [x, w] + ([] if b is None else [b]), const=const, **_conv_attrs(case))
    assert_close(got, _conv_expected(case, x, w, b), atol=_conv_atol(case))


@settings(max_examples=25, deadline=None)
@given(case=conv_cases(),
       grow=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=2),
       seed=seeds)
def test_conv_one_session_many_shapes(case, grow, seed):
    # constant weights, while the batch and spatial sizes change between runs
    rng = np.random.default_rng(seed)
    w, b = _conv_weights(case, rng)
    sp = len(case["sizes"])
    x_shapes = [(case["n"], case["c"], *case["sizes"])]
    for n, dh, dw in grow:
        x_shapes.append((n, case["c"], *[s + d for s, d in zip(case["sizes"], (dh, dw)[2 - sp:])]))
    x_shapes.append(x_shapes[0])   # a signature seen before: its cached plan runs again
    node, _, consts = op_node("Conv", [None, w] + ([] if b is None else [b]), const=(1, 2), **_conv_attrs(case))
    node.input[0] = "x"
    feeds = [{"x": randn(rng, s)} for s in x_shapes]
    for f, (got,) in zip(feeds, run_graph_shapes([node], feeds, consts)):
        assert_close(got, _conv_expected(case, f["x"], w, b), atol=_conv_atol(case))


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 2), oc=st.sampled_from([8, 16]), depthwise=st.booleans(), size=st.integers(32, 40),
       mode=st.sampled_from(PAD_MODES), seed=seeds)
def test_conv_multithreaded_size(n, oc, depthwise, size, mode, seed):
    # enough work (> 200k flops) that the plan runs on both threads, unlike the tiny cases above
    rng = np.random.default_rng(seed)
    c, group, oc = (16, 16, 16) if depthwise else (8, 1, oc)
    x = randn(rng, (n, c, size, size + 3))
    w = randn(rng, (oc, c // group, 3, 3))
    b = randn(rng, (oc,))
    pads = [1, 0, 2, 1] if mode == "asymmetric" else [1, 1, 1, 1] if mode == "symmetric" else None
    attrs = {"group": group}
    if pads:
        attrs["pads"] = pads
    elif mode != "none":
        attrs["auto_pad"] = mode
    (got,) = run_op("Conv", [x, w, b], const=(1, 2), **attrs)
    begin, end = resolve_pads(mode, pads, x.shape[2:], [3, 3], [1, 1], [1, 1])
    want = conv_reference(x, w, b, [1, 1], begin, end, [1, 1], group)
    assert_close(got, want, atol=sum_atol((c // group) * 9))



def test_conv_with_an_output_past_the_caches():
    # 9.8 MB out: AVX2 and AVX-512 builds store such outputs non-temporally (tests set GGONNX_STREAM_MIN_MB=8);
    # 99 outputs end in a partial panel, which takes the ordinary stores
    rng = np.random.default_rng(5)
    x, w, b = randn(rng, (1, 16, 160, 160)), randn(rng, (99, 16, 1, 1)), randn(rng, (99,))
    (got,) = run_op("Conv", [x, w, b], const=(1, 2))
    want = conv_reference(x, w, b, [1, 1], [0, 0], [0, 0], [1, 1], 1)
    assert_close(got, want, atol=sum_atol(16))


def test_depthwise_conv_with_an_output_past_the_caches():
    # 8.4 MB out: AVX-512 builds stream each pixel's full 16-channel blocks (one line each); 40
    # channels end in a partial block, which takes the ordinary stores
    rng = np.random.default_rng(6)
    for c, hw in ((32, 256), (40, 232)):
        x, w, b = randn(rng, (1, c, hw, hw)), randn(rng, (c, 1, 3, 3)), randn(rng, (c,))
        (got,) = run_op("Conv", [x, w, b], const=(1, 2), group=c, pads=[1, 1, 1, 1])
        want = conv_reference(x, w, b, [1, 1], [1, 1], [1, 1], [1, 1], c)
        assert_close(got, want, atol=sum_atol(9))


@settings(max_examples=60, deadline=None)
@given(c=st.sampled_from([16, 24, 32, 40, 12, 20, 3]), k=st.sampled_from([(3, 3), (5, 5), (3, 5), (7, 7), (1, 1)]),
       s=st.integers(1, 2), d=st.integers(1, 2), pads=st.lists(st.integers(0, 3), min_size=4, max_size=4),
       h=st.integers(1, 12), w=st.integers(1, 19), n=st.integers(1, 2), clip=st.booleans(), seed=seeds)
def test_depthwise_kernel_paths(c, k, s, d, pads, h, w, n, clip, seed):
    # channel counts with full 16-lane (AVX2: 8-lane) blocks and tails; the unrolled 3x3 and 5x5 kernels and the
    # generic one; widths with no interior pixel, fewer than 4, or several groups of 4; Clip fused
    rng = np.random.default_rng(seed)
    pads = [min(p, (kk - 1) * d) for p, kk in zip(pads, k + k)]
    h = max(h, (k[0] - 1) * d + 1 - pads[0] - pads[2])
    w = max(w, (k[1] - 1) * d + 1 - pads[1] - pads[3])
    x = randn(rng, (n, c, h, w))
    wt, b = randn(rng, (c, 1, *k)), randn(rng, (c,))
    node, _, consts = op_node("Conv", [None, wt, b], const=(1, 2), group=c, strides=[s, s], dilations=[d, d],
                              pads=pads)
    node.input[0] = "x"
    want = conv_reference(x, wt, b, [s, s], pads[:2], pads[2:], [d, d], c)
    nodes = [node]
    if clip:
        consts.update(lo=np.float32(0.0), hi=np.float32(6.0))
        nodes.append(helper.make_node("Clip", ["out0", "lo", "hi"], ["clipped"]))
        want = np.clip(want, 0.0, 6.0)
    (got,) = run_graph_shapes(nodes, [{"x": x}], consts)[0]
    assert_close(got, want, atol=sum_atol(k[0] * k[1]))


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 7), k=st.tuples(st.integers(1, 7), st.integers(2, 7)), s=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       pads=st.lists(st.integers(0, 6), min_size=4, max_size=4), hw=st.tuples(st.integers(1, 20), st.integers(1, 20)),
       oc=st.sampled_from([5, 16, 24]), n=st.integers(1, 2), seed=seeds)
def test_stem_conv_pixel_runs(c, k, s, pads, hw, oc, n, seed):
    # convs over fewer than 8 channels read each row of taps as one run of kw * c floats of an
    # input padded in width (ops/conv.py RUNS_BELOW_C): every width/pad/stride against NumPy
    rng = np.random.default_rng(seed)
    pads = [min(p, kk - 1) for p, kk in zip(pads, k + k)]
    hw = tuple(max(size, kk - b - e) for size, kk, b, e in zip(hw, k, pads[:2], pads[2:]))
    x, w, b = randn(rng, (n, c, *hw)), randn(rng, (oc, c, *k)), randn(rng, (oc,))
    (got,) = run_op("Conv", [x, w, b], const=(1, 2), strides=list(s), pads=pads)
    want = conv_reference(x, w, b, list(s), pads[:2], pads[2:], [1, 1], 1)
    assert_close(got, want, atol=sum_atol(c * k[0] * k[1]))


def test_few_channel_conv_taller_than_the_tap_limit():
    # 66 rows of taps: beyond the implicit GEMM's 64, so not the pixel-runs path either (it made
    # this a ShapeError); the patches are gathered instead
    rng = np.random.default_rng(3)
    x, w = randn(rng, (1, 3, 70, 5)), randn(rng, (4, 3, 66, 2))
    (got,) = run_op("Conv", [x, w], const=(1,))
    want = conv_reference(x, w, None, [1, 1], [0, 0], [0, 0], [1, 1], 1)
    assert_close(got, want, atol=sum_atol(3 * 66 * 2))


@settings(max_examples=20, deadline=None)
@given(d=st.sampled_from([1, 3, 6, 12, 24]), size=st.integers(5, 16), oc=st.sampled_from([24, 40]),
       n=st.integers(1, 2), s=st.integers(1, 2), seed=seeds)
def test_dilated_conv_taps_in_padding(d, size, oc, n, s, seed):
    # ASPP-style dilations as large as the map: whole tiles of pixels read only padding for most
    # taps, which the implicit GEMM skips (kernels.c); the rest must still add up
    rng = np.random.default_rng(seed)
    c = 32
    x = randn(rng, (n, c, size, size + 1))
    w, b = randn(rng, (oc, c, 3, 3)), randn(rng, (oc,))
    (got,) = run_op("Conv", [x, w, b], const=(1, 2), dilations=[d, d], pads=[d] * 4, strides=[s, s])
    want = conv_reference(x, w, b, [s, s], [d, d], [d, d], [d, d], 1)
    assert_close(got, want, atol=sum_atol(c * 9))


def test_deep_wide_pointwise_conv_on_blas(monkeypatch):
    # 1x1 convs of >= 512 channels over >= 1024 pixels are GEMMs for OpenBLAS where its AVX-512
    # kernels run (forced on here: this machine's test environment pins OpenBLAS to older ones);
    # the bias and the Relu follow as their own passes
    monkeypatch.setattr(matmul, "_blas_competitive", True)
    rng = np.random.default_rng(3)
    x, w, b = randn(rng, (1, 512, 32, 33)), randn(rng, (520, 512, 1, 1), 0.05), randn(rng, (520,))
    node, _, consts = op_node("Conv", [None, w, b], const=(1, 2))
    node.input[0] = "x"
    nodes = [node, helper.make_node("Relu", ["out0"], ["y"])]
    sess = ggonnx.Session(make_model(nodes, {"x": x}, consts), threads=2)
    got = sess.run(None, {"x": x})[0]
    want = np.maximum(conv_reference(x, w, b, [1, 1], [0, 0], [0, 0], [1, 1], 1), 0)
    assert_close(got, want, atol=sum_atol(512))
    assert "matmul on BLAS" in sess.placement()[0].detail
