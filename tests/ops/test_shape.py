"""Layout ops: Reshape, Flatten, Transpose, Concat, Identity, Constant."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from ._helpers import assert_close, randn, run_graph, run_op, seeds, shapes


def _prime_factors(n: int) -> list:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@st.composite
def reshape_cases(draw):
    """An input shape, a Reshape target using 0 (copy) and -1 (infer), and the shape it means."""
    in_shape = draw(shapes(0, 4, max_side=4))
    rank = draw(st.integers(1, 4))
    out = [1] * rank
    for p in _prime_factors(int(np.prod(in_shape))):
        out[draw(st.integers(0, rank - 1))] *= p
    target = list(out)
    for i in range(min(rank, len(in_shape))):
        if target[i] == in_shape[i] and draw(st.booleans()):
            target[i] = 0
    infer = draw(st.none() | st.integers(0, rank - 1))
    if infer is not None and target[infer] != 0:
        target[infer] = -1
    return in_shape, target, tuple(out)


@settings(max_examples=50, deadline=None)
@given(case=reshape_cases(), seed=seeds)
def test_reshape(case, seed):
    in_shape, target, want_shape = case
    x = randn(np.random.default_rng(seed), in_shape)
    (got,) = run_op("Reshape", [x, np.array(target, dtype=np.int64)], const=(1,))
    assert_close(got, x.reshape(want_shape), rtol=0, atol=0)


@st.composite
def flatten_cases(draw):
    shape = draw(shapes(0, 4, max_side=4))
    axis = st.integers(-len(shape), len(shape))
    # the default axis is 1, out of range for a scalar
    return shape, draw(st.none() | axis if shape else axis)


@settings(max_examples=40, deadline=None)
@given(case=flatten_cases(), seed=seeds)
def test_flatten(case, seed):
    shape, axis = case
    x = randn(np.random.default_rng(seed), shape)
    attrs = {} if axis is None else {"axis": axis}
    (got,) = run_op("Flatten", [x], **attrs)
    k = 1 if axis is None else axis + len(shape) if axis < 0 else axis
    want = x.reshape(int(np.prod(shape[:k])), int(np.prod(shape[k:])))
    assert_close(got, want, rtol=0, atol=0)


@st.composite
def transpose_cases(draw):
    shape = draw(shapes(1, 4, max_side=4))
    perm = draw(st.none() | st.permutations(range(len(shape))))
    return shape, perm


@settings(max_examples=50, deadline=None)
@given(case=transpose_cases(), seed=seeds)
def test_transpose(case, seed):
    shape, perm = case
    x = randn(np.random.default_rng(seed), shape)
    attrs = {} if perm is None else {"perm": list(perm)}
    (got,) = run_op("Transpose", [x], **attrs)
    # no perm means reversing the dims, as numpy's default
    assert_close(got, np.transpose(x, perm), rtol=0, atol=0)


@st.composite
def concat_cases(draw, min_piece: int = 1):
    rank = draw(st.integers(1, 4))
    base = list(draw(shapes(rank, rank, max_side=3)))
    axis = draw(st.integers(-rank, rank - 1))
    n = draw(st.integers(2, 4))
    pieces = []
    for _ in range(n):
        s = list(base)
        s[axis] = draw(st.integers(min_piece, 3))
        pieces.append(tuple(s))
    const = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    return pieces, axis, tuple(const)


def _check_concat(case, seed):
    pieces, axis, const = case
    rng = np.random.default_rng(seed)
    xs = [randn(rng, s) for s in pieces]
    (got,) = run_op("Concat", xs, const=const, axis=axis)
    assert_close(got, np.concatenate(xs, axis=axis), rtol=0, atol=0)


@settings(max_examples=50, deadline=None)
@given(case=concat_cases(), seed=seeds)
def test_concat(case, seed):
    _check_concat(case, seed)


@settings(max_examples=25, deadline=None)
@given(case=concat_cases(min_piece=0).filter(
    lambda c: any(s[c[1]] == 0 for s in c[0]) and any(s[c[1]] > 0 for s in c[0])), seed=seeds)
def test_concat_with_empty_piece(case, seed):
    # a piece with nothing along the axis, either an initializer or a graph input
    _check_concat(case, seed)


@settings(max_examples=20, deadline=None)
@given(shape=shapes(0, 4), seed=seeds)
def test_identity_of_graph_input(shape, seed):
    x = randn(np.random.default_rng(seed), shape)
    (got,) = run_op("Identity", [x])
    assert_close(got, x, rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(shape=shapes(0, 4), seed=seeds)
def test_identity_inside_graph(shape, seed):
    # Identity of an initializer feeding a lowered op, and of a lowered value as the output
    rng = np.random.default_rng(seed)
    x, w = randn(rng, shape), randn(rng, shape)
    nodes = [helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("Add", ["x", "w2"], ["s"]),
             helper.make_node("Identity", ["s"], ["y"])]
    (got,) = run_graph(nodes, {"x": x}, {"w": w})
    assert_close(got, x.astype(np.float64) + w)


@settings(max_examples=20, deadline=None)
@given(shape=shapes(0, 4), seed=seeds)
def test_identity_of_initializer_as_output(shape, seed):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, shape), randn(rng, shape)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["w"], ["y"])]
    r, y = run_graph(nodes, {"x": x}, {"w": w}, outputs=["r", "y"])
    assert_close(r, np.maximum(x, 0), rtol=0, atol=0)
    assert_close(y, w, rtol=0, atol=0)


@st.composite
def constant_cases(draw):
    shape = draw(shapes(0, 4, max_side=4))
    # the Constant's attribute kind, and the shape of its value (it broadcasts against x)
    kind = draw(st.sampled_from(["value", "value_float", "value_floats"]))
    if kind == "value":
        cshape = shape[draw(st.integers(0, len(shape))):]
    elif kind == "value_float":
        cshape = ()
    else:
        cshape = (shape[-1],) if shape and draw(st.booleans()) else (1,)
    return shape, kind, cshape


@settings(max_examples=30, deadline=None)
@given(case=constant_cases(), seed=seeds)
def test_constant_feeding_add(case, seed):
    shape, kind, cshape = case
    rng = np.random.default_rng(seed)
    x, c = randn(rng, shape), randn(rng, cshape)
    if kind == "value":
        attr = {"value": numpy_helper.from_array(c)}
    elif kind == "value_float":
        attr = {"value_float": float(c)}
    else:
        attr = {"value_floats": [float(v) for v in c]}
    nodes = [helper.make_node("Constant", [], ["c"], **attr), helper.make_node("Add", ["x", "c"], ["y"])]
    (got,) = run_graph(nodes, {"x": x})
    assert_close(got, x.astype(np.float64) + c)


@settings(max_examples=20, deadline=None)
@given(case=reshape_cases(), seed=seeds)
def test_constant_as_reshape_target_and_output(case, seed):
    # an int64 Constant (value_ints) drives Reshape; a float Constant is itself a graph output
    in_shape, target, want_shape = case
    rng = np.random.default_rng(seed)
    x, c = randn(rng, in_shape), randn(rng, (2, 3))
    nodes = [helper.make_node("Constant", [], ["shape"], value_ints=list(target)),
             helper.make_node("Reshape", ["x", "shape"], ["y"]),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(c))]
    y, got_c = run_graph(nodes, {"x": x}, outputs=["y", "c"])
    assert_close(y, x.reshape(want_shape), rtol=0, atol=0)
    assert_close(got_c, c, rtol=0, atol=0)
