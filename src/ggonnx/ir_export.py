"""ggonnx's IR written back as an ONNX model (SessionOptions.optimized_model_filepath, GGUF files)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ggonnx.errors import ModelLoadError
from ggonnx.ir import Graph

PROTOBUF_LIMIT = 2**31 - 2**20  # a model this big keeps its weights in an external data file


def graph_to_model(graph: Graph, stored: frozenset | set = frozenset()) -> onnx.ModelProto:
    """The IR as an ONNX model, without the initializers in ``stored``."""
    def info(t, kind):
        if t.dtype is None or t.dtype == object:
            raise ModelLoadError(f"{kind} '{t.name}' is not a tensor: only tensor models can be written")
        shape = None if t.shape is None else list(t.shape)
        return helper.make_tensor_value_info(t.name, helper.np_dtype_to_tensor_dtype(t.dtype), shape)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in graph.initializers.items() if k not in stored]
    protos = []
    for n in graph.nodes:  # named as in the IR, so placement reports read the same
        proto = onnx.NodeProto()
        proto.CopyFrom(n.proto)
        proto.name = n.name
        protos.append(proto)
    g = helper.make_graph(protos, graph.model_info.get("graph_name") or "ggonnx",
                          [info(t, "input") for t in graph.inputs], [info(t, "output") for t in graph.outputs], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in graph.opsets.items()],
                              producer_name=graph.producer)
    for k, v in graph.metadata.items():
        model.metadata_props.add(key=k, value=v)
    return model


def save_graph(graph: Graph, path) -> None:
    """Write the (optimized) IR as an ONNX file; weights go to external data past protobuf's 2 GB."""
    if graph.placeholder_weights:
        raise ModelLoadError("this graph's weights are stored in ggml types (a GGUF file): "
                             "write the optimized model from the float32 .onnx")
    model = graph_to_model(graph)
    big = sum(np.asarray(v).nbytes for v in graph.initializers.values()) > PROTOBUF_LIMIT
    onnx.save_model(model, str(path), save_as_external_data=big)
