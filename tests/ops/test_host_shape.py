"""Our host kernels for shape arithmetic (ggonnx.host_shape) against onnxruntime, node by node."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper, numpy_helper
import onnxruntime as ort

from ggonnx import host_shape
from ggonnx.errors import GgonnxError
from ggonnx.ir import Node

SETTINGS = dict(max_examples=60, deadline=None)


def check(op: str, inputs: list, **attrs):
    """Our kernel's outputs equal onnxruntime's on the same one-node model, or both reject the
    inputs. (onnx.reference is not the oracle: its Slice with a negative step clamps starts as
    Python does, not as the spec and onnxruntime do.)"""
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    proto = helper.make_node(op, names, ["out"], **attrs)
    node = Node("n", op, "", names, ["out"], {k: (numpy_helper.to_array(v) if hasattr(v, "dims") else v)
                                             for k, v in attrs.items()}, 21, proto)
    try:
        (ours,) = host_shape.KERNELS[("", op)](node, *inputs)
    except GgonnxError:
        ours = None
    feeds = {n: x for n, x in zip(names, inputs) if n}
    out_type = ours.dtype if ours is not None else np.int64 if op == "Shape" else inputs[0].dtype
    graph = helper.make_graph([proto], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype),
                                                                           x.shape) for n, x in feeds.items()],
                              [helper.make_tensor_value_info("out", helper.np_dtype_to_tensor_dtype(np.dtype(out_type)),
                                                             None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    try:
        expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    except Exception:
        expected = None
    if ours is None:
        assert expected is None, f"{op} rejected inputs onnxruntime accepts"
        return
    assert expected is not None, f"{op} accepted inputs onnxruntime rejects"
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@settings(**SETTINGS)
@given(shape=shapes, start=st.integers(-5, 5), end=st.one_of(st.none(), st.integers(-5, 5)))
def test_shape(shape, start, end):
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    check("Shape", [np.zeros(shape, np.float32)], **attrs)


@settings(**SETTINGS)
@given(shape=shapes, data=st.data())
def test_gather(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    bound = shape[axis]
    idx = np.array(data.draw(st.lists(st.integers(-bound, bound - 1), min_size=0, max_size=3)), np.int64)
    if data.draw(st.booleans()):
        idx = idx.reshape(()) if idx.size == 1 else idx
    x = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    check("Gather", [x, idx], axis=axis)


@settings(**SETTINGS)
@given(shape=st.lists(st.integers(1, 3), max_size=3).map(tuple), axes=st.lists(st.integers(-4, 3), min_size=1, max_size=2))
def test_unsqueeze(shape, axes):
    check("Unsqueeze", [np.ones(shape, np.int64), np.array(axes, np.int64)])


@settings(**SETTINGS)
@given(shape=st.lists(st.sampled_from([1, 1, 2, 3]), min_size=1, max_size=4).map(tuple),
       axes=st.one_of(st.none(), st.lists(st.integers(-4, 3), min_size=1, max_size=2)))
def test_squeeze(shape, axes):
    check("Squeeze", [np.ones(shape, np.float32)] + ([] if axes is None else [np.array(axes, np.int64)]))


@settings(**SETTINGS)
@given(shape=shapes, n=st.integers(1, 3), data=st.data())
def test_concat(shape, n, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for i in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(np.full(s, i, np.int64))
    check("Concat", parts, axis=axis)


@settings(**SETTINGS)
@given(shape=shapes, data=st.data())
def test_slice(shape, data):
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique_by=lambda a: a % rank))
    big = st.sampled_from([2 ** 62, -2 ** 62])
    starts = [data.draw(st.one_of(st.integers(-6, 6), big)) for _ in axes]
    ends = [data.draw(st.one_of(st.integers(-6, 6), big)) for _ in axes]
    steps = [data.draw(st.sampled_from([1, 2, -1, -2, 3])) for _ in axes]
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    arrays = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    check("Slice", [x] + arrays)
    if all(s == 1 for s in steps):
        check("Slice", [x, arrays[0], arrays[1], arrays[2]])          # steps omitted
    if sorted(a % rank for a in axes) == list(range(len(axes))) and axes == sorted(axes) and min(axes) >= 0:
        check("Slice", [x, arrays[0], arrays[1], None, arrays[3]])    # axes omitted, steps given


@settings(**SETTINGS)
@given(values=st.lists(st.floats(-300, 300, width=32), min_size=1, max_size=5),
       to=st.sampled_from([1, 3, 6, 7, 9, 10, 11]), source=st.sampled_from([np.float32, np.int64, np.int32]))
def test_cast(values, to, source):
    x = np.array(values, np.float32)
    x = np.trunc(x).astype(source) if source != np.float32 else x
    if to == 3:   # out-of-range float -> int8 casts are undefined in ONNX
        x = np.clip(x, -128, 127).astype(x.dtype)
    check("Cast", [x], to=to)


@settings(**SETTINGS)
@given(shape=shapes, data=st.data())
def test_reshape(shape, data):
    total = int(np.prod(shape))
    target = data.draw(st.sampled_from([[total], [-1], [0, -1], [1, total], [-1, 1]] + [[0] * len(shape)]))
    allowzero = data.draw(st.sampled_from([0, 1]))
    check("Reshape", [np.arange(total, dtype=np.int64).reshape(shape), np.array(target, np.int64)], allowzero=allowzero)


@pytest.mark.parametrize("value", [None, np.array([7], np.int64), np.array([0.5], np.float32)])
@pytest.mark.parametrize("dims", [[2, 3], [0], [1, 0, 2], []])
def test_constant_of_shape(value, dims):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    check("ConstantOfShape", [np.array(dims, np.int64)], **attrs)


@settings(**SETTINGS)
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple), data=st.data())
def test_flatten(shape, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape) + 1))  # one past each end: rejected by both
    check("Flatten", [np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)], axis=axis)


@settings(**SETTINGS)
@given(shape=st.lists(st.sampled_from([1, 1, 2, 3]), min_size=0, max_size=3).map(tuple),
       target=st.lists(st.sampled_from([0, 1, 1, 2, 3]), min_size=0, max_size=4))
def test_expand(shape, target):
    x = np.asarray(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) > 2)  # bool, as attention masks
    check("Expand", [x, np.array(target, np.int64)])


def test_expand_rejects_negative_dims():
    check("Expand", [np.ones((2, 1), np.int64), np.array([2, -1], np.int64)])


def test_concat_of_one_input_is_its_input():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    check("Concat", [x], axis=1)
