"""Layout ops: Reshape, Flatten, Transpose, Concat, Identity, Constant, Squeeze, Unsqueeze, Dropout."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from ._helpers import (assert_close, given_attrs, randn, run_graph, run_graph_placed, run_op, run_op_placed, seeds,
                       shapes, signed_axes)


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
    n = draw(st.integers(2, 6))  # beyond four: more than one pass
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


def _run_with_axes(op, x, axes, opset):
    """``op`` with ``axes`` as an attribute (opset 11) or an int64 initializer input (opset 13);
    None leaves them out."""
    if opset < 13:
        return run_op_placed(op, [x], opset=opset, **given_attrs(axes=axes))
    return run_op_placed(op, [x, None if axes is None else np.array(axes, dtype=np.int64)], const=(1,), opset=opset)


@st.composite
def squeeze_cases(draw):
    # up to rank 5: above rank 4 ggml values are stored with their size-1 dims dropped
    shape = draw(shapes(1, 5, max_side=3))
    ones = [i for i, d in enumerate(shape) if d == 1]
    picked = draw(st.none() | st.lists(st.sampled_from(ones), min_size=1, unique=True)) if ones else None
    return shape, None if picked is None else signed_axes(draw, picked, len(shape))


@settings(max_examples=50, deadline=None)
@given(case=squeeze_cases(), opset=st.sampled_from([11, 13]), seed=seeds)
def test_squeeze(case, opset, seed):
    shape, axes = case
    x = randn(np.random.default_rng(seed), shape)
    (got,), where = _run_with_axes("Squeeze", x, axes, opset)
    # no axes: every size-1 dim goes
    assert_close(got, np.squeeze(x, axis=None if axes is None else tuple(axes)), rtol=0, atol=0)
    if sum(d != 1 for d in shape) <= 4:  # else the input cannot be a ggml tensor
        assert where == "ggml"


@st.composite
def unsqueeze_cases(draw):
    shape = draw(shapes(0, 4, max_side=3))
    out_rank = len(shape) + draw(st.integers(1, 2))
    # axes index the output, whatever their order
    axes = draw(st.lists(st.integers(0, out_rank - 1), min_size=out_rank - len(shape),
                         max_size=out_rank - len(shape), unique=True))
    return shape, signed_axes(draw, axes, out_rank)


@settings(max_examples=50, deadline=None)
@given(case=unsqueeze_cases(), opset=st.sampled_from([11, 13]), seed=seeds)
@example(case=((1, 1, 2), [3, 0]), opset=11, seed=0)   # unsorted axes, rank-5 result
def test_unsqueeze(case, opset, seed):
    shape, axes = case
    x = randn(np.random.default_rng(seed), shape)
    (got,), where = _run_with_axes("Unsqueeze", x, axes, opset)
    want = np.expand_dims(x, tuple(axes))
    assert_close(got, want, rtol=0, atol=0)
    if want.ndim <= 4:
        assert where == "ggml"


@st.composite
def dropout_cases(draw):
    """Opset 7 takes ratio as an attribute; 13 as an optional input, with training_mode (false here)."""
    opset = draw(st.sampled_from([7, 13]))
    ratio = draw(st.none() | st.sampled_from([0.0, 0.3, 0.5]))
    training = draw(st.none() | st.just(False)) if opset >= 13 else None
    return opset, ratio, training


@pytest.mark.parametrize("with_mask", [False, True])
@settings(max_examples=25, deadline=None)
@given(shape=shapes(0, 4), case=dropout_cases(), seed=seeds)
def test_dropout_inference(with_mask, shape, case, seed):
    opset, ratio, training = case
    x = randn(np.random.default_rng(seed), shape)
    n_outputs = 2 if with_mask else 1
    if opset < 12:
        attrs = given_attrs(ratio=ratio)
        inputs = [x]
    else:
        attrs = {}
        inputs = [x, None if ratio is None else np.array(ratio, dtype=np.float32),
                  None if training is None else np.array(training)]
        while inputs[-1] is None:
            inputs.pop()
    # the mask is bool from opset 10 on, the input's type before (onnxruntime refuses a bool there)
    mask_type = TensorProto.BOOL if opset >= 10 else TensorProto.FLOAT
    outs, _ = run_op_placed("Dropout", inputs, const=(1, 2), opset=opset, n_outputs=n_outputs,
                            out_types={"out1": mask_type}, **attrs)
    # inference: the output is the input, nothing dropped or rescaled
    assert_close(outs[0], x, rtol=0, atol=0)
    if with_mask:
        mask = outs[1]
        assert mask.dtype == (np.bool_ if opset >= 10 else np.float32) and mask.shape == x.shape and mask.all()


@st.composite
def rank5_transpose_cases(draw):
    """A rank-5 shape with size-1 dims, and a perm: its ggml layout drops those dims."""
    shape = list(draw(shapes(5, 5, min_side=2, max_side=3)))
    for i in draw(st.lists(st.integers(0, 4), min_size=1, max_size=4, unique=True)):
        shape[i] = 1
    return tuple(shape), draw(st.permutations(range(5)))


@settings(max_examples=50, deadline=None)
@given(case=rank5_transpose_cases(), seed=seeds)
def test_transpose_rank5_with_unit_dims(case, seed):
    shape, perm = case
    x = randn(np.random.default_rng(seed), shape)
    (got,), where = run_op_placed("Transpose", [x], perm=list(perm))
    assert_close(got, np.transpose(x, perm), rtol=0, atol=0)
    assert where == "ggml"


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 4), per_group=st.integers(1, 4), hw=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       seed=seeds)
def test_channel_shuffle(groups, per_group, hw, seed):
    # shufflenet: [1, C, H, W] -> [1, g, C/g, H, W] -> swap the group axes -> [1, C, H, W]
    c = groups * per_group
    x = randn(np.random.default_rng(seed), (1, c, *hw))
    nodes = [helper.make_node("Reshape", ["x", "split"], ["g"]),
             helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "merged"], ["y"])]
    consts = {"split": np.array([1, groups, per_group, *hw], dtype=np.int64),
              "merged": np.array([1, c, *hw], dtype=np.int64)}
    (got,), where = run_graph_placed(nodes, {"x": x}, consts)
    want = x.reshape(1, groups, per_group, *hw).transpose(0, 2, 1, 3, 4).reshape(x.shape)
    assert_close(got, want, rtol=0, atol=0)
    assert where == ["ggml"] * 3
