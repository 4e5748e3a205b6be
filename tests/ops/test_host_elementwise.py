"""Our host kernels for elementwise glue (ggonnx.host_elementwise) against onnxruntime, node by
node: the same values and dtypes, or a None that hands the inputs to onnx.reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper
import onnxruntime as ort

from ggonnx import host_elementwise
from ggonnx.errors import InvalidInputError, ShapeError
from ggonnx.ir import Node

SETTINGS = dict(max_examples=40, deadline=None)
DTYPES = [np.float32, np.float64, np.int32, np.int64]


def _node(op, n_in, **attrs):
    names = [f"in{i}" for i in range(n_in)]
    return Node("n", op, "", names, ["out"], attrs, 21, helper.make_node(op, names, ["out"], **attrs)), names


def onnxruntime_result(op, inputs, out_dtype, **attrs):
    node, names = _node(op, len(inputs), **attrs)
    graph = helper.make_graph(
        [node.proto], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape) for n, x in zip(names, inputs)],
        [helper.make_tensor_value_info("out", helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype)), None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))[0]


def check(op, inputs, **attrs):
    node, _ = _node(op, len(inputs), **attrs)
    (ours,) = host_elementwise.KERNELS[("", op)](node, *inputs)
    expected = onnxruntime_result(op, inputs, ours.dtype, **attrs)
    assert ours.dtype == expected.dtype and ours.shape == expected.shape, (ours, expected)
    np.testing.assert_array_equal(ours, expected)


def arrays(dtype, shape):
    if np.issubdtype(dtype, np.integer):
        return st.lists(st.integers(-20, 20), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
            lambda v: np.array(v, dtype).reshape(shape))
    return st.lists(st.sampled_from([-2.5, -1.0, -0.0, 0.0, 0.5, 3.0, 7.25, np.inf, np.nan]),
                    min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(lambda v: np.array(v, dtype).reshape(shape))


def broadcast_pair():
    """Two shapes that broadcast (some dims 1 on one side, ranks may differ)."""
    def pair(dims, ones_a, ones_b, drop):
        a = tuple(1 if o else d for d, o in zip(dims, ones_a))
        b = tuple(1 if o else d for d, o in zip(dims, ones_b))[drop:]
        return a, b
    return st.lists(st.integers(1, 3), min_size=0, max_size=3).flatmap(
        lambda dims: st.tuples(st.just(dims), st.lists(st.booleans(), min_size=len(dims), max_size=len(dims)),
                               st.lists(st.booleans(), min_size=len(dims), max_size=len(dims)),
                               st.integers(0, len(dims)))).map(lambda x: pair(*x))


@settings(**SETTINGS)
@given(op=st.sampled_from(["Add", "Sub", "Mul", "Div", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]),
       dtype=st.sampled_from(DTYPES), shapes=broadcast_pair(), data=st.data())
def test_binary(op, dtype, shapes, data):
    a = data.draw(arrays(dtype, shapes[0]))
    b = data.draw(arrays(dtype, shapes[1]))
    if op == "Div" and np.issubdtype(dtype, np.integer) and np.any(b == 0):
        node, _ = _node(op, 2)
        with pytest.raises(InvalidInputError, match="integer division by zero"):  # as onnxruntime raises
            host_elementwise.KERNELS[("", op)](node, a, b)
        return
    check(op, [a, b])


@settings(**SETTINGS)
@given(op=st.sampled_from(["And", "Or", "Xor"]), shapes=broadcast_pair(), data=st.data())
def test_logical(op, shapes, data):
    a, b = (np.array(data.draw(st.lists(st.booleans(), min_size=int(np.prod(s)), max_size=int(np.prod(s)))),
                     bool).reshape(s) for s in shapes)
    check(op, [a, b])


@settings(**SETTINGS)
@given(dtype=st.sampled_from(DTYPES), shapes=broadcast_pair(), data=st.data())
def test_where_and_not(dtype, shapes, data):
    cond = np.array(data.draw(st.lists(st.booleans(), min_size=int(np.prod(shapes[0])),
                                       max_size=int(np.prod(shapes[0])))), bool).reshape(shapes[0])
    x = data.draw(arrays(dtype, shapes[1]))
    y = data.draw(arrays(dtype, shapes[0]))
    check("Where", [cond, x, y])
    check("Not", [cond])


@settings(**SETTINGS)
@given(dtype=st.sampled_from([np.int32, np.int64]), start=st.integers(-10, 10), limit=st.integers(-10, 10),
       delta=st.integers(-4, 4).filter(bool))
def test_range(dtype, start, limit, delta):
    check("Range", [np.array(start, dtype), np.array(limit, dtype), np.array(delta, dtype)])


def test_integer_division_truncates_toward_zero():
    node, _ = _node("Div", 2)
    (q,) = host_elementwise.div(node, np.array([7, -7, 7, -7], np.int64), np.array([2, 2, -2, -2], np.int64))
    np.testing.assert_array_equal(q, [3, -3, -3, 3])


def test_declined_inputs_go_to_the_reference_kernels():
    add, _ = _node("Add", 2)
    assert host_elementwise.KERNELS[("", "Add")](add, np.ones(2, np.float32), np.ones(2, np.int64)) is None
    rng, _ = _node("Range", 3)
    assert host_elementwise.range_(rng, np.float32(0), np.float32(1), np.float32(0.1)) is None


def test_shapes_that_do_not_broadcast_name_the_node():
    add, _ = _node("Add", 2)
    with pytest.raises(ShapeError, match="do not broadcast"):
        host_elementwise.KERNELS[("", "Add")](add, np.ones((2, 3), np.float32), np.ones((4,), np.float32))


@settings(**SETTINGS)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), opset=st.sampled_from([11, 13, 21]))
def test_log_softmax_keeps_scores_far_below_the_largest(shape, data, opset):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    values = st.sampled_from([-1e30, -40.0, -1.0, 0.0, 0.5, 3.0, 90.0, 1e30])
    x = np.array(data.draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                 np.float32).reshape(shape)
    proto = helper.make_node("LogSoftmax", ["in0"], ["out"], axis=axis)
    node = Node("n", "LogSoftmax", "", ["in0"], ["out"], {"axis": axis}, opset, proto)
    (ours,) = host_elementwise.log_softmax(node, x)
    graph = helper.make_graph([proto], "g", [helper.make_tensor_value_info("in0", 1, shape)],
                              [helper.make_tensor_value_info("out", 1, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"in0": x})[0]
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@settings(**SETTINGS)
@given(op=st.sampled_from(["ArgMax", "ArgMin"]), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), keepdims=st.integers(0, 1),
       last=st.integers(0, 1), data=st.data())
def test_arg_max_min(op, dtype, shape, keepdims, last, data):
    # ties are common (values from a small set); NaN is left out: where it sits decides
    # onnxruntime's answer (README, "Where ggonnx and onnxruntime differ")
    x = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                 dtype).reshape(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(op, [x], axis=axis, keepdims=keepdims, select_last_index=last)


def test_arg_max_takes_the_first_nan():
    node, _ = _node("ArgMax", 1, axis=1)
    (idx,) = host_elementwise.KERNELS[("", "ArgMax")](node, np.array([[1, np.nan, 5, np.nan]], np.float32))
    np.testing.assert_array_equal(idx, [[1]])
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        host_elementwise.KERNELS[("", "ArgMax")](_node("ArgMax", 1, axis=2)[0], np.ones((2, 2), np.float32))
