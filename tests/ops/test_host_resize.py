"""Resize on the host (scales or sizes fed at run time, resized batch or channel axes, ranks
other than 3 and 4) against onnxruntime: nearest copies values, so Inf and NaN stay where they
are (onnx.reference's blend with 0/1 weights spread them as NaN)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

import ggonnx

from ._helpers import THREADS, make_model, randn, seeds

TRANSFORMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
FACTORS = [0.5, 1.0, 1.5, 2.0, 3.0]


def _run_both(nodes, feeds):
    model = make_model(nodes, feeds, {}, outputs=["y"], opset=19).SerializeToString()
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    want = ort.InferenceSession(model, quiet, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    sess = ggonnx.Session(model, threads=THREADS)
    return sess.run(None, feeds)[0], want, sess


@st.composite
def host_resize_cases(draw):
    mode = draw(st.sampled_from(["nearest", "linear", "cubic"]))
    if mode == "nearest":   # any rank, any axes
        rank = draw(st.integers(1, 5))
        resized = [draw(st.booleans()) for _ in range(rank)]
    else:                   # onnxruntime blends the two innermost axes of a 4-D input only
        rank = 4
        resized = [False, False, True, True]
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    factors = [draw(st.sampled_from(FACTORS)) if r else 1.0 for r in resized]
    transform = draw(st.sampled_from(TRANSFORMS))
    if transform == "half_pixel_symmetric" and mode == "nearest":
        # onnxruntime rounds this transform's coordinate 2.0 down for a float32 0.6 scale
        factors = [f if f.is_integer() else 2.0 for f in factors]
    return dict(mode=mode, shape=shape, factors=factors, transform=transform, by_sizes=draw(st.booleans()),
                nearest_mode=draw(st.sampled_from(NEAREST)), specials=mode == "nearest" and draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(host_resize_cases(), seeds)
def test_resize_with_fed_scales_matches_onnxruntime(case, seed):
    rng = np.random.default_rng(seed)
    shape = case["shape"]
    out = [int(np.float32(f) * d) for f, d in zip(case["factors"], shape)]
    assume(min(out) >= 1)
    x = randn(rng, shape)
    if case["specials"]:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, size=2)] = [np.inf, np.nan]
    feeds = {"x": x}
    if case["by_sizes"]:
        feeds["sizes"] = np.array(out, np.int64)
        inputs = ["x", "", "", "sizes"]
    else:
        feeds["scales"] = np.array(case["factors"], np.float32)
        inputs = ["x", "", "scales"]
    attrs = dict(mode=case["mode"], coordinate_transformation_mode=case["transform"])
    if case["mode"] == "nearest":
        attrs["nearest_mode"] = case["nearest_mode"]
    got, want, sess = _run_both([helper.make_node("Resize", inputs, ["y"], **attrs)], feeds)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert [p.where for p in sess.placement()] == ["host"]


def test_nearest_resize_of_a_million_channels_matches():
    # onnx.reference took ~10 s for this (a fuzzer case past its time limit)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    sizes = np.array([1, 1_000_000, 8, 8], np.int64)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode="half_pixel", nearest_mode="ceil")
    got, want, _ = _run_both([node], {"x": x, "sizes": sizes})
    np.testing.assert_array_equal(got, want)
