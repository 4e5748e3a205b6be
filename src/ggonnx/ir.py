"""The graph IR the importer produces and the planner consumes.

Plain data: nodes in topological order, tensors as numpy arrays, attributes as
Python values. Nothing here knows about ggml.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    name: str
    op_type: str
    domain: str
    inputs: list[str]        # '' marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, object]
    opset: int               # opset version of the node's domain
    proto: object = None     # the NodeProto, for host evaluation of folded nodes
    # Outer-scope values its subgraphs (If/Loop/Scan bodies) read; they are inputs too.
    implicit_inputs: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"node '{self.name}' ({self.op_type})"

    def rewrite(self, inputs: list | None = None, outputs: list | None = None, drop_attrs=()) -> None:
        """Change the node's inputs, outputs or attributes, in the IR and in its proto alike
        (host kernels run the proto)."""
        import onnx

        proto = onnx.NodeProto()
        proto.CopyFrom(self.proto)
        if inputs is not None:
            self.inputs = list(inputs)
            del proto.input[:]
            proto.input.extend(self.inputs)
        if outputs is not None:
            self.outputs = list(outputs)
            del proto.output[:]
            proto.output.extend(self.outputs)
        if drop_attrs:
            self.attrs = {k: v for k, v in self.attrs.items() if k not in drop_attrs}
            kept = [a for a in proto.attribute if a.name not in drop_attrs]
            del proto.attribute[:]
            proto.attribute.extend(kept)
        self.proto = proto


@dataclass
class TensorInfo:
    name: str
    dtype: np.dtype | None   # None for non-tensor types (sequences, maps)
    shape: tuple | None      # ints for static dims, strings for symbolic ones, None if unknown rank
    type_str: str            # onnxruntime-style type string, e.g. "tensor(float)"


@dataclass
class Graph:
    nodes: list[Node]
    inputs: list[TensorInfo]          # graph inputs that are not initializers
    outputs: list[TensorInfo]
    initializers: dict[str, np.ndarray]
    opsets: dict[str, int]
    producer: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # what onnxruntime's ModelMetadata reports besides producer and metadata: graph_name,
    # graph_description, domain, description, version
    model_info: dict = field(default_factory=dict)
    # initializers that came quantized (onnxruntime's MatMulNBits, int8 MatMulInteger weights):
    # name -> (ggml type, the bytes of B^T's rows in that type, (N, K)); the initializer itself
    # holds the dequantized float32 B [K, N]
    typed_weights: dict[str, tuple] = field(default_factory=dict)
    # typed weights loaded from a GGUF file: their initializers are zero-memory placeholders of
    # the right shape; name -> how the stored rows lay out the initializer ("T": B^T, "raw": as
    # is, "conv": [OC, KH*KW*C]), to dequantize them where values are needed
    placeholder_weights: dict[str, str] = field(default_factory=dict)
    # memory maps (mmap objects) initializers and typed weights are views of: their resident
    # pages are dropped once uploaded (ggonnx.memory)
    mapped: list = field(default_factory=list)
