"""AffineGrid (host kernel of ours) against onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import ggonnx


def _model(nd: int, align: int) -> bytes:
    g = helper.make_graph([helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=align)], "g",
                          [helper.make_tensor_value_info("theta", TensorProto.FLOAT, ["N", nd, nd + 1]),
                           helper.make_tensor_value_info("size", TensorProto.INT64, [nd + 2])],
                          [helper.make_tensor_value_info("grid", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()


@settings(max_examples=30, deadline=None)
@given(nd=st.sampled_from([2, 3]), align=st.sampled_from([0, 1]), n=st.integers(1, 3),
       dims=st.lists(st.integers(1, 7), min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_affine_grid_matches_onnxruntime(nd, align, n, dims, seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((n, nd, nd + 1)).astype(np.float32)
    size = np.array([n, 3, *dims[:nd]], np.int64)
    model = _model(nd, align)
    (got,) = ggonnx.Session(model).run(None, {"theta": theta, "size": size})
    (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"theta": theta, "size": size})
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_affine_grid_bad_sizes_name_the_node():
    theta = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ggonnx.ShapeError, match="AffineGrid"):
        ggonnx.Session(_model(2, 0)).run(None, {"theta": theta, "size": np.array([3, 1, 4, 4], np.int64)})
