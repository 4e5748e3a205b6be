"""NonMaxSuppression on the host kernel of ours (ggonnx.host_detect, host_nms.c) against
onnxruntime: both box formats, flipped corners, thresholds at and around real IoUs, several
batches and classes, output limits; refused inputs."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

from ._helpers import THREADS, seeds


def _nms_model(center: int, max_out, iou, score) -> bytes:
    inits, names = [], ["boxes", "scores"]
    for name, value, dtype in (("max_out", max_out, np.int64), ("iou", iou, np.float32), ("score", score, np.float32)):
        if value is None:
            names.append("")
            continue
        inits.append(numpy_helper.from_array(np.array([value], dtype), name))
        names.append(name)
    while not names[-1]:
        names.pop()
    graph = helper.make_graph([helper.make_node("NonMaxSuppression", names, ["selected"], center_point_box=center)],
                              "nms", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, None),
                                      helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("selected", TensorProto.INT64, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]).SerializeToString()


@settings(max_examples=60, deadline=None)
@given(center=st.integers(0, 1), batches=st.integers(1, 2), classes=st.integers(1, 3), n=st.integers(1, 60),
       max_out=st.sampled_from([None, 0, 1, 5, 100]), iou=st.sampled_from([None, 0.0, 0.3, 0.5, 1.0]),
       score=st.sampled_from([None, 0.2, 0.9]), seed=seeds)
def test_non_max_suppression_matches_onnxruntime(center, batches, classes, n, max_out, iou, score, seed):
    rng = np.random.default_rng(seed)
    if center:
        boxes = np.concatenate([rng.uniform(0, 10, (batches, n, 2)), rng.uniform(0.5, 4, (batches, n, 2))], axis=2)
    else:   # clustered, so that many overlap; corners in either order
        boxes = np.concatenate([rng.uniform(0, 6, (batches, n, 2)), rng.uniform(0, 6, (batches, n, 2))], axis=2)
    boxes = np.round(boxes, 1).astype(np.float32)   # shared edges and equal areas
    scores = rng.permutation(batches * classes * n).reshape(batches, classes, n).astype(np.float32)
    scores /= batches * classes * n   # distinct scores: onnxruntime's heap order for ties is its own
    model = _nms_model(center, max_out, iou, score)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"boxes": boxes, "scores": scores})
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"boxes": boxes, "scores": scores})
    assert [p.where for p in sess.placement()] == ["host"]
    assert got[0].dtype == np.int64
    np.testing.assert_array_equal(got[0], want[0])


def test_an_iou_threshold_outside_zero_to_one_names_the_node():
    model = _nms_model(0, 5, 1.5, None)
    with pytest.raises(ggonnx.GgonnxError, match="NonMaxSuppression.*iou_threshold must lie in"):
        ggonnx.Session(model).run(None, {"boxes": np.zeros((1, 2, 4), np.float32),
                                         "scores": np.zeros((1, 1, 2), np.float32)})
