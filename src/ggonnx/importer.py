"""ONNX ModelProto -> ggonnx.ir.Graph.

Validates what would otherwise crash or silently misbehave later: unreadable
protobufs, nodes that use values nobody produces (dangling inputs or cycles),
unknown domains.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

from ggonnx.contrib_ops import expand_contrib_ops, has_contrib_ops
from ggonnx.errors import InvalidArgument, InvalidGraph, InvalidProtobuf, ModelLoadError, NoSuchFile
from ggonnx.control_flow import graph_free_names, subgraphs
from ggonnx.ir import Graph, Node, TensorInfo
from ggonnx.model_file import MappedModel, map_model_file
from ggonnx.normalize import normalize
from ggonnx.optimize import optimize
from ggonnx.validate import check_node

KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}  # the last: contrib_ops.py


def load_model(model) -> onnx.ModelProto:
    """Accept a path, bytes or a ModelProto; raise ModelLoadError on anything unreadable."""
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            proto = onnx.load_from_string(bytes(model))
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.is_file():
                raise NoSuchFile(f"model file not found: {path}")
            proto = onnx.load(str(path))
        else:
            raise ModelLoadError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")
    except ModelLoadError:
        raise
    except Exception as exc:  # protobuf DecodeError, external data errors, ...
        raise InvalidProtobuf(f"could not parse the ONNX model: {exc}") from exc
    return _nonempty(proto)


def _nonempty(proto: onnx.ModelProto) -> onnx.ModelProto:
    if not proto.graph.node and not proto.graph.output:
        raise InvalidProtobuf("the ONNX model has an empty graph (not an ONNX file?)")
    _check_text(proto.graph)
    return proto


def _check_text(graph: onnx.GraphProto) -> None:
    """Names must be text: protobuf hands a string field that is not valid UTF-8 (a damaged
    file) back as bytes, which nothing downstream expects."""
    def bad(value) -> bool:
        return not isinstance(value, str)

    for vi in list(graph.input) + list(graph.output):
        if bad(vi.name):
            raise InvalidProtobuf(f"a graph input or output name is not valid UTF-8: {vi.name!r}")
    for t in graph.initializer:
        if bad(t.name):
            raise InvalidProtobuf(f"an initializer name is not valid UTF-8: {t.name!r}")
    for i, n in enumerate(graph.node):
        fields = [n.op_type, n.domain, n.name, *n.input, *n.output, *(a.name for a in n.attribute)]
        if any(bad(v) for v in fields):
            raise InvalidProtobuf(f"node {i} ({n.op_type!r}): a name, op type or domain is not valid UTF-8")
        for sub in subgraphs(n):
            _check_text(sub)


def open_model(model) -> tuple[onnx.ModelProto, MappedModel | None, dict]:
    """load_model, but a model file's big initializers are read in place (model_file.py):
    (proto without their bytes, the mapped file, {name: read-only view}). Anything the
    mapping cannot take (bytes, a ModelProto, a file it cannot parse) loads as before."""
    mapped_file = map_model_file(model)
    if mapped_file is not None:
        try:
            proto, views = mapped_file.load()
        except Exception:  # noqa: BLE001 -- load_model parses it again and names what is wrong
            mapped_file.close()
        else:
            return _nonempty(proto), mapped_file, views
    return load_model(model), None, {}


def _type_string(elem_type: int) -> str:
    names = {
        onnx.TensorProto.FLOAT: "float", onnx.TensorProto.DOUBLE: "double",
        onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16",
        onnx.TensorProto.INT8: "int8", onnx.TensorProto.INT16: "int16",
        onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64",
        onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.UINT16: "uint16",
        onnx.TensorProto.UINT32: "uint32", onnx.TensorProto.UINT64: "uint64",
        onnx.TensorProto.BOOL: "bool", onnx.TensorProto.STRING: "string",
    }
    return f"tensor({names.get(elem_type, 'undefined')})"


def tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        return TensorInfo(vi.name, None, None, t.WhichOneof("value") or "unknown")
    tt = t.tensor_type
    dtype = None
    if tt.elem_type == onnx.TensorProto.STRING:
        dtype = np.dtype(object)
    elif tt.elem_type != 0:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
    shape = None
    if tt.HasField("shape"):
        dims = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value >= 0:  # -1 (some exporters): free, as onnxruntime
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(f"unk__{vi.name}_{i}")
        shape = tuple(dims)
    return TensorInfo(vi.name, dtype, shape, _type_string(tt.elem_type))


def _attr_value(attr: onnx.AttributeProto):
    if attr.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if attr.type == onnx.AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in value]
    return value


def _subgraph_free_names(node: onnx.NodeProto) -> list[str]:
    """Names the node's subgraphs read from the enclosing scope."""
    free: list[str] = []
    for sub in subgraphs(node):
        graph_free_names(sub, set(), free)
    return free


