"""The small model `ggonnx run` uses when no path is given: a seeded random CNN classifier."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_default_model(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-MaxPool, Conv-Relu, GlobalAveragePool, Gemm, Softmax on a [N, 3, 32, 32] image."""
    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        scale = 1.0 / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else shape[0])
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["feat"]),
        helper.make_node("Gemm", ["feat", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    inits = [weight("conv1.w", 16, 3, 3, 3), weight("conv1.b", 16), weight("conv2.w", 32, 16, 3, 3),
             weight("conv2.b", 32), weight("fc.w", 10, 32), weight("fc.b", 10)]
    graph = helper.make_graph(
        nodes, "ggonnx_default_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ggonnx")
    onnx.checker.check_model(model)
    return model
