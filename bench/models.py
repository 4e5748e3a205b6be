"""Bench models built with onnx.helper: random weights, no downloads.

Every builder returns ``(model_bytes, feeds, flops)``; ``flops`` counts the
multiply-adds of MatMul/Gemm/Conv as 2 flops each, or is None where the model
has no such work. ``CASES`` maps a case name to its builder.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    """Accumulates nodes and random float32 weights; ``build`` returns the serialized model."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: dict[str, np.ndarray] = {}

    def weight(self, shape, scale: float = 1.0, offset: float = 0.0) -> str:
        name = f"w{len(self.weights)}"
        self.weights[name] = (self.rng.standard_normal(shape) * scale + offset).astype(np.float32)
        return name

    def node(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return out

    def build(self, inputs: dict[str, tuple], output: str) -> bytes:
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, n) for n, w in self.weights.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="ggonnx-bench")
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)  # fills the output shape
        onnx.checker.check_model(model)
        return model.SerializeToString()

    def feed(self, shape) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)


def matmul_chain(m: int, dims: list[int], relu: bool = True):
    """x[m, dims[0]] through MatMul layers dims[i] -> dims[i+1], Relu between layers."""
    g = GraphBuilder(f"matmul_chain_{m}x{'x'.join(map(str, dims))}")
    x, flops = "x", 0
    layers = list(zip(dims, dims[1:]))
    for i, (k, n) in enumerate(layers):
        x = g.node("MatMul", [x, g.weight((k, n), scale=1 / math.sqrt(k))])
        flops += 2 * m * k * n
        if relu and i < len(layers) - 1:
            x = g.node("Relu", [x])
    return g.build({"x": (m, dims[0])}, x), {"x": g.feed((m, dims[0]))}, flops


def single_matmul(m: int, k: int, n: int):
    return matmul_chain(m, [k, n])


def one_node(shape=(1, 16)):
    """A single Relu: measures per-call overhead."""
    g = GraphBuilder("one_relu")
    y = g.node("Relu", ["x"])
    return g.build({"x": shape}, y), {"x": g.feed(shape)}, None


def elementwise_chain(n_nodes: int = 200, width: int = 64):
    """Add, Mul, Relu, Sigmoid repeated on a [1, width] tensor: many tiny nodes."""
    g = GraphBuilder(f"elementwise_chain_{n_nodes}")
    x = "x"
    for i in range(n_nodes):
        op = ("Add", "Mul", "Relu", "Sigmoid")[i % 4]
        if op == "Add":
            x = g.node(op, [x, g.weight((width,), scale=0.1)])
        elif op == "Mul":
            x = g.node(op, [x, g.weight((width,), scale=0.1, offset=1.0)])
        else:
            x = g.node(op, [x])
    return g.build({"x": (1, width)}, x), {"x": g.feed((1, width))}, None


def small_cnn(size: int = 64, channels=(3, 16, 32, 64), classes: int = 10):
    """(Conv3x3 + Relu + MaxPool2) per stage, then GlobalAveragePool, Flatten, Gemm."""
    g = GraphBuilder("small_cnn")
    x, hw, flops = "x", size, 0
    for cin, cout in zip(channels, channels[1:]):
        w = g.weight((cout, cin, 3, 3), scale=1 / math.sqrt(cin * 9))
        x = g.node("Conv", [x, w, g.weight((cout,), scale=0.1)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        flops += 2 * cout * hw * hw * cin * 9
        x = g.node("MaxPool", [g.node("Relu", [x])], kernel_shape=[2, 2], strides=[2, 2])
        hw //= 2
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    x = g.node("Gemm", [x, g.weight((classes, channels[-1]), scale=1 / math.sqrt(channels[-1])),
                        g.weight((classes,), scale=0.1)], transB=1)
    flops += 2 * channels[-1] * classes
    shape = (1, channels[0], size, size)
    return g.build({"x": shape}, x), {"x": g.feed(shape)}, flops


def _single(m, k, n):
    return (f"matmul_{m}x{k}x{n}", functools.partial(single_matmul, m, k, n))


CASES = dict([
    ("mlp_128x768x3072", functools.partial(matmul_chain, 128, [768, 3072, 768])),
    ("layers3_512x4096", functools.partial(matmul_chain, 512, [4096] * 4)),
    _single(128, 768, 768),
    _single(128, 768, 3072),
    _single(128, 3072, 768),
    _single(512, 4096, 4096),
    _single(1, 768, 768),
    _single(8, 768, 768),
    _single(32, 256, 256),
    ("relu_1x16", one_node),
    ("chain200_1x64", elementwise_chain),
    ("cnn_3x64x64", small_cnn),
])