def _detached(node: onnx.NodeProto) -> onnx.NodeProto:
    """A copy of the node: protobuf sub-messages keep their whole model (weights included) alive."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    values = numpy_helper.to_array(sp.values)
    indices = numpy_helper.to_array(sp.indices).astype(np.int64)
    dims = tuple(int(d) for d in sp.dims)
    dense = np.zeros(int(np.prod(dims)), dtype=values.dtype)
    if indices.ndim == 2:  # [NNZ, rank] coordinates
        indices = np.ravel_multi_index(tuple(indices.T), dims)
    dense[indices.reshape(-1)] = values.reshape(-1)
    return dense.reshape(dims)


def _without_weights(proto: onnx.ModelProto, inputs: list) -> onnx.ModelProto:
    """The model with graph inputs ``inputs`` and its initializers turned into typed graph inputs:
    same types, no weight bytes."""
    light = onnx.ModelProto(ir_version=proto.ir_version)
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    g = proto.graph
    light.graph.node.extend(g.node)
    light.graph.output.extend(g.output)
    light.graph.value_info.extend(g.value_info)
    declared = {vi.name for vi in inputs}
    light.graph.input.extend(inputs)
    light.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                             for t in g.initializer if t.name not in declared)
    return light


# what onnx's strict inference says of a model onnxruntime refuses too: a type between nodes that
# disagrees, a type an op's schema does not allow (Add on bool, Sub on uint8 before opset 14), a
# standard op in a model that imports no standard opset (onnxruntime's optimizer leaves out the
# com.microsoft import of its own fused ops: those load), an attribute value the op cannot take
_MODEL_ERRORS = ("inconsistent type", "type mismatch", "has unsupported type", "elem type differs",
                 "no opset import for domain  optype", "for attribute '", "has incorrect size")


# what strict inference also says of models onnxruntime loads (a declared shape the inferred one
# contradicts is a warning there; ops of domains onnx has no schema for are not inferred)
_LOADABLE = ("existing shape differ", "merge", "cannot infer type and shape for node", "no opset import",
             "no schema registered", "not registered", "unsupported domain")


def _node_inference_refused(message: str) -> bool:
    """An op's own shape or type inference refusing its node (an attribute it must have, a value
    out of its range): onnxruntime refuses those models at load, in any inference mode."""
    lower = message.lower()
    return ("(op_type:" in message and ("[shapeinferenceerror]" in lower or "[typeinferenceerror]" in lower)
            and not any(m in lower for m in _LOADABLE)
            and lower.count("inference error(s)") < 2)   # inside a function's body: onnx's own gaps


def _check_types(proto: onnx.ModelProto, inputs: list) -> dict:
    """Type mismatches between nodes are model errors: find them with onnx's type inference.

    Other inference complaints (ops onnx has no schema for, shapes it cannot infer) are
    left to planning, which knows the concrete shapes. Returns the graph outputs' inferred
    value infos by name (for outputs that declare no shape, as onnxruntime reports them).
    """
    light = _without_weights(proto, inputs)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        message = str(exc)
        if any(m in message.lower() for m in _MODEL_ERRORS) or _node_inference_refused(message):
            raise ModelLoadError(f"type error: {message}") from None
        if all(o.type.tensor_type.HasField("shape") for o in proto.graph.output):
            return {}
        try:  # what inference can still say, for the outputs' shapes only
            inferred = onnx.shape_inference.infer_shapes(light)
        except Exception:
            return {}
    except ValueError:  # protobuf too large to serialise (> 2 GB): nothing checked here
        return {}
    return {vi.name: vi for vi in inferred.graph.output}


def _value_ranks(proto: onnx.ModelProto, inputs: list, initializers: dict) -> dict:
    """Value name -> rank, where the model or onnx's shape inference states it."""
    light = _without_weights(proto, inputs)
    small = {t.name: t for t in proto.graph.initializer if int(np.prod(t.dims)) <= 64}  # axes, shapes
    kept = [vi for vi in light.graph.input if vi.name not in small]
    del light.graph.input[:]
    light.graph.input.extend(kept)
    light.graph.initializer.extend(small.values())
    if not any(op.domain == "com.microsoft" for op in light.opset_import):  # onnxruntime's optimizer omits it
        light.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    try:
        inferred = onnx.shape_inference.infer_shapes(light).graph
    except Exception:  # noqa: BLE001 -- ranks only pick among forms; unknown ones are refused later
        inferred = proto.graph
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in
             list(inferred.value_info) + list(inferred.input) + list(inferred.output)
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")}
    ranks.update({name: np.ndim(a) for name, a in initializers.items()})
    return ranks


