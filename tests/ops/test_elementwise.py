"""Add/Sub/Mul/Div and variadic Sum with numpy broadcasting; Relu, Sigmoid, Tanh."""
from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from onnx import helper

from ._helpers import (assert_close, away_from_zero, randn, run_graph, run_graph_shapes, run_op, run_op_placed, seeds,
                       shapes, sum_atol)

BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
UNARY = {
    "Relu": lambda x: np.maximum(x, 0.0),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Tanh": np.tanh,
}
# which operand is an initializer; both constant would be folded on the host, not lowered
CONST_CHOICES = st.sampled_from([(), (0,), (1,)])


def _binary_operands(op, shape_a, shape_b, seed):
    rng = np.random.default_rng(seed)
    a = randn(rng, shape_a)
    b = away_from_zero(rng, shape_b) if op == "Div" else randn(rng, shape_b)
    return a, b


def _check_binary(op, shape_a, shape_b, const, seed):
    a, b = _binary_operands(op, shape_a, shape_b, seed)
    (got,) = run_op(op, [a, b], const=const)
    want = BINARY[op](a.astype(np.float64), b.astype(np.float64))
    assert_close(got, want)


@settings(max_examples=100, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)),
       bs=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=4),
       const=CONST_CHOICES, seed=seeds)
def test_binary_broadcast(op, bs, const, seed):
    shape_a, shape_b = bs.input_shapes
    _check_binary(op, shape_a, shape_b, const, seed)


@st.composite
def sum_cases(draw):
    """Shapes of 1 to 4 broadcasting Sum inputs, and which are initializers (never all of them:
    an all-constant node is folded on the host)."""
    n = draw(st.integers(1, 4))
    bs = draw(mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=4, min_side=1, max_side=4))
    const = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    return bs.input_shapes, tuple(const)


@settings(max_examples=60, deadline=None)
@given(case=sum_cases(), seed=seeds)
def test_sum(case, seed):
    in_shapes, const = case
    rng = np.random.default_rng(seed)
    xs = [randn(rng, s) for s in in_shapes]
    (got,), where = run_op_placed("Sum", xs, const=const)
    assert_close(got, sum(x.astype(np.float64) for x in xs), atol=sum_atol(len(xs)))
    assert where == "ggml"


@st.composite
def _empty_operands(draw, empty_side: str):
    """Broadcastable shapes with a 0-sized dim, and which operand is an initializer.

    empty_side "input": a graph input is empty, so the session takes its host fallback;
    "const": only the initializer is empty, so the graph is still lowered to ggml.
    """
    bs = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, min_side=0, max_side=3)
              .filter(lambda s: any(0 in shape for shape in s.input_shapes)))
    shape_a, shape_b = bs.input_shapes
    if empty_side == "input":
        const = draw(CONST_CHOICES.filter(
            lambda c: any(0 in s for i, s in enumerate((shape_a, shape_b)) if i not in c)))
    else:
        const = draw(st.sampled_from([(0,), (1,)]).filter(
            lambda c: 0 in (shape_a, shape_b)[c[0]] and 0 not in (shape_a, shape_b)[1 - c[0]]))
    return shape_a, shape_b, const


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), case=_empty_operands("input"), seed=seeds)
def test_binary_empty_graph_input(op, case, seed):
    _check_binary(op, *case, seed)


@settings(max_examples=20, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), case=_empty_operands("const"), seed=seeds)
@example(op="Add", case=((1,), (0,), (1,)), seed=0)   # graph input (1,) + initializer (0,) -> (0,)
def test_binary_empty_constant(op, case, seed):
    _check_binary(op, *case, seed)


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), shape=shapes(0, 4), seed=seeds)
def test_binary_same_input_twice(op, shape, seed):
    # one graph input feeding both operands
    x = away_from_zero(np.random.default_rng(seed), shape)
    node = helper.make_node(op, ["x", "x"], ["y"])
    (got,) = run_graph([node], {"x": x})
    x64 = x.astype(np.float64)
    assert_close(got, BINARY[op](x64, x64))


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(sorted(UNARY)), shape=shapes(0, 4), scale=st.sampled_from([1.0, 4.0, 30.0]),
       seed=seeds)
def test_unary(op, shape, scale, seed):
    x = randn(np.random.default_rng(seed), shape, scale)
    (got,) = run_op(op, [x])
    assert_close(got, UNARY[op](x.astype(np.float64)))


