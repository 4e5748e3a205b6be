"""Tiny nets, committed as ONNX files, against onnxruntime.

tests/data/nets/ holds two families, both exported by torch (see the scripts to regenerate) and
committed so this test needs no torch:

- detection: ``<kind>_<shape>.onnx``, narrow versions of the bench's U-Net, DBNet-style FPN text
  detector and YOLO head (tests/nets/tiny_detection.py). Every node must run in ggml except the
  plan-time shape arithmetic.
- transformers: ``tiny_<name>.onnx``, 2-layer width-32 BERT, GPT-2 (fixed length and free
  sequence axis), ViT, T5 encoder and Whisper encoder from Hugging Face transformers
  (tests/nets/tiny_transformers.py). Every MatMul and Gemm must run in ggml; other nodes may
  run on the host (mask arithmetic, Casts).

Each model gets seeded random inputs of its declared shapes (free dims set to FREE_DIM): float
inputs standard normal, int64 token ids below 100 (every tiny vocab is 100), an attention_mask
of ones whose last row ends in zeros.
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
TRANSFORMERS = {"tiny_bert", "tiny_gpt2", "tiny_gpt2_dyn", "tiny_vit", "tiny_t5_encoder", "tiny_whisper_encoder"}

# Detection nets: every node of these op types must run in ggml; every other node too, except
# the shape arithmetic that exact-size resizes compute (folded per signature, or a Shape read).
GGML_OPS = {"Conv", "ConvTranspose", "Resize", "MatMul", "Gemm"}
PLAN_TIME = ("folded at plan time", "layout only")
# Transformer nets: only the matmuls are required in ggml.
MATMUL_OPS = {"MatMul", "Gemm"}
VOCAB = 100
FREE_DIM = 5   # a free (sequence) dim: another length than the traced 16

def _name(path):
    return os.path.basename(path)[: -len(".onnx")]


def test_nets_present():
    # a glob that matches nothing would parametrize to zero cases and pass silently
    names = {_name(p) for p in NETS}
    assert len(NETS) == 14, NETS
    assert TRANSFORMERS <= names, TRANSFORMERS - names


def _feeds(path):
    """Seeded random inputs of every declared input's shape and type."""
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in onnx.load(path, load_external_data=False).graph.input:
        tt = inp.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else FREE_DIM for d in tt.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype == np.int64 and "mask" in inp.name:
            x = np.ones(shape, dtype=np.int64)
            x[-1, shape[-1] - max(1, shape[-1] // 4):] = 0
        elif dtype == np.int64:
            x = rng.integers(0, VOCAB, shape, dtype=np.int64)
        else:
            assert dtype == np.float32, (inp.name, dtype)
            x = rng.standard_normal(shape).astype(np.float32)
        feeds[inp.name] = x
    return feeds


@pytest.mark.parametrize("path", NETS, ids=[_name(p) for p in NETS])
def test_tiny_net(path):
    feeds = _feeds(path)
    transformer = _name(path) in TRANSFORMERS
    if not transformer:
        assert list(feeds) == ["x"], list(feeds)
    sess = ggonnx.Session(path, threads=2)
    ours = sess.run(None, feeds)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == b.dtype
        # YOLO boxes are in pixels (tens), the maps are O(1): scale atol to the output
        atol = 1e-4 * max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol)

    placement = sess.placement({k: v.shape for k, v in feeds.items()})
    assert placement
    if transformer:
        matmuls = [p for p in placement if p.op_type in MATMUL_OPS]
        assert matmuls, "no MatMul/Gemm node in the plan"
        off = [(p.node, p.op_type, p.detail) for p in matmuls if p.where != "ggml"]
        assert not off, off
        return
    heavy = [p for p in placement if p.op_type in GGML_OPS]
    assert heavy, "no Conv/Resize/MatMul node in the plan"
    on_host = [(p.node, p.op_type, p.detail) for p in placement if p.where != "ggml" and p.detail not in PLAN_TIME]
    assert not on_host, on_host