def override_free_dims(inputs: list, by_name: dict, by_denotation: dict) -> list:
    """The graph inputs (ValueInfoProtos) with the named (or denoted) free dims fixed, as
    onnxruntime's SessionOptions.add_free_dimension_override_by_name/denotation do; an input that
    changes is a copy, the model itself is left as it is."""
    if not by_name and not by_denotation:
        return inputs
    out = []
    for vi in inputs:
        if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.HasField("shape"):
            fixed = onnx.ValueInfoProto()
            fixed.CopyFrom(vi)
            for d in fixed.type.tensor_type.shape.dim:
                value = by_name.get(d.dim_param) if d.HasField("dim_param") else None
                if value is None and d.denotation:
                    value = by_denotation.get(d.denotation)
                if value is not None:
                    d.dim_value = int(value)
            vi = fixed
        out.append(vi)
    return out


@dataclass(frozen=True)
class ImportOptions:
    """What onnxruntime's SessionOptions change about the graph itself."""
    optimized: bool = True                    # False: only the rewrites some ops need to run at all
    dims_by_name: tuple = ()                  # ((dim_param, size), ...) fixed in the graph inputs
    dims_by_denotation: tuple = ()            # ((denotation, size), ...)
    initializers: tuple = ()                  # ((name, array), ...) replacing the model's own
    fed_initializers: frozenset = frozenset()  # overridable initializers that stay graph inputs here