@settings(max_examples=20, deadline=None)
@given(op=st.sampled_from(sorted(UNARY)), shape=shapes(1, 4, min_side=0, max_side=3).filter(lambda s: 0 in s),
       seed=seeds)
def test_unary_empty(op, shape, seed):
    x = randn(np.random.default_rng(seed), shape)
    (got,) = run_op(op, [x])
    assert_close(got, UNARY[op](x.astype(np.float64)))


@st.composite
def _large_broadcast_shapes(draw):
    """A full shape of >= 262144 elements and a smaller operand broadcasting against it, either side."""
    full = (draw(st.integers(1, 2)),) + tuple(draw(st.integers(64, 72)) for _ in range(3))
    small = full[draw(st.integers(0, 3)):]
    small = tuple(1 if draw(st.booleans()) else d for d in small)
    return (full, small) if draw(st.booleans()) else (small, full)


@settings(max_examples=8, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), ab=_large_broadcast_shapes(), const=CONST_CHOICES, seed=seeds)
def test_binary_multithreaded_size(op, ab, const, seed):
    # enough elements that the plan runs on both threads
    _check_binary(op, *ab, const, seed)


@st.composite
def _shapes_against(draw, const_shape, rank):
    """A shape of the given rank (>= len(const_shape)) that broadcasts with const_shape."""
    aligned = (None,) * (rank - len(const_shape)) + tuple(const_shape)
    return tuple(draw(st.integers(1, 4)) if c in (None, 1) else draw(st.sampled_from([1, c])) for c in aligned)


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), const_shape=shapes(0, 3, max_side=4), const_first=st.booleans(),
       data=st.data(), seed=seeds)
def test_binary_constant_one_session_many_shapes(op, const_shape, const_first, data, seed):
    # the initializer is stored once; the graph input's shape (and so the broadcast) changes
    rank = len(const_shape) + data.draw(st.integers(0, 1))
    x_shapes = [data.draw(_shapes_against(const_shape, rank)) for _ in range(3)]
    x_shapes.append(x_shapes[0])
    rng = np.random.default_rng(seed)
    c = away_from_zero(rng, const_shape) if op == "Div" and not const_first else randn(rng, const_shape)
    names = ["c", "x"] if const_first else ["x", "c"]
    node = helper.make_node(op, names, ["y"])
    make_x = away_from_zero if op == "Div" and const_first else randn
    feeds = [{"x": make_x(rng, s)} for s in x_shapes]
    for f, (got,) in zip(feeds, run_graph_shapes([node], feeds, {"c": c})):
        a, b = (c, f["x"]) if const_first else (f["x"], c)
        assert_close(got, BINARY[op](a.astype(np.float64), b.astype(np.float64)))


_SPECIALS = np.array([0.0, -0.0, 1e-45, -1e-45, 1.1754944e-38, 1.1754942e-38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan,
                      1.0, 1.0000001], np.float32)


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["Less", "Greater"]),
       bs=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, min_side=1, max_side=4),
       const=CONST_CHOICES, cast=st.booleans(), seed=seeds)
def test_less_greater_in_ggml_match_numpy(op, bs, const, cast, seed):
    """Less / Greater in ggml as a step of the difference: equal values, subnormals (their
    difference is subnormal too), overflowing differences, infinities and NaN as NumPy; the bool
    result, or its Cast to float, in the same graph."""
    from onnx import TensorProto
    from ._helpers import run_graph_placed
    rng = np.random.default_rng(seed)
    shape_a, shape_b = bs.input_shapes
    a, b = (rng.choice(_SPECIALS, s).astype(np.float32) for s in (shape_a, shape_b))
    feeds, consts = {}, {}
    for i, (name, v) in enumerate((("a", a), ("b", b))):
        (consts if i in const else feeds)[name] = v
    nodes = [helper.make_node(op, ["a", "b"], ["c"])]
    if cast:
        nodes.append(helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT))
    (got,), where = run_graph_placed(nodes, feeds, consts, out_types={"c": TensorProto.BOOL})
    with np.errstate(invalid="ignore"):
        want = np.less(a, b) if op == "Less" else np.greater(a, b)
    assert where == ["ggml"] * len(nodes)
    assert got.dtype == (np.float32 if cast else np.bool_)
    np.testing.assert_array_equal(got, want.astype(got.dtype))
