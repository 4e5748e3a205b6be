"""Tiny detection and segmentation nets, committed as ONNX files, against onnxruntime.

tests/data/nets/*.onnx are narrow versions of the bench's U-Net, DBNet-style FPN text detector
and YOLO head, exported by torch with tests/nets/tiny_detection.py (see there to regenerate).
The files are committed so this test needs no torch: it feeds a seeded random input of each
model's declared shape and compares ggonnx with onnxruntime, and checks that the heavy ops
(convolutions, resizes, matmuls) run in ggml.
"""
import glob
import os

import numpy as np
import onnx
import pytest

import ggonnx

ort = pytest.importorskip("onnxruntime")

NETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "nets")
NETS = sorted(glob.glob(os.path.join(NETS_DIR, "*.onnx")))

# Every node of these op types must run in ggml; every other node too, except the shape
# arithmetic that exact-size resizes compute (folded per signature, or a Shape read).
GGML_OPS = {"Conv", "ConvTranspose", "Resize", "MatMul", "Gemm"}
PLAN_TIME = ("folded at plan time", "layout only")


def test_nets_present():
    # a glob that matches nothing would parametrize to zero cases and pass silently
    assert len(NETS) == 8, NETS


def _input(path):
    (inp,) = onnx.load(path, load_external_data=False).graph.input
    shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    assert inp.name == "x" and all(shape), (inp.name, shape)
    return inp.name, shape


@pytest.mark.parametrize("path", NETS, ids=[os.path.basename(p)[: -len(".onnx")] for p in NETS])
def test_tiny_net(path):
    name, shape = _input(path)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ggonnx.Session(path, threads=2)
    ours = sess.run(None, {name: x})
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {name: x})
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == b.dtype
        # YOLO boxes are in pixels (tens), the maps are O(1): scale atol to the output
        atol = 1e-4 * max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol)

    placement = sess.placement({name: shape})
    assert placement
    heavy = [p for p in placement if p.op_type in GGML_OPS]
    assert heavy, "no Conv/Resize/MatMul node in the plan"
    on_host = [(p.node, p.op_type, p.detail) for p in placement if p.where != "ggml" and p.detail not in PLAN_TIME]
    assert not on_host, on_host
