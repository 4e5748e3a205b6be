"""Elementwise, Transpose, Concat, Split and Slice on rank-5 and rank-6 values: ggml has four
dims, so the lowerings regroup adjacent dims (ops.coalesce). Results must match numpy whether
a case fits four groups (ggml) or not (host); the YOLO-decode shapes must run in ggml."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from ._helpers import assert_close, randn, run_graph_placed, run_op_placed, seeds

high_rank_shapes = st.integers(5, 6).flatmap(lambda r: st.tuples(*[st.integers(1, 4)] * r))


@settings(max_examples=60, deadline=None)
@given(high_rank_shapes, st.data(), st.sampled_from(["Add", "Sub", "Mul", "Div"]), seeds)
def test_binary_broadcast(shape, data, op, seed):
    rng = np.random.default_rng(seed)
    b_shape = tuple(d if data.draw(st.booleans()) else 1 for d in shape)
    b_shape = b_shape[data.draw(st.integers(0, len(shape) - 1)):]  # numpy drops leading dims too
    a, b = randn(rng, shape), randn(rng, b_shape)
    if op == "Div":
        b = np.where(np.abs(b) < 0.5, 1.0, b).astype(np.float32)
    (got,), _ = run_op_placed(op, [a, b], const=(1,) if data.draw(st.booleans()) else ())
    want = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](
        a.astype(np.float64), b.astype(np.float64))
    assert_close(got, want)


@settings(max_examples=60, deadline=None)
@given(high_rank_shapes, st.data(), seeds)
def test_transpose(shape, data, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    x = randn(np.random.default_rng(seed), shape)
    (got,), _ = run_op_placed("Transpose", [x], perm=list(perm))
    assert_close(got, x.transpose(perm), rtol=0, atol=0)


@settings(max_examples=60, deadline=None)
@given(high_rank_shapes, st.data(), seeds)
def test_concat_split_slice(shape, data, seed):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(0, len(shape) - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    a, b = randn(rng, shape), randn(rng, tuple(other))
    (cat,), _ = run_op_placed("Concat", [a, b], axis=axis - len(shape))
    assert_close(cat, np.concatenate([a, b], axis=axis), rtol=0, atol=0)
    if shape[axis] >= 2:
        first = data.draw(st.integers(1, shape[axis] - 1))
        outs, _ = run_op_placed("Split", [a, np.array([first, shape[axis] - first], np.int64)], const=(1,),
                                n_outputs=2, axis=axis)
        want = np.split(a, [first], axis=axis)
        for got, w in zip(outs, want):
            assert_close(got, w, rtol=0, atol=0)
    start = data.draw(st.integers(0, shape[axis] - 1))
    end = data.draw(st.integers(start + 1, shape[axis]))
    (got,), _ = run_op_placed("Slice", [a, np.array([start]), np.array([end]), np.array([axis])], const=(1, 2, 3))
    assert_close(got, np.take(a, np.arange(start, end), axis=axis), rtol=0, atol=0)


def test_yolo_decode_runs_in_ggml():
    """[N, 255, H, W] -> [N, 3, 85, H, W] -> [N, 3, H, W, 85], sigmoid, split, (xy*2 + grid) and
    (wh*2)^2 * anchors, concat: every node in ggml, at batch 1 and 2."""
    for n in (1, 2):
        rng = np.random.default_rng(n)
        h, w = 4, 6
        x = randn(rng, (n, 255, h, w))
        grid = randn(rng, (1, 3, h, w, 2))
        anchors = np.abs(randn(rng, (1, 3, 1, 1, 2)))
        nodes = [
            helper.make_node("Reshape", ["x", "shape"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 3, 4, 2]),
            helper.make_node("Sigmoid", ["t"], ["s"]),
            helper.make_node("Split", ["s", "sizes"], ["xy", "wh", "conf"], axis=4),
            helper.make_node("Mul", ["xy", "two"], ["xy2"]),
            helper.make_node("Add", ["xy2", "grid"], ["xyg"]),
            helper.make_node("Mul", ["wh", "two"], ["wh2"]),
            helper.make_node("Pow", ["wh2", "two"], ["whp"]),
            helper.make_node("Mul", ["whp", "anchors"], ["wha"]),
            helper.make_node("Concat", ["xyg", "wha", "conf"], ["y"], axis=4),
        ]
        consts = {"shape": np.array([n, 3, 85, h, w], np.int64), "sizes": np.array([2, 2, 81], np.int64),
                  "two": np.array(2.0, np.float32), "grid": grid, "anchors": anchors}
        (got,), where = run_graph_placed(nodes, {"x": x}, consts)
        s = 1 / (1 + np.exp(-x.astype(np.float64).reshape(n, 3, 85, h, w).transpose(0, 1, 3, 4, 2)))
        want = np.concatenate([s[..., :2] * 2 + grid, (s[..., 2:4] * 2) ** 2 * anchors, s[..., 4:]], axis=-1)
        assert_close(got, want)
        assert all(w_ == "ggml" for w_ in where), where
