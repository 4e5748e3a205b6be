"""`ggonnx info`: what a model is (opsets, producer, metadata, parameters) and where its nodes run."""
from __future__ import annotations

import numpy as np

from ggonnx.cli_inputs import open_session, resolve_shapes


def _mb(nbytes: float) -> str:
    if nbytes < 1e3:
        return f"{int(nbytes)} B"
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.1f} KB"


def onnx_summary(model) -> dict:
    """Producer, opsets, metadata and {dtype: [tensors, values, bytes]} of an ONNX model's
    initializers (``model``: path or ModelProto; external data is not read)."""
    import onnx
    from onnx import helper

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model, load_external_data=False)
    params = {}
    for t in list(proto.graph.initializer) + [sp.values for sp in proto.graph.sparse_initializer]:
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
            name, itemsize = dtype.name, dtype.itemsize
        except (KeyError, TypeError, ValueError):
            name, itemsize = onnx.TensorProto.DataType.Name(t.data_type).lower(), 0
        n = int(np.prod(t.dims, dtype=np.int64))
        row = params.setdefault(name, [0, 0, 0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + n, row[2] + n * itemsize
    return {"producer": " ".join(p for p in (proto.producer_name, proto.producer_version) if p),
            "ir_version": proto.ir_version, "model_version": proto.model_version, "domain": proto.domain,
            "graph": proto.graph.name, "doc": proto.doc_string,
            "opsets": {op.domain or "ai.onnx": op.version for op in proto.opset_import},
            "metadata": {p.key: p.value for p in proto.metadata_props}, "params": params,
            "shapes": {t.name: tuple(t.dims) for t in proto.graph.initializer}}


def gguf_summary(path) -> dict:
    """The same for a ggonnx GGUF file, from its stored (already optimized) graph; typed weights
    are counted under their ggml type."""
    from ggonnx import gguf_file

    graph = gguf_file.load_graph(path)
    params = {}
    for name, w in graph.initializers.items():
        typed = graph.typed_weights.get(name)
        kind = typed[0] if typed is not None else np.asarray(w).dtype.name
        nbytes = typed[1].nbytes if typed is not None and typed[1] is not None else np.asarray(w).nbytes
        row = params.setdefault(kind, [0, 0, 0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + int(np.prod(np.shape(w))), row[2] + nbytes
    return {"producer": graph.producer, "opsets": {d or "ai.onnx": v for d, v in graph.opsets.items()},
            "metadata": dict(graph.metadata), "params": params,
            "shapes": {k: np.shape(v) for k, v in graph.initializers.items()}}


def _print_summary(s: dict) -> None:
    extra = [f"{k} {s[k]}" for k in ("ir_version", "model_version") if s.get(k)]
    extra += [f"{k} {s[k]!r}" for k in ("domain", "graph") if s.get(k)]
    print(f"producer: {s['producer'] or '(not set)'}" + (f"   {'   '.join(extra)}" if extra else ""))
    if s.get("doc"):
        print(f"doc: {' '.join(s['doc'].split())[:200]}")
    print(f"opsets: {', '.join(f'{d} {v}' for d, v in s['opsets'].items()) or '(none)'}")
    for k, v in s["metadata"].items():
        print(f"metadata {k}: {' '.join(v.split())[:200]}")
    params = s["params"]
    total = sum(r[1] for r in params.values())
    print(f"parameters: {total:,} in {sum(r[0] for r in params.values())} initializers, "
          f"{_mb(sum(r[2] for r in params.values()))}")
    for kind, (n, count, nbytes) in sorted(params.items(), key=lambda kv: -kv[1][2]):
        print(f"  {kind:<10} {n:>5} tensors  {count:>14,} values  {_mb(nbytes):>10}")


def _print_weight_types(sess, shapes: dict, requested) -> None:
    """Counts and sizes per ggml type of the weights a plan stored in a type other than float32."""
    from ggonnx.weight_types import TYPES

    by_type = {}
    for name, wtype in sess.weight_types().items():
        row = by_type.setdefault(wtype, [0, 0, 0])
        n = int(np.prod(shapes[name])) if name in shapes else 0
        block, block_bytes = TYPES[wtype][1:3] if wtype in TYPES else (1, 0)
        row[0], row[1], row[2] = row[0] + 1, row[1] + n, row[2] + n // block * block_bytes
    if not by_type and requested is None:
        return
    print(f"\nweights in ggml{f' (--weights {requested})' if requested else ''}: "
          f"{_mb(sess.weight_bytes)} held; the weights not listed are float32")
    for wtype, (n, count, nbytes) in sorted(by_type.items()):
        print(f"  {wtype:<10} {n:>5} tensors  {count:>14,} values  {_mb(nbytes):>10}")


def _print_placement(placement) -> None:
    width = max([len(p.node) for p in placement] + [4])
    print(f"\n{'node':<{width}}  {'op':<20} where  detail")
    for p in placement:
        print(f"{p.node:<{width}}  {p.op_type:<20} {p.where:<6} {p.detail}")
    in_ggml = sum(p.where == "ggml" for p in placement)
    folded = sum(p.detail == "folded at plan time" for p in placement)
    total = sum(p.flops for p in placement) or 1
    share = sum(p.flops for p in placement if p.where == "ggml") / total
    print(f"\n{in_ggml} of {len(placement)} nodes run in ggml, {folded} folded at plan time, "
          f"{len(placement) - in_ggml - folded} on the host; {share:.1%} of FLOPs in ggml")


def cmd_info(args) -> int:
    """Print the model's description, inputs, outputs, parameters and placement table."""
    from ggonnx import gguf_file
    from ggonnx.errors import GgonnxError

    sess, model, label, _ = open_session(args)
    summary = gguf_summary(model) if gguf_file.is_gguf(model) else onnx_summary(model)
    print(f"model: {label}")
    _print_summary(summary)
    for kind, items in (("input ", sess.get_inputs()), ("output", sess.get_outputs())):
        for a in items:
            print(f"{kind} {a.name}: {a.type} {a.shape}")
    shapes = resolve_shapes(sess.get_inputs(), dict(args.shape or []), dict(args.dim or []), args.batch)
    not_tensors = [a.name for a in sess.get_inputs() if not a.type.startswith("tensor(")]
    if not_tensors:
        # placement is traced on zeros, and a sequence, map or optional has no zeros to trace on
        print(f"\nplacement: not traced (input {', '.join(map(repr, not_tensors))} is not a tensor; "
              f"run the model from Python to plan it)")
        return 0
    try:
        placement = sess.placement(shapes)
    except GgonnxError as exc:  # e.g. a host kernel that rejects zeros (data that is really a shape)
        print(f"\nplacement: not traced on zeros of {shapes}: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return 0
    _print_weight_types(sess, summary["shapes"], args.weights)
    _print_placement(placement)
    return 0

