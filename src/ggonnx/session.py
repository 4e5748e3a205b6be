"""Session: the user-facing runtime object, a drop-in for onnxruntime.InferenceSession."""
from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections import OrderedDict

import numpy as np
import onnx

from ggonnx import _core, gguf_file
from ggonnx.emitter import WeightStore
from ggonnx.weight_types import WeightPolicy, release_float_copies
from ggonnx.errors import HostKernelError, InvalidInputError, PlanRetired, UnknownOpError
from ggonnx.importer import ImportOptions, import_model, open_model, overridable_initializers, tensor_info
from ggonnx.memory import release_after_upload
from ggonnx.model_file import check_unchanged
from ggonnx.ops import lookup
from ggonnx.ort_values import ModelMetadata, as_array
from ggonnx.plan_family import FamilyCache
from ggonnx.planner import NodePlacement, ShapeChanged, compile_plan

DEFAULT_PLAN_CACHE = 16
FAMILY_PLANS_KEPT = 2   # cached plans written from a plan family (one per cache length while decoding)


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _signature(value):
    """What a plan is specialised on: an array's shape; a sequence's element shapes."""
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, list):
        return ("seq",) + tuple(np.shape(v) for v in value)
    return (type(value).__name__,)


def _dim(d):
    # an unknown dim (neither value nor name) is None, as in onnxruntime's NodeArg.shape
    return None if isinstance(d, str) and d.startswith("unk__") else d


class NodeArg:
    """An input or output description, like onnxruntime's NodeArg: ``shape`` lists ints for fixed
    dims, names for free ones and None for unknown ones; [] when the model declares no shape."""

    def __init__(self, name: str, shape, type_str: str):
        self.name = name
        self.shape = [_dim(d) for d in shape] if shape is not None else []
        self.type = type_str

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape})"


def _reopen(cls, source, kwargs):
    """Unpickling a session: open it again in this process."""
    return cls(source, **kwargs)


