"""Per input-shape signature: concrete shapes, host/ggml partition, compiled steps.

``compile_plan`` traces the graph once, in topological order, on the first
inputs seen with a signature:

- a node whose inputs are all known at plan time (shape arithmetic, constant
  subgraphs) is folded on the host with onnx's reference kernels;
- a node ggml can run joins the current ggml *island* (one ``_core.Plan``);
- any other node (an op without a lowering, non-float32 data, empty tensors,
  data-dependent ops) runs on the host with onnx's reference kernels. When it
  needs a value of the open island, that island is closed, compiled and run
  first, so the trace always has real data, and the host node's real output
  shapes feed the planning of what follows.

The result is a list of steps replayed by later runs. A host step checks that
its outputs still have the traced shapes; if data changed them (NonZero,
data-dependent Reshape targets...), the session re-traces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ggonnx import _core, host_kernels, host_random
from ggonnx.control_flow import ControlFlowEvaluator
from ggonnx.emitter import Emitter, WeightStore
from ggonnx.errors import GgonnxError, HostKernelError, PlanOutgrown, ShapeError, UnsupportedOpError
from ggonnx.ir import Graph, Node
from ggonnx.model_file import copy_if_mapped
from ggonnx.ops import lookup
from ggonnx.ops.context import Island, LoweringContext, Value, as_float32
from ggonnx.weight_types import placeholder_values

# Islands with less work than this (flops + elements written) run on one thread:
# waking the pool costs more than it saves.
SINGLE_THREAD_WORK = 200_000
# ... and so do islands of many small nodes (flops + elements written per computed row), each a
# synchronisation of the threads: skl2onnx's one-hot pipeline at 1,000 rows (14 nodes, ~12k
# elements each) ran in 114 us on two threads, 86 us on one
MIN_WORK_PER_NODE = 16_384
_NOT_COMPUTED = (int(_core.Op.INPUT), int(_core.Op.CONST), int(_core.Op.WEIGHT), int(_core.Op.RESHAPE))
# what the placement report says of a typed weight's buffer: ggml's interleaved CPU layout, or the
# tile layout of its AMX int8 kernels
_BUFFER_NOTE = {"CPU_REPACK": " (repacked)", "AMX": " (AMX)"}
# Ops never folded at plan time: they are cheaper (or only possible) as lowerings, or draw
# new random values on every run.
NO_FOLD = {"Constant", "Shape", "Identity"} | host_random.RANDOM_OPS


class ShapeChanged(PlanOutgrown):
    """A host step produced shapes other than the traced ones: the plan must be re-traced."""


@dataclass
class NodePlacement:
    node: str
    op_type: str
    where: str          # "ggml" or "host"
    detail: str = ""
    flops: int = 0      # estimate: 2*M*N*K for matmuls and convs, output elements otherwise


def estimate_flops(node: Node, inputs: list, outputs: list) -> int:
    out_elems = sum(int(math.prod(v.shape)) for v in outputs if v is not None)
    shapes = [v.shape if v is not None else None for v in inputs]
    if node.op_type in ("MatMul", "Gemm") and shapes[0] and outputs:
        k = shapes[0][0] if node.op_type == "Gemm" and node.attrs.get("transA") else shapes[0][-1]
        return 2 * k * out_elems
    if node.op_type == "Conv" and len(shapes) > 1 and shapes[1] and len(shapes[1]) > 2:
        return 2 * int(math.prod(shapes[1][1:])) * out_elems
    if node.op_type == "ConvTranspose" and len(shapes) > 1 and shapes[0] and shapes[1] and len(shapes[1]) > 2:
        return 2 * int(math.prod(shapes[0])) * int(math.prod(shapes[1][1:]))
    return out_elems


@dataclass
class IslandStep:
    plan: object        # _core.Plan
    in_ids: list
    out_ids: list
    flops: int
    # ggml computes float32: float16 values cross the boundary converted (exactly on the way in,
    # rounded once on the way out); integer indices enter as checked int32
    out_dtypes: list = field(default_factory=list)
    in_converters: list = field(default_factory=list)
    row_names: list = field(default_factory=list)  # the node each instruction row came from (profiles)

    def run(self, env: list) -> None:
        outs = self.plan.run([convert(env[i]) for i, convert in zip(self.in_ids, self.in_converters)])
        for i, o, dtype in zip(self.out_ids, outs, self.out_dtypes):
            env[i] = o if dtype == np.float32 else o.astype(dtype)


@dataclass
class HostStep:
    node: Node
    evaluator: object
    in_names: list      # evaluator input names, parallel to in_ids
    in_ids: list
    out_ids: list
    out_shapes: list

    def __post_init__(self):
        # our kernels take their inputs by position: no dict of feeds per run
        bind = getattr(self.evaluator, "arg_ids", None)
        self.arg_ids = bind(self.in_names, self.in_ids) if bind is not None else None

    def with_shapes(self, out_shapes: list) -> "HostStep":
        """This step planned for other output shapes (a plan family's next signature), its
        argument binding shared rather than worked out again."""
        step = HostStep.__new__(HostStep)
        step.__dict__.update(self.__dict__)
        step.out_shapes = out_shapes
        return step

    def run(self, env: list) -> None:
        if self.arg_ids is not None:
            results = self.evaluator.call([None if i is None else env[i] for i in self.arg_ids])
        else:
            results = self.evaluator.run(None, {n: env[i] for n, i in zip(self.in_names, self.in_ids)})
        for i, r, shape in zip(self.out_ids, results, self.out_shapes):
            if shape is not None and r.shape != shape if type(r) is np.ndarray else np.shape(r) != shape:
                raise ShapeChanged(self.node.name)
            env[i] = r


def _array_shape(r):
    """Shape of a host result; None for sequences and maps, whose shapes are never planned on."""
    return np.shape(r) if isinstance(r, np.ndarray) else None


@dataclass
class CompiledPlan:
    steps: list
    n_env: int
    input_ids: list
    output_sources: list        # per graph output: ("env", id) or ("const", array)
    env_consts: dict            # env id -> plan-time constant some host step reads
    placement: list = field(default_factory=list)
    # Fast path: one island computes every output from graph inputs alone.
    single: object = None       # its _core.Plan
    single_in: list = None      # graph input index feeding each island input
    single_out: list = None     # island output index giving each graph output
    single_casts: list = field(default_factory=list)  # (graph output, dtype): integers ggml held as floats
    record: object = None       # TraceRecord: what plan_family needs to generalise this plan
    from_family: bool = False   # written by a plan family rather than traced
    # graph outputs not made fresh by an island (a host step's result, an input passed through,
    # a value output twice): copied where they would alias a feed, a constant or another output
    copy_outputs: list = field(default_factory=list)

    def run(self, arrays: list, profiler=None) -> list:
        """This signature's outputs for ``arrays``; a ggonnx.profiling.Profiler logs each step."""
        if self.single is not None and profiler is None:
            outs = self.single.run([arrays[k] for k in self.single_in])
            outs = [outs[k] for k in self.single_out]
            for k, dtype in self.single_casts:
                outs[k] = outs[k].astype(dtype)
            return own_outputs(outs, self.copy_outputs, arrays, self.env_consts)
        env = [None] * self.n_env
        for i, c in self.env_consts.items():
            env[i] = c
        for i, a in zip(self.input_ids, arrays):
            env[i] = a
        for step in self.steps:
            if profiler is None:
                step.run(env)
            else:
                profiler.run_step(step, env)
        outs = [env[src] if kind == "env" else src.copy() for kind, src in self.output_sources]
        return own_outputs(outs, self.copy_outputs, arrays, self.env_consts)


def own_outputs(outs: list, copy_outputs: list, arrays: list, consts: dict) -> list:
    """``outs`` with each of ``copy_outputs`` copied where it is a view (a host kernel's
    transpose or reshape of a feed or constant), a feed or constant itself, or an earlier output:
    the caller owns every array a run returns, as with onnxruntime."""
    if not copy_outputs:
        return outs
    taken = {id(a) for a in arrays}   # identities, not equality: one set instead of a scan per output
    taken.update(map(id, consts.values()))
    check = set(copy_outputs)
    for k, o in enumerate(outs):
        if k in check and isinstance(o, np.ndarray) and (o.base is not None or id(o) in taken):
            outs[k] = o = o.copy()
        taken.add(id(o))
    return outs


@dataclass
class FoldRecord:
    node: Node
    evaluator: object
    feed_names: list
    in_names: list      # the value names fed, parallel to feed_names
    feeds: list         # the arrays fed at trace time, parallel to feed_names
    out_names: list


@dataclass
class TraceRecord:
    """What a trace leaves for ``plan_family``: each island's _core.Plan arguments, where
    plan-owned constants came from, and the plan-time values that depend on the signature
    (fold outputs and constants lowerings produced; static ones are left out)."""
    islands: list = field(default_factory=list)   # per IslandStep: (core args tuple, const origins)
    folds: list = field(default_factory=list)     # FoldRecord of every non-static fold, in order
    consts: dict = field(default_factory=dict)    # value name -> array, non-static plan-time values
    lowered: set = field(default_factory=set)     # names of constants lowerings produced
    lowering_reads: set = field(default_factory=set)  # non-static constants lowerings read
    env_const_names: dict = field(default_factory=dict)  # env id -> value name
    output_const_names: list = field(default_factory=list)  # per graph output: a name or None


def _value_info(name: str, v: Value):
    if v.dtype == object and v.const is None and not v.shape:  # sequences, maps, optionals: type left open
        return onnx.ValueInfoProto(name=name)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)


