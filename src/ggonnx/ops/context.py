"""Values and the context a lowering function works in."""
from __future__ import annotations

import numpy as np

from ggonnx.emitter import GT, Emitter, onnx_to_ne
from ggonnx.errors import GraphBuildError, UnsupportedOpError
from ggonnx.ir import Node


class Value:
    """One ONNX value during planning: its concrete shape, and where it lives.

    ``const`` is set when the value is known at plan time (initializers,
    Constant nodes, folded shape arithmetic); ``gt`` once it exists in ggml.
    """
    __slots__ = ("name", "shape", "gt", "const", "static")

    def __init__(self, name: str, shape: tuple, gt: GT | None = None, const: np.ndarray | None = None,
                 static: bool = False):
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.gt = gt
        self.const = const
        # static: the same data for every input signature (initializers, Constant nodes), so it
        # may be stored once per session; folded values can depend on input shapes.
        self.static = static

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __repr__(self):
        where = "const" if self.const is not None else f"slot {self.gt.slot}" if self.gt else "?"
        return f"Value({self.name!r}, {self.shape}, {where})"


class LoweringContext:
    def __init__(self, emitter: Emitter):
        self.e = emitter
        self.node: Node | None = None

    # -- attributes ------------------------------------------------------------
    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def unsupported(self, what: str):
        raise UnsupportedOpError(f"{self.node.describe()}: {what}")

    # -- values ----------------------------------------------------------------
    def tensor(self, v: Value) -> GT:
        """The value as a ggml tensor; constants become session weights (uploaded once)."""
        if v.gt is None:
            if v.const is None:
                raise UnsupportedOpError(f"{self.node.describe()}: value '{v.name}' has no data")
            v.gt = self.weight(v, "raw", lambda c: c, v.shape)
        return v.gt

    def weight(self, v: Value, layout: str, transform, shape) -> GT:
        """A constant input stored once in ggml, as ``transform(const)`` of ONNX shape ``shape``.

        The layout name keys the stored copy, so every plan of the session shares it.
        """
        if not v.static:
            return self.e.const(transform(np.asarray(v.const, dtype=np.float32)))
        return self.e.weight((v.name, layout), lambda: transform(np.asarray(v.const, dtype=np.float32)), shape)

    def const_input(self, v: Value | None, what: str) -> np.ndarray:
        if v is None or v.const is None:
            self.unsupported(f"input '{what}' must be a constant known when the plan is built")
        return v.const

    def output(self, gt: GT, shape, index: int = 0) -> Value:
        shape = tuple(int(d) for d in shape)
        if onnx_to_ne(shape) != gt.ne:
            raise GraphBuildError(f"{self.node.describe()}: lowering produced ggml shape {gt.ne} for ONNX shape {shape}")
        return Value(self.node.outputs[index], shape, gt=gt)

    def const_output(self, array: np.ndarray, index: int = 0) -> Value:
        array = np.asarray(array)
        return Value(self.node.outputs[index], array.shape, const=array)
