"""How much of a weight type's error is the network's own: cosine to float32 when only the
weights are rounded to the type and onnxruntime computes in float32, beside ggonnx's cosine.

    python bench/weight_rounding.py [--types bf16,q8_0,q6_K,q4_K] [--only NAME ...]

Each MatMul/Gemm/Conv weight and embedding table is put through ggml's own quantizer and
back (``_core.quantize``/``dequantize``), along the depth K as ggonnx stores it (a Conv's
IC*kh*kw in ONNX order, where ggonnx's channels-last conv blocks (kh, kw, IC): the same
values, other block boundaries), with the type ``WeightPolicy`` picks for it. The rounded
model then runs in onnxruntime float32. Where that cosine is already below an accuracy
target, no runtime computing with those weights can meet it: the random-weight network
amplifies its weights' rounding. The gap to ggonnx's cosine is what ggonnx adds (its
activations enter the quantized GEMMs as q8 / bf16). One trained network is measured too:
PP-OCRv4's recognizer from the rapidocr_onnxruntime wheel on PyPI (downloaded once with
``pip download`` into bench/.cache; its weights are Constant nodes, made initializers first).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

import ggonnx
from ggonnx import _core
from ggonnx.weight_types import F32, TYPES, WeightPolicy
from harness import ort_session
from quantized import cases, cosine


def _weight_roles(graph) -> dict:
    """initializer name -> how its rows run along K: 'T' (MatMul B [K, N]: K is axis 0),
    'rows' (K is the last axis after flattening the rest: Gemm transB, Conv, embeddings)."""
    roles = {}
    for node in graph.node:
        if node.op_type == "MatMul" and len(node.input) > 1:
            roles.setdefault(node.input[1], "T")
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            roles.setdefault(node.input[1], "rows" if trans_b else "T")
        elif node.op_type == "Conv" and len(node.input) > 1 and \
                all(a.i == 1 for a in node.attribute if a.name == "group"):  # ggonnx types dense convs only
            roles.setdefault(node.input[1], "rows")
        elif node.op_type == "Gather" and node.input:
            roles.setdefault(node.input[0], "rows")
    return roles


def _round_trip(a: np.ndarray, role: str, policy: WeightPolicy) -> np.ndarray:
    rows = a.T if role == "T" else a.reshape(a.shape[0], -1)
    if rows.ndim != 2:
        return a
    n, k = rows.shape
    t = policy.choose(k, n)
    if t == F32:
        return a
    back = _core.dequantize(t, _core.quantize(t, np.ascontiguousarray(rows, np.float32), threads=2), (n, k))
    return (back.T if role == "T" else back.reshape(a.shape)).astype(np.float32)


def _constants_to_initializers(graph) -> None:
    """Constant nodes holding a tensor become initializers (exporters such as paddle2onnx store
    every weight that way; ggonnx's optimizer does the same before choosing weight types)."""
    keep = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and not node.domain and value is not None and len(node.attribute) == 1:
            t = onnx.TensorProto()
            t.CopyFrom(value)
            t.name = node.output[0]
            graph.initializer.append(t)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def rounded_model(model: bytes, type_name: str) -> bytes:
    m = onnx.load_from_string(model)
    _constants_to_initializers(m.graph)
    roles, policy = _weight_roles(m.graph), WeightPolicy(type_name)
    for init in m.graph.initializer:
        role = roles.get(init.name)
        if role is None or init.data_type != onnx.TensorProto.FLOAT or len(init.dims) < 2:
            continue
        init.CopyFrom(numpy_helper.from_array(_round_trip(numpy_helper.to_array(init), role, policy), init.name))
    return m.SerializeToString()


PPOCR_WHEEL = "rapidocr_onnxruntime==1.4.4"
PPOCR_REC = "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"


def ppocr_rec():
    """A trained network shipped inside a PyPI wheel: PP-OCRv4's text recognizer (convs, a
    small transformer, a 6,625-class softmax per step), fed a synthetic line of dark strokes."""
    import glob
    import subprocess
    import zipfile
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache", "ppocr")
    path = os.path.join(cache, PPOCR_REC)
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PPOCR_WHEEL, "-d", cache], check=True)
        with zipfile.ZipFile(glob.glob(os.path.join(cache, "rapidocr_onnxruntime-*.whl"))[0]) as wheel:
            wheel.extract(PPOCR_REC, cache)
    with open(path, "rb") as fh:
        model = fh.read()
    rng = np.random.default_rng(0)
    img = np.ones((1, 3, 48, 320), np.float32)   # PaddleOCR's normalization: white is 1, black -1
    for _ in range(40):
        y, x = rng.integers(0, 40), rng.integers(0, 290)
        img[:, :, y:y + rng.integers(2, 8), x:x + rng.integers(3, 30)] = -0.8
    img += rng.standard_normal(img.shape).astype(np.float32) * 0.05
    return model, {onnx.load_from_string(model).graph.input[0].name: img}, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="bf16,f16,q8_0,q6_K,q5_K,q4_K,q4_0")
    ap.add_argument("--only", action="append", metavar="NAME")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    print("| case | weights | onnxruntime f32, weights rounded: cosine | ggonnx: cosine |")
    print("|---|---|---|---|")
    picked = {k: v for k, v in cases().items() if k in ("gpt2_dyn_s1", "bert_base_dyn_s1", "resnet50_b1")}
    picked["ppocr_v4_rec (trained)"] = ppocr_rec
    for name, build in picked.items():
        if args.only and not any(o in name for o in args.only):
            continue
        model, feeds, _ = build()
        ref = ort_session(model, args.threads).run(None, feeds)[0]
        for t in args.types.split(","):
            if t not in TYPES:
                raise SystemExit(f"unknown type {t}")
            floor = cosine(ort_session(rounded_model(model, t), args.threads).run(None, feeds)[0], ref)
            ours = cosine(ggonnx.Session(model, threads=args.threads, weights=t).run(None, feeds)[0], ref)
            print(f"| {name} | {t} | {floor:.6f} | {ours:.6f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
