"""Vision bench models: torchvision networks with random weights, exported to ONNX once.

Needs torch and torchvision (``pip install torch==2.14.1 torchvision==0.29.1``); nothing is
downloaded from a model hub. BatchNorm statistics are calibrated on random images first,
so activations keep a sane scale through deep nets (untrained running stats of mean 0 and
variance 1 make them explode or vanish). Exports are cached in ``bench/.cache/``.

Every builder returns ``(model_bytes, feeds, flops)`` like ``models.py``.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import onnx
from onnx import shape_inference

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
CLASSIFIERS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
               "squeezenet1_1", "convnext_tiny", "regnet_y_400mf")


def conv_matmul_flops(model: onnx.ModelProto) -> int:
    """2 * multiply-adds of every Conv, MatMul and Gemm, from inferred shapes."""
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    flops = 0
    for node in g.node:
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            continue
        if node.op_type == "Conv":
            w = shapes.get(node.input[1])
            flops += 2 * int(np.prod(w[1:])) * int(np.prod(out))
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0])
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
            flops += 2 * k * int(np.prod(out))
    return flops


def _calibrated(model, size: int, seed: int):
    """Run a few random batches in train mode so BatchNorm running stats match the data."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, size, size, generator=gen))
    return model.eval()


def export_cached(name: str, batch: int, hw: tuple, make_model) -> bytes:
    """The ONNX export of ``make_model()`` (BatchNorm calibrated, input [batch, 3, h, w]), made
    once and kept in CACHE under name, batch and size."""
    h, w = hw
    path = os.path.join(CACHE, f"{name}_b{batch}_{h}x{w}.onnx")
    if not os.path.exists(path):
        import torch
        torch.manual_seed(0)
        model = _calibrated(make_model(), min(h, w), seed=0)  # calibrated on squares
        os.makedirs(CACHE, exist_ok=True)
        x = torch.randn(batch, 3, h, w)
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False)
    with open(path, "rb") as fh:
        return fh.read()


def export_torchvision(name: str, batch: int = 1, size: int = 224, hw: tuple | None = None) -> bytes:
    def make():
        import torchvision
        return torchvision.models.get_model(name, weights=None)
    return export_cached(name, batch, hw or (size, size), make)


def torchvision_case(name: str, batch: int = 1, hw: tuple = (224, 224)):
    model_bytes = export_torchvision(name, batch, hw=hw)
    feeds = {"x": np.random.default_rng(0).standard_normal((batch, 3) + tuple(hw)).astype(np.float32)}
    return model_bytes, feeds, conv_matmul_flops(onnx.load_from_string(model_bytes))


CASES = {f"{n}_b1": functools.partial(torchvision_case, n) for n in CLASSIFIERS}
CASES.update({f"{n}_b8": functools.partial(torchvision_case, n, 8) for n in CLASSIFIERS})
CASES["resnet18_193x257"] = functools.partial(torchvision_case, "resnet18", 1, (193, 257))
