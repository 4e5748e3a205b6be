"""MaxPool and AveragePool (1-D and 2-D, explicit and automatic pads, ceil_mode), GlobalAveragePool."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import ggonnx

from ._helpers import (PAD_MODES, assert_close, given_attrs, randn, resolve_pads, run_op, run_op_placed, seeds,
                       set_pad_attrs, shapes)


def pool_out_size(size, k, s, pb, pe, d, ceil_mode):
    span = size + pb + pe - ((k - 1) * d + 1)
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    # ONNX: a window that would start in the end padding is dropped
    if ceil_mode and (out - 1) * s >= size + pb:
        out -= 1
    return out


def _pool_geometry(sizes, kernel, strides, begin, end, dilations, ceil_mode):
    """Output sizes, and the end padding every window needs (ceil_mode may read past the declared end pad)."""
    out = [pool_out_size(*a, ceil_mode) for a in zip(sizes, kernel, strides, begin, end, dilations)]
    need = [max(e, (o - 1) * s + (k - 1) * d + 1 - sz - b)
            for o, s, k, d, sz, b, e in zip(out, strides, kernel, dilations, sizes, begin, end)]
    return out, need


def _window_taps(xp, kernel, strides, dilations, out):
    """For each kernel tap, the padded input's values under that tap at every output position."""
    for tap in np.ndindex(*kernel):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilations, out, strides))
        yield xp[(..., *window)]


def maxpool_reference(x, kernel, strides, begin, end, dilations, ceil_mode):
    out, need = _pool_geometry(x.shape[2:], kernel, strides, begin, end, dilations, ceil_mode)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(zip(begin, need)), constant_values=-np.inf)
    y = np.full(x.shape[:2] + tuple(out), -np.inf)
    for values in _window_taps(xp, kernel, strides, dilations, out):
        y = np.maximum(y, values)
    return y


def avgpool_reference(x, kernel, strides, begin, end, ceil_mode, count_include_pad):
    sizes = x.shape[2:]
    ones = [1] * len(kernel)
    out, need = _pool_geometry(sizes, kernel, strides, begin, end, ones, ceil_mode)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(zip(begin, need)))
    total = sum(_window_taps(xp, kernel, strides, ones, out))
    # The divisor counts the input positions, plus the pads with count_include_pad; never
    # what ceil_mode reads beyond the end pad (onnxruntime's rule).
    if count_include_pad:
        counted = np.pad(np.ones([b + sz + e for b, sz, e in zip(begin, sizes, end)]),
                         [(0, n - e) for n, e in zip(need, end)])
    else:
        counted = np.pad(np.ones(sizes), list(zip(begin, need)))
    return total / sum(_window_taps(counted, kernel, strides, ones, out))


@st.composite
def maxpool_cases(draw, max_dilation: int = 1):
    sp = draw(st.sampled_from([1, 2]))
    kernel = [draw(st.integers(1, 3)) for _ in range(sp)]
    dilations = [draw(st.integers(1, max_dilation)) for _ in range(sp)]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    mode = draw(st.sampled_from(PAD_MODES))
    # With SAME and a stride above the window span, the spec's pad formula goes negative;
    # runtimes disagree on what that means (onnxruntime rejects it), so those cases are left out.
    max_stride = spans if mode.startswith("SAME") else [3] * sp
    strides = [draw(st.integers(1, m)) for m in max_stride]
    # ONNX requires each pad to be smaller than the kernel
    if mode == "symmetric":
        half = [draw(st.integers(0, k - 1)) for k in kernel]
        pads = half + half
    elif mode == "asymmetric":
        pads = [draw(st.integers(0, k - 1)) for k in kernel * 2]
    else:
        pads = None
    # the spec's ceil_mode output sizes for auto_pad disagree with its own pads formula: explicit pads only
    ceil_mode = draw(st.integers(0, 1)) if mode in ("none", "symmetric", "asymmetric") else 0
    pb, pe = (pads[:sp], pads[sp:]) if pads else ([0] * sp, [0] * sp)
    sizes = [max(draw(st.integers(1, 8)), span - b - e) for span, b, e in zip(spans, pb, pe)]
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)), sizes=sizes, kernel=kernel,
                strides=strides, dilations=dilations, mode=mode, pads=pads, ceil_mode=ceil_mode,
                explicit_attrs=draw(st.booleans()))


def _pool_attrs(case):
    """kernel/strides/pads/ceil_mode attributes; optional ones spelled out when ``explicit_attrs``."""
    attrs = {"kernel_shape": case["kernel"]}
    if case["explicit_attrs"] or any(s != 1 for s in case["strides"]):
        attrs["strides"] = case["strides"]
    if case["explicit_attrs"] or case["ceil_mode"]:
        attrs["ceil_mode"] = case["ceil_mode"]
    return set_pad_attrs(attrs, case)


def _run_maxpool(case, x):
    attrs = _pool_attrs(case)
    if case["explicit_attrs"] or any(d != 1 for d in case["dilations"]):
        attrs["dilations"] = case["dilations"]
    (got,) = run_op("MaxPool", [x], **attrs)
    return got


def _case_pads(case):
    return resolve_pads(case["mode"], case["pads"], case["sizes"], case["kernel"], case["strides"],
                        case["dilations"])


def _maxpool_expected(case, x):
    begin, end = _case_pads(case)
    return maxpool_reference(x, case["kernel"], case["strides"], begin, end, case["dilations"], case["ceil_mode"])


@settings(max_examples=150, deadline=None)
@given(case=maxpool_cases(), seed=seeds)
def test_maxpool(case, seed):
    x = randn(np.random.default_rng(seed), (case["n"], case["c"], *case["sizes"]))
    # a max picks one input value: exact
    assert_close(_run_maxpool(case, x), _maxpool_expected(case, x), rtol=0, atol=0)


@settings(max_examples=30, deadline=None)
@given(case=maxpool_cases(max_dilation=2).filter(
    # SAME with dilations is left out: onnxruntime and onnx's reference disagree with the spec's formula
    lambda c: max(c["dilations"]) > 1 and not c["mode"].startswith("SAME")), seed=seeds)
def test_maxpool_dilated(case, seed):
    x = randn(np.random.default_rng(seed), (case["n"], case["c"], *case["sizes"]))
    want = _maxpool_expected(case, x)
    # a dilated window can fall entirely into the padding: its max is undefined
    assume(np.isfinite(want).all())
    # ggml's pooling has no dilation: a clean UnsupportedOpError is acceptable, a wrong answer is not
    try:
        got = _run_maxpool(case, x)
    except ggonnx.UnsupportedOpError:
        return
    assert_close(got, want, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(shape=shapes(3, 4, max_side=6), seed=seeds)
def test_global_average_pool(shape, seed):
    x = randn(np.random.default_rng(seed), shape)
    (got,) = run_op("GlobalAveragePool", [x])
    want = x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    assert_close(got, want)


@settings(max_examples=100, deadline=None)
@given(case=maxpool_cases(), count_include_pad=st.none() | st.integers(0, 1), seed=seeds)
def test_average_pool(case, count_include_pad, seed):
    x = randn(np.random.default_rng(seed), (case["n"], case["c"], *case["sizes"]))
    (got,), where = run_op_placed("AveragePool", [x], **_pool_attrs(case),
                                  **given_attrs(count_include_pad=count_include_pad))
    begin, end = _case_pads(case)
    assert_close(got, avgpool_reference(x, case["kernel"], case["strides"], begin, end, case["ceil_mode"],
                                        bool(count_include_pad)))
    assert where == "ggml"
