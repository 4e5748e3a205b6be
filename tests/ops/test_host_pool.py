"""Pools on the host (ggonnx.host_pool) against onnxruntime. LpPool: 1-D to 3-D windows with strides,
pads, dilations, ceil_mode and auto_pad, p of 1 to 3, and a NaN inside some windows. Global pools of rank 3 to 5."""
from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

import ggonnx

from ._helpers import THREADS, make_model, randn, seeds


@st.composite
def lp_pool_cases(draw):
    dims = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(dims)]
    attrs = dict(kernel_shape=kernel, p=draw(st.integers(1, 3)),
                 strides=[draw(st.integers(1, 2)) for _ in range(dims)])
    if draw(st.booleans()):
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel + kernel]
        attrs["dilations"] = [draw(st.integers(1, 2)) for _ in range(dims)]
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + tuple(draw(st.integers(1, 6)) for _ in range(dims))
    return shape, attrs, draw(st.booleans())


def _assume_windows_fit(shape, attrs) -> None:
    """A window longer than the padded input: ONNX's floor gives no output, onnxruntime's C
    division one (read past the end). Such cases are not drawn."""
    dims = len(attrs["kernel_shape"])
    if attrs.get("auto_pad") in (None, "VALID"):
        pads, dil = attrs.get("pads", [0] * 2 * dims), attrs.get("dilations", [1] * dims)
        assume(all(shape[2 + i] + pads[i] + pads[dims + i] >= dil[i] * (k - 1) + 1
                   for i, k in enumerate(attrs["kernel_shape"])))


def _onnxruntime_or_skip(model: bytes, x):
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    try:
        return ort.InferenceSession(model, quiet, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    except Exception:   # windows onnxruntime refuses (an output of size 0)
        assume(False)


@settings(max_examples=60, deadline=None)
@given(lp_pool_cases(), seeds)
def test_lp_pool_matches_onnxruntime(case, seed):
    shape, attrs, with_nan = case
    _assume_windows_fit(shape, attrs)
    x = randn(np.random.default_rng(seed), shape)
    if with_nan:
        x.reshape(-1)[seed % x.size] = np.nan
    model = make_model([helper.make_node("LpPool", ["x"], ["y"], **attrs)], {"x": x}, {}, outputs=["y"],
                       opset=18).SerializeToString()
    want = _onnxruntime_or_skip(model, x)
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [p.where for p in sess.placement()] == ["host"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"]), st.integers(3, 5),
       st.integers(1, 3), seeds)
def test_global_pools_of_any_rank_match_onnxruntime(op, rank, p, seed):
    """Max and average pools of rank 3 and 4 run in ggml, the rest on the host; each reduces every
    axis after [N, C]."""
    rng = np.random.default_rng(seed)
    x = randn(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(rng.integers(1, 5, rank - 2)))
    attrs = {"p": p} if op == "GlobalLpPool" else {}
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x}, {}, outputs=["y"]).SerializeToString()
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})[0]
    assert got.shape == want.shape == x.shape[:2] + (1,) * (rank - 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@st.composite
def max_pool_cases(draw):
    shape, attrs, _ = draw(lp_pool_cases())
    del attrs["p"]
    return shape, attrs


@settings(max_examples=60, deadline=None)
@given(max_pool_cases(), seeds)
def test_max_pool_of_one_to_three_dims_matches_onnxruntime(case, seed):
    """1-D and 2-D windows run in ggml (ggml's pool or ours), 3-D ones on the host."""
    shape, attrs = case
    _assume_windows_fit(shape, attrs)
    x = randn(np.random.default_rng(seed), shape)
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], {"x": x}, {}, outputs=["y"],
                       opset=18).SerializeToString()
    want = _onnxruntime_or_skip(model, x)
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


_WINDOWS = [dict(kernel_shape=[3]), dict(kernel_shape=[2, 2]), dict(kernel_shape=[2, 2], pads=[1, 0, 0, 1]),
            dict(kernel_shape=[2, 2], dilations=[2, 1]), dict(kernel_shape=[2, 2, 2])]


@pytest.mark.parametrize("attrs,layout", [(a, "plain") for a in _WINDOWS] +
                         [(a, "after_conv") for a in _WINDOWS if len(a["kernel_shape"]) == 2])
def test_max_pool_window_with_nan_gives_nan_and_all_minus_inf_gives_lowest(attrs, layout):
    """Whatever the NaN's place in the window, in each of the three MaxPool kernels (ggml's,
    our channels-last one after a Conv, the host's); a NumPy reference of the same windows."""
    dims = len(attrs["kernel_shape"])
    rng = np.random.default_rng(dims)
    x = randn(rng, (1, 4) + (5,) * dims)
    if layout == "after_conv":  # NaN pixels in every channel: the 1x1 Conv's sums keep them where they are
        x.reshape(1, 4, -1)[:, :, rng.choice(25, 4, replace=False)] = np.nan
    else:
        x.reshape(-1)[rng.choice(x.size, x.size // 6, replace=False)] = np.nan
        x[0, 3] = -np.inf
    nodes = [helper.make_node("MaxPool", ["c" if layout == "after_conv" else "x"], ["y"], **attrs)]
    inits = {}
    if layout == "after_conv":  # an identity 1x1 Conv: the pool reads channels-last data
        inits["w"] = np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1)
        nodes.insert(0, helper.make_node("Conv", ["x", "w"], ["c"]))
    model = make_model(nodes, {"x": x}, inits, outputs=["y"], opset=18).SerializeToString()
    got = ggonnx.Session(model, threads=THREADS).run(None, {"x": x})[0]
    kernel, dil = attrs["kernel_shape"], attrs.get("dilations", [1] * dims)
    pads = attrs.get("pads", [0] * 2 * dims)
    lowest = np.finfo(np.float32).min   # where every window starts; what padding holds
    padded = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[dims + i]) for i in range(dims)], constant_values=lowest)
    want = np.full(got.shape, lowest, np.float32)
    for taps in itertools.product(*[range(k) for k in kernel]):
        window = (slice(None), slice(None)) + tuple(slice(t * dil[i], t * dil[i] + got.shape[2 + i]) for i, t in enumerate(taps))
        want = np.maximum(want, padded[window])
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).any() and (layout == "after_conv" or (got[0, 3] == lowest).all())