class Session:
    """Load an ONNX model once, run it many times.

    ``model`` is a path, the serialized bytes or an ``onnx.ModelProto``.
    ``threads`` defaults to the CPUs this process may use. Plans (compiled
    ggml graphs) are built per input-shape signature and kept in an LRU cache
    of ``plan_cache_size``; weights are uploaded once and shared by all plans.
    ``weights`` names the ggml type MatMul/Gemm/Conv weights are stored in ("f32", "bf16",
    "q8_0", "q4_K", ...; the rule per weight is in ggonnx.weight_types).

    A session pickles as its model (the path, or the bytes / ModelProto it was given, which it
    keeps a reference to) and its options, and is opened again where it is unpickled.
    """

    def __init__(self, model, threads: int | None = None, *, weights: str | None = None, use_blas: bool = True,
                 plan_cache_size: int = DEFAULT_PLAN_CACHE, import_options: ImportOptions | None = None,
                 _engine=None):
        policy = WeightPolicy(weights)
        import_options = import_options or ImportOptions()
        # pickles re-open this; a relative path is made absolute for processes elsewhere
        self._source = os.path.abspath(model) if isinstance(model, (str, os.PathLike)) else model
        self._open_kwargs = {"threads": threads, "weights": weights, "use_blas": use_blas,
                             "plan_cache_size": plan_cache_size, "import_options": import_options}
        # the parsed ModelProto is dropped once imported: the IR holds the initializers, ggml the weights
        self._overridable = {}
        if gguf_file.is_gguf(model):
            if import_options != ImportOptions():
                raise ValueError("a GGUF file holds an optimized graph with its weights in ggml types: "
                                 "optimization levels, initializer and dimension overrides apply to .onnx models")
            self._graph = gguf_file.load_graph(model)
        else:
            proto, model_file, views = open_model(model)  # a file's weights stay in its pages
            if proto.ir_version >= 4:  # before IR 4 every initializer had to be a graph input, a constant
                self._overridable = {vi.name: tensor_info(vi) for vi in overridable_initializers(proto)
                                     if vi.name not in import_options.fed_initializers}
            self._graph = import_model(proto, options=import_options, mapped=views)
            if model_file is not None:
                self._graph.mapped.append(model_file)
            del proto, views
        self._variants: dict = {}  # sessions where fed overridable initializers are graph inputs
        self._profiler = None      # a ggonnx.profiling.Profiler while profiling
        self._last_sig = None      # the signature run last (placement() reports it)
        self._after_import()
        self._threads = int(threads) if threads else available_cpus()
        if self._threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._check_supported()
        # _engine: control-flow bodies run as nested sessions on their parent's backends
        self._engine = _engine if _engine is not None else _core.Engine(self._threads, use_blas)
        policy.prebuilt = self._graph.typed_weights
        policy.placeholders = set(self._graph.placeholder_weights)
        if policy.explicit and policy.placeholders:
            raise ValueError(f"this file holds its weights as {sorted({t for t, _, _ in self._graph.typed_weights.values()})}"
                             f" already; weights={weights!r} needs the float32 model")
        self._weights = WeightStore(self._engine, policy)
        self._plans: OrderedDict = OrderedDict()
        self._plan_cache_size = max(1, plan_cache_size)
        self._build_lock = threading.Lock()
        self._input_names = [i.name for i in self._graph.inputs]
        self._input_dtypes = [i.dtype for i in self._graph.inputs]
        self._input_shapes = [i.shape for i in self._graph.inputs]
        self._output_names = [o.name for o in self._graph.outputs]
        # plans for signatures on a line (a growing KV cache) without tracing; only where a dim is free
        self._families = FamilyCache(enabled=any(s is None or not all(isinstance(d, int) for d in s)
                                                 for s in self._input_shapes))
        self._output_index = {n: i for i, n in enumerate(self._output_names)}
        # Static float input shapes: plan now (traced on zeros), so bad shapes fail at load like
        # onnxruntime. A host kernel may reject zeros (data that is really a shape, say): then
        # the first real run plans instead.
        if all(s is not None and all(isinstance(d, int) for d in s) and d is not None and d.kind == "f"
               for s, d in zip(self._input_shapes, self._input_dtypes)):
            try:
                self._trace([np.zeros(s, dtype=d) for s, d in zip(self._input_shapes, self._input_dtypes)])
            except HostKernelError:
                pass

    def _after_import(self):
        """Hook for subclasses: the IR is complete and no weight is uploaded yet."""

    def __reduce__(self):
        source = bytes(self._source) if isinstance(self._source, (bytearray, memoryview)) else self._source
        return _reopen, (type(self), source, self._reopen_kwargs())

    def _reopen_kwargs(self) -> dict:
        return dict(self._open_kwargs)

    # -- validation at load ----------------------------------------------------
    def _check_supported(self):
        for node in self._graph.nodes:
            # Ops without a ggml lowering may still be folded on the host at plan time;
            # an op ONNX itself does not define can never run.
            if lookup(node.domain, node.op_type, node.opset) is None and not onnx.defs.has(node.op_type, node.domain):
                dom = f"{node.domain}::" if node.domain else ""
                raise UnknownOpError(f"{node.describe()}: op {dom}{node.op_type} is not an ONNX op "
                                     f"ggonnx knows (opset {node.opset})")

    # -- onnxruntime-compatible API ----------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        """Return the inputs metadata as a list of NodeArg (initializers excluded)."""
        return [NodeArg(i.name, i.shape, i.type_str) for i in self._graph.inputs]

    def get_outputs(self) -> list[NodeArg]:
        """Return the outputs metadata as a list of NodeArg (shapes inferred where undeclared)."""
        return [NodeArg(o.name, o.shape, o.type_str) for o in self._graph.outputs]

    def get_providers(self) -> list[str]:
        """Return the execution providers of this session: ggml's CPU backend, as CPUExecutionProvider."""
        return ["CPUExecutionProvider"]

    def get_overridable_initializers(self) -> list[NodeArg]:
        """Initializers that are also graph inputs (IR version >= 4): ``run`` may feed them."""
        return [NodeArg(i.name, i.shape, i.type_str) for i in self._overridable.values()]

    def get_modelmeta(self) -> ModelMetadata:
        """Return the model's metadata: producer, graph name and description, domain, version, props."""
        return ModelMetadata(producer_name=self._graph.producer, custom_metadata_map=self._graph.metadata,
                             **self._graph.model_info)

    @property
    def threads(self) -> int:
        """Threads ggml computes with."""
        return self._threads

    def run(self, output_names, input_feed, run_options=None) -> list[np.ndarray]:
        """Compute ``output_names`` (None = all) from ``input_feed`` {name: array}."""
        if self._overridable and hasattr(input_feed, "keys"):
            fed = frozenset(self._overridable.keys() & input_feed.keys())
            if fed:
                return self._variant(fed).run(output_names, input_feed)
        arrays = self._gather_inputs(input_feed)
        sig = tuple(map(_signature, arrays))
        self._last_sig = sig
        plan = self._plans.get(sig)
        if plan is None:
            outs = self._trace(arrays)
        else:
            try:
                self._plans.move_to_end(sig)
            except KeyError:  # evicted by another thread meanwhile; we still hold it
                pass
            try:
                outs = plan.run(arrays, self._profiler)
            except ShapeChanged:  # data-dependent shapes moved: plan again for these values
                outs = self._trace(arrays, replace=True)
            except PlanRetired:  # another thread's new plan took this one over after we fetched it
                outs = self._trace(arrays)
        if output_names is None:
            return outs
        try:
            return [outs[self._output_index[n]] for n in output_names]
        except KeyError as exc:
            raise InvalidInputError(f"unknown output name {exc.args[0]!r}; outputs are {self._output_names}") from None

    def _variant(self, fed: frozenset) -> "Session":
        """The session (built once per set of names) in which ``fed`` initializers are inputs."""
        with self._build_lock:
            variant = self._variants.get(fed)
            if variant is None:
                kwargs = dict(self._open_kwargs)
                kwargs["import_options"] = dataclasses.replace(kwargs["import_options"], fed_initializers=fed)
                variant = Session(self._source, _engine=self._engine, **kwargs)
                self._variants[fed] = variant
        return variant

    def _gather_inputs(self, feed) -> list[np.ndarray]:
        if not hasattr(feed, "keys"):
            raise InvalidInputError(f"input_feed must be a dict of name -> array, got {type(feed).__name__}")
        arrays = []
        for name, dtype in zip(self._input_names, self._input_dtypes):
            try:
                a = feed[name]
            except KeyError:
                raise InvalidInputError(f"missing input '{name}'; the model expects {self._input_names}") from None
            a = as_array(a)
            if dtype is None:  # sequence, map or optional input: passed to host kernels as given
                arrays.append(a)
                continue
            if type(a) is not np.ndarray:  # lists and scalars take the input's dtype, as in onnxruntime
                try:
                    a = np.asarray(a, dtype=object if dtype.kind == "O" else dtype)
                except (TypeError, ValueError) as exc:
                    raise InvalidInputError(f"input '{name}': cannot make a {np.dtype(dtype).name} array of "
                                            f"{type(a).__name__}: {exc}") from None
            elif dtype.kind == "O" and a.dtype.kind in "US":
                a = a.astype(object)
            if a.dtype != dtype:
                raise InvalidInputError(f"input '{name}': expected {np.dtype(dtype).name}, got {a.dtype}")
            arrays.append(a)
        if len(feed) != len(arrays):
            extra = sorted(set(feed.keys()) - set(self._input_names))
            raise InvalidInputError(f"unknown input name(s) {extra}; the model expects {self._input_names}")
        return arrays

    def _check_shapes(self, sig):
        for name, declared, got in zip(self._input_names, self._input_shapes, sig):
            if declared is None or (got and got[0] in ("seq",)) or any(isinstance(g, str) for g in got):
                continue
            if len(declared) != len(got) or any(isinstance(d, int) and d != g for d, g in zip(declared, got)):
                raise InvalidInputError(f"input '{name}': expected shape {list(declared)} (strings are free dims), "
                                        f"got {list(got)}")

    def _trace(self, arrays: list, replace: bool = False) -> list:
        """Plan the signature of ``arrays`` by tracing a run on them; returns that run's outputs."""
        sig = tuple(map(_signature, arrays))
        self._check_shapes(sig)
        with self._build_lock:
            plan = None if replace else self._plans.get(sig)
            if plan is not None:
                return plan.run(arrays, self._profiler)
            t0 = time.monotonic_ns()
            plan = None
            check_unchanged(self._graph.mapped)  # a new plan may read weights from the model file again
            if not replace and self._families.covers(sig):
                # drop the family's older plans first: the new one reuses their compute memory (a
                # fresh buffer's page faults cost as much as the token's compute here) and takes
                # over the oldest one's ggml context and scheduler
                older = [k for k, p in self._plans.items() if p.from_family]
                dropped = [self._plans.pop(old) for old in older[:max(0, len(older) - FAMILY_PLANS_KEPT + 1)]]
                plan = self._families.plan_for(sig, self._engine, dropped[0] if dropped else None)
            if plan is not None:
                if self._profiler is not None:
                    self._profiler.add("Session", "plan_from_family", t0, time.monotonic_ns(), {"signature": repr(sig)})
                try:
                    outs = plan.run(arrays, self._profiler)
                except ShapeChanged:
                    plan = None
                else:
                    self._cache(sig, plan)
                    return outs
            try:
                plan, outs = compile_plan(self._graph, self._engine, self._weights, arrays)
            except BaseException:
                self._weights.discard_pending()
                raise
            if self._profiler is not None:
                self._profiler.add("Session", "plan_trace", t0, time.monotonic_ns(), {"signature": repr(sig)})
            self._families.traced(sig, plan)
            self._cache(sig, plan)
            release_float_copies(self._graph, self._weights)
            release_after_upload(self._graph.mapped)
            return outs

    def _cache(self, sig, plan) -> None:
        self._plans[sig] = plan
        while len(self._plans) > self._plan_cache_size:
            self._plans.popitem(last=False)

    # -- introspection -----------------------------------------------------------
    def placement(self, input_shapes: dict | None = None) -> list[NodePlacement]:
        """Where each node runs for the given input shapes, traced on zeros; without shapes, for the
        signature run last (free dims 1 when nothing ran yet)."""
        if not input_shapes and self._last_sig in self._plans:
            return self._plans[self._last_sig].placement
        arrays = []
        for name, declared, dtype in zip(self._input_names, self._input_shapes, self._input_dtypes):
            if input_shapes and name in input_shapes:
                shape = tuple(input_shapes[name])
            else:
                shape = tuple(d if isinstance(d, int) else 1 for d in (declared or ()))
            arrays.append(np.zeros(shape, dtype=dtype))
        sig = tuple(map(_signature, arrays))
        if sig not in self._plans:
            self._trace(arrays)
        return self._plans[sig].placement

    def _stop_profiling(self) -> None:
        """Plans profiled so far run every ggml node as its own graph: give them back their speed."""
        from ggonnx.planner import IslandStep
        for plan in list(self._plans.values()):
            for step in plan.steps:
                if isinstance(step, IslandStep):
                    step.plan.set_profiling(False)

    @property
    def plan_count(self) -> int:
        """Plans (input-shape signatures) cached now."""
        return len(self._plans)

    @property
    def family_plan_count(self) -> int:
        """Plans written from a plan family (signatures on a line, e.g. a growing KV cache)
        instead of traced, since the session opened."""
        return self._families.instantiated

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights held by ggml."""
        return self._engine.weight_bytes

    def weight_types(self) -> dict[str, str]:
        """{initializer: ggml type} of the weights stored in a type other than float32 so far
        (weights are stored as plans need them; all of them once a plan covers the model)."""
        return self._weights.types_by_name()
