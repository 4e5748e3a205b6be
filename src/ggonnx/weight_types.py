"""The ggml type each weight is stored in: ``Session(model, weights="q8_0")``.

Activations stay float32; only the weights of MatMul / Gemm (a constant 2-D B), Conv and the
tables Gather reads rows of (embeddings) are converted, each once at load with ggml's own
quantizers. The rule, per weight:

- fewer than ``MIN_ELEMENTS`` values: float32 (too small to matter, and a classifier's tiny
  head stays exact);
- the type's block must divide the depth K, the axis ggml quantizes along. When it does not, a
  256-value K-quant falls back to the 32-value type of about its size (``FALLBACK``), and when
  no block fits the weight stays float32;
- everything else (biases, norms, attention's activation-by-activation products) stays float32.

The placement report lists the type each converted weight got (``Session.weight_types()``).
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.errors import GraphBuildError

F32 = _core.TYPE_F32
TYPES = _core.weight_types()  # {name: (ggml id, block, bytes per block, activations' type)}
BF16 = TYPES["bf16"][0]
MIN_ELEMENTS = 4096
# a K-quant's 32-value stand-in where the depth is not a multiple of 256 (as llama.cpp does)
FALLBACK = {"q2_K": "iq4_nl", "q3_K": "iq4_nl", "q4_K": "iq4_nl", "iq4_xs": "iq4_nl", "iq3_xxs": "iq4_nl",
            "iq3_s": "iq4_nl", "iq2_s": "iq4_nl", "iq1_m": "iq4_nl", "tq1_0": "iq4_nl", "tq2_0": "iq4_nl",
            "q5_K": "q5_0", "q6_K": "q8_0", "nvfp4": "mxfp4", "q1_0": "q4_0", "q2_0": "q4_0"}


def rows_to_initializer(rows, kind: str, shape: tuple):
    """Invert the layout typed rows give an initializer of ``shape`` (Graph.placeholder_weights)."""
    if kind == "T":
        return np.ascontiguousarray(rows.T)
    if kind == "conv":
        oc, c, kh, kw = shape
        return np.ascontiguousarray(rows.reshape(oc, kh, kw, c).transpose(0, 3, 1, 2))
    return rows.reshape(shape)


def typed_rows_layout(graph, name: str):
    """(layout kind, rows of weight ``name`` as the typed lowerings read them, (N, K)) when every
    reader of the initializer is one that takes typed rows, else None."""
    w = graph.initializers[name]
    kinds = set()
    for node in graph.nodes:
        for i, inp in enumerate(node.inputs):
            if inp != name:
                continue
            if i == 1 and node.op_type == "MatMul" and not node.domain and w.ndim == 2:
                kinds.add("T")
            elif i == 1 and node.op_type == "Gemm" and not node.domain and w.ndim == 2 and \
                    not node.attrs.get("transA", 0) and float(node.attrs.get("alpha", 1.0)) == 1.0:
                kinds.add("raw" if node.attrs.get("transB", 0) else "T")
            elif i == 1 and node.op_type == "Conv" and not node.domain and w.ndim == 4 and \
                    int(node.attrs.get("group", 1)) == 1:
                kinds.add("conv")
            elif i == 0 and node.op_type == "Gather" and not node.domain and w.ndim == 2 and \
                    int(node.attrs.get("axis", 0)) in (0, -2):
                kinds.add("raw")  # an embedding table: its rows as they are
            else:
                return None
        if name in node.implicit_inputs:
            return None
    if len(kinds) != 1 or name in {o.name for o in graph.outputs} or w.dtype != np.float32:
        return None
    kind = kinds.pop()
    if kind == "T":
        return kind, lambda: np.ascontiguousarray(w.T), (w.shape[1], w.shape[0])
    if kind == "raw":
        return kind, lambda: w, w.shape
    oc = w.shape[0]
    return kind, lambda: np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(oc, -1)), (oc, w.size // oc)


def release_float_copies(graph, store) -> list[str]:
    """After a plan: initializers uploaded only as typed rows (converted by ``store``, an
    emitter.WeightStore, and read only by typed lowerings) give up their float32 arrays to a
    zero-memory placeholder: matmul and conv weights, whose lowerings take the same uploaded
    weight in every plan. Tables a Gather reads keep their float32 values, which a Gather by
    constant positions folds from at plan time, in every plan alike. Returns their names."""
    released = []
    if store.policy is None or not store.policy.explicit:
        return released
    for name, tid in store.take_converted().items():   # each weight considered once, after its upload
        layout = typed_rows_layout(graph, name) if name in graph.initializers else None
        if layout is None or name in graph.placeholder_weights or \
                any(node.op_type == "Gather" and node.inputs[:1] == [name] for node in graph.nodes):
            continue
        graph.typed_weights[name] = (_core.type_name(tid), None, layout[2])
        graph.placeholder_weights[name] = layout[0]
        graph.initializers[name] = np.broadcast_to(np.zeros((), np.float32), graph.initializers[name].shape)
        store.policy.placeholders.add(name)
        released.append(name)
    return released


def placeholder_values(graph, name: str):
    """The float32 values of a GGUF file's typed weight: its blocks dequantized (plan-time
    folds of it, such as a Gather by constant positions, compute with what ggml would)."""
    tname, data, (n, k) = graph.typed_weights[name]
    if data is None:
        raise GraphBuildError(f"weight '{name}' was uploaded as {tname} rows and its float32 values released; "
                              f"this plan needs them as values")
    rows = _core.dequantize(TYPES[tname][0], data, (n, k))
    return rows_to_initializer(rows, graph.placeholder_weights[name], graph.initializers[name].shape)


class WeightPolicy:
    """Chooses each weight's ggml type from the type the session asked for. Without a request,
    weights a model ships quantized (``prebuilt``: Graph.typed_weights) keep their type, and
    the rest are float32."""

    def __init__(self, requested: str | None = None):
        self.explicit = requested is not None
        self.prebuilt: dict[str, tuple] = {}
        self.placeholders: set[str] = set()  # typed weights with no float32 values (a GGUF file's)
        requested = requested or "f32"
        if requested not in TYPES:
            raise ValueError(f"unknown weight type {requested!r}; ggml types a weight may take: "
                             f"{', '.join(TYPES)}")
        self.requested = requested
        self.type_id = TYPES[requested][0]

    def choose(self, k: int, n: int, name: str | None = None) -> int:
        """The ggml type of weight ``name``, of ``n`` rows over depth ``k``."""
        if not self.explicit and name in self.prebuilt:
            return TYPES[self.prebuilt[name][0]][0]
        if self.type_id == F32 or k * n < MIN_ELEMENTS:
            return F32
        name = self.requested
        while name is not None:
            if k % TYPES[name][1] == 0:
                return TYPES[name][0]
            name = FALLBACK.get(name)
        return F32

    def prebuilt_rows(self, name: str, wtype: int):
        """(bytes of the weight's rows, (N, K)) as the model shipped them in type ``wtype``, or None."""
        entry = self.prebuilt.get(name)
        if entry is None or entry[1] is None or (self.explicit and name not in self.placeholders) or \
                TYPES[entry[0]][0] != wtype:
            return None
        return entry[1], entry[2]

    def __repr__(self):
        return f"WeightPolicy({self.requested!r})"
