"""LpPool on the host (ggonnx.host_pool) against onnxruntime: 1-D to 3-D windows with strides,
pads, dilations, ceil_mode and auto_pad, p of 1 to 3, and a NaN inside some windows."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
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


@settings(max_examples=60, deadline=None)
@given(lp_pool_cases(), seeds)
def test_lp_pool_matches_onnxruntime(case, seed):
    shape, attrs, with_nan = case
    dims = len(attrs["kernel_shape"])
    if attrs.get("auto_pad") in (None, "VALID"):
        # a window longer than the padded input: ONNX's floor gives no output, onnxruntime's C
        # division one (read past the end)
        pads, dil = attrs.get("pads", [0] * 2 * dims), attrs.get("dilations", [1] * dims)
        assume(all(shape[2 + i] + pads[i] + pads[dims + i] >= dil[i] * (k - 1) + 1
                   for i, k in enumerate(attrs["kernel_shape"])))
    x = randn(np.random.default_rng(seed), shape)
    if with_nan:
        x.reshape(-1)[seed % x.size] = np.nan
    model = make_model([helper.make_node("LpPool", ["x"], ["y"], **attrs)], {"x": x}, {}, outputs=["y"],
                       opset=18).SerializeToString()
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    try:
        want = ort.InferenceSession(model, quiet, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    except Exception:   # windows onnxruntime refuses (an output of size 0)
        assume(False)
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [p.where for p in sess.placement()] == ["host"]
