"""GGUF files of ggonnx: a model's optimized graph with its weights already in ggml types.

``save_quantized(model, path, weights="q4_K")`` quantizes once and writes; ``Session(path)``
opens the file like an .onnx and uploads the stored blocks as they are (no quantizer runs), the
file memory-mapped by PyPI's ``gguf`` reader. Layout (GGUF v3, ggml's own format, so gguf's
tools can list and check it):

- KV ``general.architecture`` = "ggonnx", ``ggonnx.format`` = 1, ``ggonnx.weights`` = the
  requested type, ``ggonnx.node_opsets`` (the opset of each stored node: fused nodes are newer
  than the model), ``ggonnx.tensor_names`` / ``ggonnx.tensor_shapes`` / ``ggonnx.tensor_layouts``
  (per tensor ``t{i}``: the initializer it holds, its ONNX shape, how typed rows lay it out:
  "T" B^T, "raw" as is, "conv" [OC, KH*KW*C]; "" for plain values);
- tensor ``ggonnx.model``: the graph as ONNX protobuf bytes, without the tensors below;
- tensors ``t{i}``: a MatMul / Gemm / Conv weight as its rows in a ggml type (B^T [N, K], a
  conv's [OC, KH*KW*C] in (ky, kx, c) order, an embedding table as is: the layout the
  lowerings read), or a large
  initializer's plain values.

A typed weight has no float32 copy in the loaded graph (a zero-memory placeholder stands in for
it); it is only written when every reader of the initializer is a lowering that takes the rows.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from ggonnx import _core
from ggonnx.errors import ModelLoadError
from ggonnx.importer import import_model, load_model
from ggonnx.ir_export import graph_to_model
from ggonnx.ir import Graph
from ggonnx.weight_types import F32, WeightPolicy, typed_rows_layout

MAGIC = b"GGUF"
FORMAT = 1
MODEL_TENSOR = "ggonnx.model"
INLINE_BYTES = 64 << 10  # initializers below this stay inside the ONNX bytes


def is_gguf(model) -> bool:
    if isinstance(model, (bytes, bytearray, memoryview)) and bytes(model[:4]) == MAGIC:
        raise ModelLoadError("GGUF files are opened by path (they are memory-mapped), not as bytes")
    if isinstance(model, (str, os.PathLike)) and os.path.isfile(model):
        with open(model, "rb") as fh:
            return fh.read(4) == MAGIC
    return False


def save_quantized(model, path, weights: str | None = "q8_0", threads: int | None = None) -> dict:
    """Write ``model`` (path, bytes or ModelProto) as a GGUF file with its MatMul / Gemm / Conv
    weights in ggml type ``weights`` (the rule of ggonnx.weight_types; None keeps only the types
    an onnxruntime-quantized model ships). Returns {initializer: type} of the typed weights."""
    import gguf

    graph = import_model(load_model(model))
    policy = WeightPolicy(weights)
    policy.prebuilt = graph.typed_weights
    threads = threads or len(os.sched_getaffinity(0))
    writer = gguf.GGUFWriter(str(path), arch="ggonnx")
    names, shapes, kinds, tensors, typed = [], [], [], [], {}
    for name, w in graph.initializers.items():
        reader = typed_rows_layout(graph, name)
        wtype = policy.choose(reader[2][1], reader[2][0], name) if reader is not None else F32
        if wtype != F32:
            shipped = policy.prebuilt_rows(name, wtype)
            rows = shipped[0] if shipped is not None else _core.quantize(wtype, reader[1](), threads)
            n = reader[2][0]
            tensors.append((np.asarray(rows, dtype=np.uint8).reshape(n, -1), gguf.GGMLQuantizationType(wtype)))
            typed[name] = _core.type_name(wtype)
        elif np.asarray(w).nbytes >= INLINE_BYTES and np.asarray(w).dtype in (np.float32, np.float16, np.int8, np.int16,
                                                                                np.int32, np.int64, np.float64):
            tensors.append((np.ascontiguousarray(w), None))
        else:
            continue
        names.append(name)
        shapes.append(",".join(str(d) for d in np.shape(w)))
        kinds.append(reader[0] if wtype != F32 else "")
    onnx_bytes = graph_to_model(graph, set(names)).SerializeToString()
    writer.add_uint32("ggonnx.format", FORMAT)
    writer.add_string("ggonnx.weights", weights or "")
    writer.add_array("ggonnx.node_opsets", [int(n.opset) for n in graph.nodes])
    writer.add_array("ggonnx.tensor_names", names or [""])
    writer.add_array("ggonnx.tensor_shapes", shapes or [""])
    writer.add_array("ggonnx.tensor_layouts", kinds or [""])
    writer.add_tensor(MODEL_TENSOR, np.frombuffer(onnx_bytes, dtype=np.int8))
    for i, (data, raw_dtype) in enumerate(tensors):
        writer.add_tensor(f"t{i}", data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=True)
    writer.close()
    return typed


def _field(reader, key):
    field = reader.fields.get(key)
    if field is None:
        raise ModelLoadError(f"not a ggonnx GGUF file: no '{key}'")
    return field.contents()


def load_graph(path) -> Graph:
    """The graph of a ggonnx GGUF file, typed weights as placeholders with their stored rows."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:
        raise ModelLoadError(f"could not read the GGUF file {path}: {exc}") from exc
    if _field(reader, "general.architecture") != "ggonnx" or _field(reader, "ggonnx.format") != FORMAT:
        raise ModelLoadError(f"{path} is a GGUF file, but not one ggonnx wrote (format {FORMAT})")
    names, shapes = _field(reader, "ggonnx.tensor_names"), _field(reader, "ggonnx.tensor_shapes")
    kinds, opsets = _field(reader, "ggonnx.tensor_layouts"), _field(reader, "ggonnx.node_opsets")
    tensors = {t.name: t for t in reader.tensors}
    if MODEL_TENSOR not in tensors:
        raise ModelLoadError(f"{path}: no '{MODEL_TENSOR}' tensor")
    try:
        proto = onnx.load_from_string(tensors[MODEL_TENSOR].data.tobytes())
    except Exception as exc:
        raise ModelLoadError(f"{path}: the stored ONNX graph does not parse: {exc}") from exc
    external, typed, layouts = {}, {}, {}
    for i, (name, shape_s, kind) in enumerate(zip(names, shapes, kinds)):
        if not name:
            continue
        t = tensors.get(f"t{i}")
        if t is None:
            raise ModelLoadError(f"{path}: tensor t{i} ('{name}') is missing")
        shape = tuple(int(d) for d in shape_s.split(",")) if shape_s else ()
        if kind:
            tid = int(t.tensor_type)
            n, k = int(t.shape[1]), int(t.shape[0])  # gguf lists ggml's ne: K first
            if tid not in {v[0] for v in _core.weight_types().values()} or \
                    t.data.nbytes != n * _core.row_bytes(tid, k) or n * k != int(np.prod(shape)):
                raise ModelLoadError(f"{path}: tensor t{i} ('{name}') does not hold a {shape} weight")
            if kind not in ("T", "raw", "conv"):
                raise ModelLoadError(f"{path}: tensor t{i} ('{name}') has an unknown layout {kind!r}")
            typed[name] = (_core.type_name(tid), np.asarray(t.data).reshape(-1).view(np.uint8), (n, k))
            layouts[name] = kind
            external[name] = np.broadcast_to(np.zeros((), np.float32), shape)
        else:
            data = np.asarray(t.data)
            if data.size != int(np.prod(shape)):
                raise ModelLoadError(f"{path}: tensor t{i} ('{name}') has {data.size} values for shape {shape}")
            external[name] = data.reshape(shape)
    proto.graph.input.extend(helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
                             for k, v in external.items())
    graph = import_model(proto, external=external, node_opsets=list(opsets))
    graph.typed_weights.update(typed)
    graph.placeholder_weights.update(layouts)
    mm = getattr(reader.data, "_mmap", None)
    if mm is not None:
        graph.mapped.append(mm)
    return graph