def _host_model(node: Node, inputs: list, implicit: list) -> tuple:
    """A one-node model around ``node`` for onnx's ReferenceEvaluator, and its input names.

    Explicit inputs are renamed in0, in1, ...; values the node's subgraphs read
    from the outer scope keep their names.
    """
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.input[:]
    proto.input.extend(names)
    feeds = [(n, v) for n, v in zip(names, inputs) if v is not None] + list(zip(node.implicit_inputs, implicit))
    graph_outputs = [onnx.ValueInfoProto(name=o) for o in node.outputs if o]
    opsets = {node.domain: node.opset}
    opsets.setdefault("", node.opset if node.domain == "" else 18)
    model = helper.make_model(helper.make_graph([proto], "host", [_value_info(n, v) for n, v in feeds],
                                                graph_outputs),
                              opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    return model, [n for n, _ in feeds]


def _reference_evaluator(node: Node, model):
    from onnx.reference import ReferenceEvaluator
    try:
        return ReferenceEvaluator(model)
    except Exception as exc:
        raise UnsupportedOpError(f"{node.describe()}: no ggml lowering and no host kernel: {exc}") from exc


def _reference_model(node: Node, inputs: list, implicit: list, threads: int = 1) -> tuple:
    """The host kernel for ``node`` alone (ours where we have one, on up to ``threads`` threads
    where it can use them, else onnx's reference kernel), and the names its inputs are fed under."""
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    kernel = host_kernels.kernel_for(node, names, lambda: _reference_evaluator(node, _host_model(node, inputs, implicit)[0]),
                                     threads)
    if kernel is not None:  # ours: no one-node model to build (shape arithmetic folds per plan)
        return kernel, [n for n in names if n]
    model, names = _host_model(node, inputs, implicit)
    return _reference_evaluator(node, model), names


class _Tracer:
    def __init__(self, graph: Graph, engine, weights: WeightStore, make_runner=None):
        self.graph = graph
        self.engine = engine
        self.weights = weights
        self.make_runner = make_runner  # model -> a runner on this engine (control-flow bodies)
        self.env: list = []
        self.env_consts: dict = {}
        self.steps: list = []
        self.placement: list[NodePlacement] = []
        self.n_islands = 0
        self.last_use: dict[str, int] = {}
        uses: dict[str, int] = {}
        for i, node in enumerate(graph.nodes):
            for name in node.inputs + node.implicit_inputs:
                if name:
                    self.last_use[name] = i
                    uses[name] = uses.get(name, 0) + 1
        self.graph_outputs = {o.name for o in graph.outputs}
        for name in self.graph_outputs:
            uses[name] = uses.get(name, 0) + 1
        self.ctx = LoweringContext(uses, self.env)
        self.node_index = 0
        self.record = TraceRecord()

    # -- runtime environment ------------------------------------------------------
    def new_rid(self, array) -> int:
        self.env.append(array)
        return len(self.env) - 1

    def runtime(self, v: Value) -> int:
        """Make sure ``v`` has real data in the environment; returns its id."""
        if v.rid is None:
            if v.const is not None:
                # a host step reads it every run: not from the model file's pages (model_file.py)
                const = copy_if_mapped(v.const)
                v.rid = self.new_rid(const)
                self.env_consts[v.rid] = const
                self.record.env_const_names[v.rid] = v.name
            elif self.ctx.island is not None and v.island == self.ctx.island.index:
                self.close_island()
            if v.rid is None:
                raise GgonnxError(f"value '{v.name}' has no data (internal planning error)")
        return v.rid

    # -- islands --------------------------------------------------------------------
    def open_island(self) -> Island:
        if self.ctx.island is None:
            self.ctx.island = Island(self.n_islands, Emitter(self.weights))
            self.n_islands += 1
        return self.ctx.island

    def close_island(self) -> None:
        island, self.ctx.island = self.ctx.island, None
        if island is None:
            return
        exported = [v for v in island.produced
                    if self.last_use.get(v.name, -1) >= self.node_index or v.name in self.graph_outputs]
        if not exported:
            return
        e = island.e
        out_slots = [island.plain(v).slot for v in exported]  # island outputs leave in the plain layout
        ins, fp = e.instructions()
        work = e.flops + int(ins[:, _core.COL_NE:_core.COL_NE + 4].prod(axis=1).sum())
        computed = ~np.isin(ins[:, 0], _NOT_COMPUTED)
        node_work = e.flops + int(ins[computed, _core.COL_NE:_core.COL_NE + 4].prod(axis=1).sum())
        small_nodes = node_work < MIN_WORK_PER_NODE * max(1, int(np.count_nonzero(computed)))
        n_threads = 1 if work < SINGLE_THREAD_WORK or small_nodes else self.engine.n_threads
        self.weights.flush()
        args = (ins, fp, e.consts, [slot for _, slot, _, _ in island.inputs],
                tuple(tuple(shape) for _, _, _, shape in island.inputs),
                out_slots, tuple(v.shape for v in exported), n_threads, e.row_names)
        plan = _core.Plan(self.engine, *args)
        self.record.islands.append((args, list(e.const_origins)))
        step = IslandStep(plan, [rid for rid, _, _, _ in island.inputs], [], e.flops, [v.dtype for v in exported],
                          [convert for _, _, convert, _ in island.inputs], e.row_names)
        outs = plan.run([convert(self.env[i]) for i, convert in zip(step.in_ids, step.in_converters)])
        for v, arr in zip(exported, outs):
            v.rid = self.new_rid(arr if v.dtype == np.float32 else arr.astype(v.dtype))
            step.out_ids.append(v.rid)
        self.steps.append(step)
        self._note_matmul_backends(e, plan)

    def _note_matmul_backends(self, e: Emitter, plan) -> None:
        rows = [e.row_names[i] for i, row in enumerate(e.rows) if row[0] == _core.Op.MUL_MAT]
        by_node: dict[str, set] = {}
        for name, backend in zip(rows, plan.matmul_backends):
            by_node.setdefault(name, set()).add(backend)
        for i, row in enumerate(e.rows):  # our packed GEMM runs on the CPU backend's threads
            if row[0] == _core.Op.GEMM_PACKED:
                by_node.setdefault(e.row_names[i], set()).add("CPU (packed GEMM)")
            elif row[0] == _core.Op.GEMM_AMX_BF16:
                by_node.setdefault(e.row_names[i], set()).add("CPU (AMX tiles)")
        weight_index = {row[1]: row[_core.COL_PARAM] for row in e.rows if row[0] == _core.Op.WEIGHT}
        typed: dict[str, set] = {}
        for i, row in enumerate(e.rows):  # a weight in another type than float32, and its buffer
            if row[0] in (_core.Op.MUL_MAT, _core.Op.GEMM_AMX_BF16) and row[_core.COL_SRC] in weight_index:
                wtype, buffer, _ = self.engine.weight_info(weight_index[row[_core.COL_SRC]])
                if wtype != "f32":
                    typed.setdefault(e.row_names[i], set()).add(
                        f"{wtype} weight" + _BUFFER_NOTE.get(buffer, ""))
        for p, node in zip(self.placement, self.graph.nodes):
            if node.describe() in by_node:
                p.detail = "; ".join(filter(None, [p.detail, "matmul on " + ",".join(sorted(by_node[node.describe()]))]))
            if node.describe() in typed:
                p.detail = "; ".join(filter(None, [p.detail, ", ".join(sorted(typed[node.describe()]))]))

    # -- nodes ------------------------------------------------------------------------
    def fold(self, node: Node, inputs: list, implicit: list) -> list[Value]:
        evaluator, names = _reference_model(node, inputs, implicit)
        known = [v for v in inputs if v is not None] + implicit
        # a GGUF file's typed weight has no float values: its blocks dequantized stand in
        feeds = [placeholder_values(self.graph, v.name) if v.name in self.graph.placeholder_weights else v.const
                 for v in known]
        try:
            results = evaluator.run(None, dict(zip(names, feeds)))
        except GgonnxError:  # our host kernels raise errors that already name node and shapes
            raise
        except Exception as exc:
            raise HostKernelError(f"{node.describe()}: constant folding failed: {exc}") from exc
        # static only when every input, outer-scope ones included, is the same for all signatures
        static = all(v.static for v in known)
        self.placement.append(NodePlacement(node.name, node.op_type, "host", "folded at plan time"))
        out_names = [o for o in node.outputs if o]
        if not static:
            self.record.folds.append(FoldRecord(node, evaluator, names, [v.name for v in known], feeds, out_names))
            self.record.consts.update(zip(out_names, results))
        return [Value.constant(name, r, static) for name, r in zip(out_names, results)]

    def lower(self, node: Node, inputs: list):
        """Lower into the open island; None (and nothing emitted) when ggml cannot run it."""
        lower = lookup(node.domain, node.op_type, node.opset)
        if lower is None or (not lower.any_rank and any(v is not None and v.rank > 4 for v in inputs)):
            return None
        island = self.open_island()
        mark = island.mark()
        self.ctx.node = node
        island.e.where = node.describe()
        try:
            outs = lower(self.ctx, node, inputs)
        except UnsupportedOpError:
            island.rollback(mark)
            return None
        except GgonnxError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ShapeError(f"{node.describe()}: cannot lower with input shapes "
                             f"{[v.shape if v else None for v in inputs]}: {exc}") from exc
        produced = [v for v in outs if v.gt is not None and v.island == island.index]
        self.record.lowering_reads.update(v.name for v in inputs if v is not None and v.const is not None
                                          and not v.static)
        for v in outs:
            if v.const is not None and not v.static:
                self.record.lowered.add(v.name)
                self.record.consts[v.name] = v.const
        if any(v is not None and v.dtype == np.float16 for v in inputs):
            for v in produced:  # a float16 node: computed in float32, its results are float16
                v.dtype = np.dtype(np.float16)
        island.produced.extend(produced)
        where = "ggml" if any(v.gt is not None for v in outs) else "host"
        detail = "layout only" if where == "host" else "channels-last" if any(v.layout for v in produced) else ""
        self.placement.append(NodePlacement(node.name, node.op_type, where, detail,
                                            estimate_flops(node, inputs, outs) if where == "ggml" else 0))
        return outs

    def host(self, node: Node, inputs: list, implicit: list) -> list[Value]:
        in_ids = [self.runtime(v) for v in inputs if v is not None] + [self.runtime(v) for v in implicit]
        detail = ""
        if node.op_type in ("If", "Loop", "Scan") and node.domain == "":
            model, names = _host_model(node, inputs, implicit)
            explicit = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
            if self.make_runner is None:
                raise GgonnxError(f"{node.describe()}: control flow planned without a runner for its bodies")
            evaluator = ControlFlowEvaluator(node, explicit, self.graph.opsets, self.make_runner,
                                             lambda: _reference_evaluator(node, model))
            detail = "control flow; bodies planned as nested ggml graphs"
        else:
            evaluator, names = _reference_model(node, inputs, implicit, self.engine.n_threads)
        try:
            results = evaluator.run(None, {n: self.env[i] for n, i in zip(names, in_ids)})
        except GgonnxError:
            raise
        except Exception as exc:
            raise HostKernelError(f"{node.describe()}: host kernel failed on input shapes "
                                     f"{[v.shape if v else None for v in inputs]}: {exc}") from exc
        outs, out_ids = [], []
        for name, r in zip([o for o in node.outputs if o], results):
            r = r if r is None or isinstance(r, (list, dict)) else np.asarray(r)
            rid = self.new_rid(r)
            out_ids.append(rid)
            shape, dtype = (np.shape(r), r.dtype) if isinstance(r, np.ndarray) else ((), np.dtype(object))
            outs.append(Value(name, shape, dtype, rid=rid))
        self.steps.append(HostStep(node, evaluator, names, in_ids, out_ids, [_array_shape(r) for r in results]))
        self.placement.append(NodePlacement(node.name, node.op_type, "host", detail,
                                            estimate_flops(node, inputs, outs)))
        return outs

    def trace(self, arrays: list) -> tuple[CompiledPlan, list]:
        graph = self.graph
        values: dict[str, Value] = {name: Value.constant(name, arr, static=True)
                                    for name, arr in graph.initializers.items()}
        input_ids = []
        for info, arr in zip(graph.inputs, arrays):
            rid = self.new_rid(arr)
            input_ids.append(rid)
            if isinstance(arr, np.ndarray):
                values[info.name] = Value(info.name, arr.shape, arr.dtype, rid=rid)
            else:  # a sequence, map or absent optional: host nodes only
                values[info.name] = Value(info.name, (), object, rid=rid)
        self.ctx.input_rids = frozenset(input_ids)
        for self.node_index, node in enumerate(graph.nodes):
            inputs = [values[name] if name else None for name in node.inputs]
            implicit = [values[name] for name in node.implicit_inputs]
            known = [v for v in inputs if v is not None] + implicit
            if node.op_type not in NO_FOLD and known and all(v.const is not None for v in known):
                outs = self.fold(node, inputs, implicit)
            else:
                outs = None if implicit else self.lower(node, inputs)
                if outs is None:
                    outs = self.host(node, inputs, implicit)
            for v in outs:
                values[v.name] = v
        self.node_index = len(graph.nodes)
        self.close_island()

        sources = []
        for info in graph.outputs:
            v = values[info.name]
            sources.append(("env", v.rid) if v.rid is not None else ("const", copy_if_mapped(np.asarray(v.const))))
        self.record.output_const_names = [info.name if kind == "const" else None for info, (kind, _) in
                                          zip(graph.outputs, sources)]
        island_made = {i for step in self.steps if isinstance(step, IslandStep) for i in step.out_ids}
        copy_outputs, seen = [], set()
        for k, (kind, src) in enumerate(sources):
            if kind == "env" and (src not in island_made or src in seen):
                copy_outputs.append(k)
            seen.add(src if kind == "env" else None)
        plan = CompiledPlan(self.steps, len(self.env), input_ids, sources, self.env_consts, self.placement,
                            record=self.record, copy_outputs=copy_outputs)
        step = self.steps[0] if len(self.steps) == 1 else None
        if (isinstance(step, IslandStep) and all(c is as_float32 for c in step.in_converters)
                and all(i in input_ids and self.env[i].dtype == np.float32 for i in step.in_ids)
                and all(kind == "env" and src in step.out_ids for kind, src in sources)):
            plan.single = step.plan
            plan.single_in = [input_ids.index(i) for i in step.in_ids]
            plan.single_out = [step.out_ids.index(src) for _, src in sources]
            plan.single_casts = [(k, step.out_dtypes[j]) for k, j in enumerate(plan.single_out)
                                 if step.out_dtypes[j] != np.float32]
        outputs = [self.env[src] if kind == "env" else src.copy() for kind, src in sources]
        return plan, own_outputs(outputs, copy_outputs, arrays, self.env_consts)


def compile_plan(graph: Graph, engine, weights: WeightStore, arrays: list,
                 make_runner=None) -> tuple[CompiledPlan, list]:
    """Trace ``graph`` on ``arrays``: the plan for their shape signature, and this run's outputs.
    ``make_runner(model)``: a runner of a control-flow body on ``engine`` (ggonnx.runner)."""
    return _Tracer(graph, engine, weights, make_runner).trace(arrays)
