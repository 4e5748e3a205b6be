"""Old-opset attribute forms are rewritten at import into the newest input forms."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import ggonnx
from ggonnx.importer import import_model

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5

CASES = [
    # (op, opset, attributes, expected output from X, new opset, runs in ggml)
    ("Clip", 6, {"min": -3.0, "max": 4.0}, np.clip(X, -3, 4), 11, True),
    ("Reshape", 1, {"shape": [4, 6]}, X.reshape(4, 6), 5, True),
    ("Slice", 9, {"starts": [1, 0], "ends": [3, 2], "axes": [2, 0]}, X[0:2, :, 1:3], 10, True),
    ("Pad", 2, {"pads": [0, 1, 0, 0, 0, 2], "value": 1.5},
     np.pad(X, ((0, 0), (1, 0), (0, 2)), constant_values=1.5), 11, True),
    ("Unsqueeze", 11, {"axes": [0, -1]}, X[None, ..., None], 13, True),
    ("ReduceMean", 13, {"axes": [1], "keepdims": 0}, X.mean(axis=1), 18, True),
    ("ReduceSum", 11, {"axes": [-1]}, X.sum(axis=-1, keepdims=True), 13, True),
]


@pytest.mark.parametrize("op,opset,attrs,expected,new_opset,in_ggml", CASES, ids=[c[0] for c in CASES])
def test_old_form_runs_as_new_form(op, opset, attrs, expected, new_opset, in_ggml):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    imported = import_model(model).nodes[0]
    assert imported.opset == new_opset and len(imported.inputs) > 1
    assert not set(attrs) - {"keepdims"} & set(imported.attrs)
    sess = ggonnx.Session(model)
    np.testing.assert_allclose(sess.run(None, {"x": X})[0], expected, rtol=1e-6)
    assert (sess.placement()[0].where == "ggml") == in_ggml


def test_split_old_form():
    node = helper.make_node("Split", ["x"], ["a", "b"], axis=2, split=[1, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab"])
    a, b = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])).run(None, {"x": X})
    np.testing.assert_array_equal(a, X[:, :, :1])
    np.testing.assert_array_equal(b, X[:, :, 1:])
