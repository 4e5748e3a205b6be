"""Per input-shape signature: concrete shapes, constant folding, lowering, one ggml Plan.

``compile_plan`` walks the nodes once in topological order. Nodes whose inputs
are all known at plan time (shape arithmetic, constant subgraphs) are evaluated
on the host with onnx's reference kernels; every other node is lowered to ggml
instructions. The result is cached by the Session, so a signature seen before
costs no planning.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ggonnx import _core
from ggonnx.emitter import Emitter, WeightStore
from ggonnx.errors import GgonnxError, ShapeError, UnsupportedOpError
from ggonnx.ir import Graph, Node
from ggonnx.ops import lookup
from ggonnx.ops.context import LoweringContext, Value

# Graphs with less work than this (flops + elements written) run on one thread:
# waking the pool costs more than it saves.
SINGLE_THREAD_WORK = 200_000


@dataclass
class NodePlacement:
    node: str
    op_type: str
    where: str          # "ggml" or "host"
    detail: str = ""


@dataclass
class CompiledPlan:
    plan: object                               # _core.Plan, or None when every output is constant
    output_sources: list                       # per graph output: ("ggml", i) or ("const", array)
    placement: list = field(default_factory=list)
    flops: int = 0

    def run(self, arrays: list) -> list:
        outs = self.plan.run(arrays) if self.plan is not None else []
        return [outs[src] if kind == "ggml" else src.copy() for kind, src in self.output_sources]


def _host_eval(node: Node, inputs: list) -> list:
    """Evaluate one node with onnx's reference implementation (all inputs known)."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.input[:]
    proto.input.extend(names)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.const.dtype), v.shape)
                    for n, v in zip(names, inputs) if v is not None]
    graph_outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.outputs if o]
    model = helper.make_model(helper.make_graph([proto], "fold", graph_inputs, graph_outputs),
                              opset_imports=[helper.make_opsetid(node.domain, node.opset)])
    feeds = {n: v.const for n, v in zip(names, inputs) if v is not None}
    return ReferenceEvaluator(model).run(None, feeds)


def compile_plan(graph: Graph, engine, weights: WeightStore, shapes: list) -> CompiledPlan:
    emitter = Emitter(weights)
    ctx = LoweringContext(emitter)
    values: dict[str, Value] = {name: Value(name, arr.shape, const=arr, static=True)
                                for name, arr in graph.initializers.items()}
    input_slots = []
    for info, shape in zip(graph.inputs, shapes):
        emitter.where = f"input '{info.name}'"
        gt = emitter.input(shape)
        input_slots.append(gt.slot)
        values[info.name] = Value(info.name, shape, gt=gt)

    placement = []
    for node in graph.nodes:
        inputs = [values[name] if name else None for name in node.inputs]
        ctx.node = node
        emitter.where = node.describe()
        n_rows = len(emitter.rows)
        known = [v for v in inputs if v is not None]
        if node.op_type not in ("Constant", "Shape", "Identity") and known and all(v.const is not None for v in known):
            try:
                results = _host_eval(node, inputs)
            except Exception as exc:
                raise UnsupportedOpError(f"{node.describe()}: constant folding failed: {exc}") from exc
            static = all(v.static for v in known)
            outs = [Value(name, np.shape(r), const=np.asarray(r), static=static)
                    for name, r in zip([o for o in node.outputs if o], results)]
            placement.append(NodePlacement(node.name, node.op_type, "host", "folded at plan time"))
        else:
            lower = lookup(node.domain, node.op_type, node.opset)
            if lower is None:
                dom = f"{node.domain}::" if node.domain else ""
                raise UnsupportedOpError(
                    f"{node.describe()}: op {dom}{node.op_type} (opset {node.opset}) is not supported; "
                    f"input shapes {[v.shape if v else None for v in inputs]}")
            try:
                outs = lower(ctx, node, inputs)
            except GgonnxError:
                raise
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                raise ShapeError(f"{node.describe()}: cannot lower with input shapes "
                                 f"{[v.shape if v else None for v in inputs]}: {exc}") from exc
            where = "ggml" if len(emitter.rows) > n_rows or any(v.gt is not None for v in outs) else "host"
            placement.append(NodePlacement(node.name, node.op_type, where))
        for v in outs:
            values[v.name] = v

    output_slots, output_shapes, output_sources = [], [], []
    for info in graph.outputs:
        v = values[info.name]
        if v.gt is None:
            output_sources.append(("const", np.asarray(v.const)))
        else:
            output_sources.append(("ggml", len(output_slots)))
            output_slots.append(v.gt.slot)
            output_shapes.append(v.shape)

    plan = None
    if output_slots:
        ins, fp = emitter.instructions()
        work = emitter.flops + int(ins[:, _core.COL_NE:_core.COL_NE + 4].prod(axis=1).sum()) if len(ins) else 0
        n_threads = 1 if work < SINGLE_THREAD_WORK else engine.n_threads
        weights.flush()
        plan = _core.Plan(engine, ins, fp, emitter.consts, input_slots, tuple(tuple(s) for s in shapes),
                          output_slots, tuple(output_shapes), n_threads, emitter.row_names)
        mm_nodes = [emitter.row_names[i] for i, row in enumerate(emitter.rows) if row[0] == _core.Op.MUL_MAT]
        by_node = {}
        for name, backend in zip(mm_nodes, plan.matmul_backends):
            by_node.setdefault(name, []).append(backend)
        for p, node in zip(placement, graph.nodes):
            if node.describe() in by_node:
                p.detail = "matmul on " + ",".join(sorted(set(by_node[node.describe()])))
    return CompiledPlan(plan, output_sources, placement, emitter.flops)
