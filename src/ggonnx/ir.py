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
