"""Small models built with onnx.helper, shared by the end-to-end and API tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(rng, name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32), name)


def mlp(seed=0, d_in=64, hidden=256, d_out=10, batch="N") -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w2", "b2"], ["h3"], transB=1),
        helper.make_node("Tanh", ["h3"], ["h4"]),
        helper.make_node("MatMul", ["h4", "w3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    inits = [_init(rng, "w1", d_in, hidden), _init(rng, "b1", hidden), _init(rng, "w2", hidden, hidden),
             _init(rng, "b2", hidden), _init(rng, "w3", hidden, d_out)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, d_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, d_out])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def small_cnn(seed=0, batch="N") -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "dw.w", "dw.b"], ["c2"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Sigmoid", ["c2"], ["s2"]),
        helper.make_node("Mul", ["c2", "s2"], ["silu"]),
        helper.make_node("Conv", ["silu", "c3.w"], ["c3"], strides=[2, 2], group=2),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], transB=1),
    ]
    inits = [_init(rng, "c1.w", 16, 3, 3, 3), _init(rng, "c1.b", 16), _init(rng, "dw.w", 16, 1, 3, 3),
             _init(rng, "dw.b", 16), _init(rng, "c3.w", 32, 8, 1, 1), _init(rng, "fc.w", 10, 32),
             _init(rng, "fc.b", 10)]
    graph = helper.make_graph(nodes, "cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 24, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