def import_model(proto: onnx.ModelProto, external: dict | None = None, node_opsets: list | None = None,
                 options: ImportOptions = ImportOptions(), mapped: dict | None = None) -> Graph:
    """The IR of ``proto``, normalized and optimized. A graph stored by ggonnx itself (a GGUF
    file) comes with ``external`` initializers (name -> array, declared as graph inputs of
    ``proto``) and ``node_opsets`` (its nodes' opsets): it is optimized already. ``mapped``:
    initializers of ``proto`` already read, as views of the model file (model_file.py)."""
    if proto.functions:  # model-local functions: inline them so every node is a plain op
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as exc:
            raise ModelLoadError(f"could not inline the model's local functions: {exc}") from exc
    opsets = {}
    for op in proto.opset_import:
        opsets[op.domain or ""] = int(op.version)
    if "" not in opsets and "ai.onnx" in opsets:
        opsets[""] = opsets["ai.onnx"]
    g = proto.graph
    try:
        mapped = mapped or {}
        initializers = {t.name: mapped[t.name] if t.name in mapped else numpy_helper.to_array(t)
                        for t in g.initializer}
        for sp in g.sparse_initializer:
            initializers[sp.values.name] = _sparse_to_dense(sp)
        initializers.update(external or {})
    except Exception as exc:
        raise ModelLoadError(f"could not read an initializer: {exc}") from exc
    for name, value in options.initializers:
        _replace_initializer(initializers, name, value)
    for name in options.fed_initializers:
        initializers.pop(name, None)

    graph_inputs = override_free_dims(list(g.input), dict(options.dims_by_name), dict(options.dims_by_denotation))
    inputs = [tensor_info(vi) for vi in graph_inputs if vi.name not in initializers]

    available = set(initializers) | {i.name for i in inputs}
    produced_later = {o for n in g.node for o in n.output if o}
    nodes = []
    if node_opsets is not None and len(node_opsets) != len(g.node):
        raise ModelLoadError(f"{len(node_opsets)} node opsets stored for {len(g.node)} nodes")
    for idx, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{idx}"
        domain = n.domain or ""
        if domain == "ai.onnx":
            domain = ""
        if domain not in KNOWN_DOMAINS and domain not in opsets:
            raise InvalidGraph(f"node '{name}' ({n.op_type}) uses unknown domain '{domain}'")
        implicit = _subgraph_free_names(n)
        for inp in list(n.input) + implicit:
            if inp and inp not in available:
                why = ("is produced by a later node (the graph has a cycle or is not topologically sorted)"
                       if inp in produced_later else "is not produced by any node, input or initializer")
                raise InvalidGraph(f"node '{name}' ({n.op_type}): input '{inp}' {why}")
        for out in n.output:
            if out and out in available:
                raise InvalidGraph(f"node '{name}' ({n.op_type}): output '{out}' is defined twice")
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if len(attrs) != len(n.attribute):  # as onnxruntime refuses it; a dict would keep the last
            seen = [a.name for a in n.attribute]
            dup = next(a for a in seen if seen.count(a) > 1)
            raise InvalidGraph(f"node '{name}' ({n.op_type}): attribute '{dup}' appears more than once")
        # a stored graph's fused nodes are newer than the model's opset (a Gelu at 20 in an
        # opset-17 gpt2): each is checked at its own
        opset = int(node_opsets[idx]) if node_opsets is not None else opsets.get(domain, opsets.get("", 1))
        nodes.append(Node(name, n.op_type, domain, list(n.input), list(n.output), attrs, opset, _detached(n),
                          implicit))
        check_node(nodes[-1])
        available.update(o for o in n.output if o)
    # onnx's type inference after the nodes' own checks: it segfaults on some out-of-range
    # attributes (a LayerNormalization axis of 2**31 with its Mean output)
    inferred_outputs = _check_types(proto, graph_inputs)
    outputs = [tensor_info(inferred_outputs.get(vi.name, vi)) if not vi.type.tensor_type.HasField("shape")
               else tensor_info(vi) for vi in g.output]
    for out in outputs:
        if out.name not in available:
            raise InvalidGraph(f"graph output '{out.name}' is not produced by any node")
    metadata = {p.key: p.value for p in proto.metadata_props}
    graph = Graph(nodes, inputs, outputs, initializers, opsets, proto.producer_name, metadata,
                  model_info=_model_info(proto))
    if has_contrib_ops(graph):
        expand_contrib_ops(graph, _value_ranks(proto, graph_inputs, initializers))
    normalize(graph)
    if node_opsets is None:
        optimize(graph, full=options.optimized)
    return graph


def _model_info(proto: onnx.ModelProto) -> dict:
    # onnxruntime reports an unset model_version as INT64_MAX
    return {"graph_name": proto.graph.name, "graph_description": proto.graph.doc_string, "domain": proto.domain,
            "description": proto.doc_string,
            "version": int(proto.model_version) if proto.HasField("model_version") else 2**63 - 1}


def _replace_initializer(initializers: dict, name: str, value) -> None:
    """SessionOptions.add_initializer: same name, dtype and shape as the model's (onnxruntime checks
    neither and computes garbage from a float64 array given for a float32 weight)."""
    old = initializers.get(name)
    if old is None:
        raise InvalidArgument(f"add_initializer('{name}'): the model has no initializer of that name")
    new = np.asarray(value)
    if new.dtype != old.dtype or new.shape != old.shape:
        raise InvalidArgument(f"add_initializer('{name}'): the model's initializer is {old.dtype} {list(old.shape)}, "
                              f"got {new.dtype} {list(new.shape)}")
    initializers[name] = new


def overridable_initializers(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that have an initializer: defaults a feed may replace (IR version >= 4)."""
    names = {t.name for t in proto.graph.initializer}
    return [vi for vi in proto.graph.input if vi.name in names]
