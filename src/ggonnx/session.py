"""Session: the user-facing runtime object, a drop-in for onnxruntime.InferenceSession."""
from __future__ import annotations

import dataclasses
import math
import os
import threading

import numpy as np
import onnx

from ggonnx import _core, gguf_file
from ggonnx.errors import HostKernelError, InvalidInputError, UnknownOpError
from ggonnx.importer import ImportOptions, import_model, open_model, overridable_initializers, tensor_info
from ggonnx.ops import lookup
from ggonnx.ort_values import ModelMetadata, as_array
from ggonnx.planner import NodePlacement
from ggonnx.runner import DEFAULT_PLAN_CACHE, GraphRunner, signature
from ggonnx.weight_types import WeightPolicy


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
        self._threads = int(threads) if threads else available_cpus()
        if self._threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        policy.prebuilt = self._graph.typed_weights
        policy.placeholders = set(self._graph.placeholder_weights)
        if policy.explicit and policy.placeholders:
            raise ValueError(f"this file holds its weights as {sorted({t for t, _, _ in self._graph.typed_weights.values()})}"
                             f" already; weights={weights!r} needs the float32 model")
        # _engine: a variant session (fed initializers) shares its parent's backends
        self._engine = _engine if _engine is not None else _core.Engine(self._threads, use_blas)
        self._runner = GraphRunner(self._graph, self._engine, policy, plan_cache_size)
        self._after_import()
        self._check_supported()
        self._build_lock = threading.Lock()  # building variants
        self._input_names = [i.name for i in self._graph.inputs]
        self._input_dtypes = [i.dtype for i in self._graph.inputs]
        self._input_shapes = [i.shape for i in self._graph.inputs]
        self._output_names = [o.name for o in self._graph.outputs]
        self._output_index = {n: i for i, n in enumerate(self._output_names)}
        # Static float input shapes: plan now (traced on zeros), so bad shapes fail at load like
        # onnxruntime. A host kernel may reject zeros (data that is really a shape, say): then
        # the first real run plans instead.
        if all(s is not None and all(isinstance(d, int) for d in s) and d is not None and d.kind == "f"
               for s, d in zip(self._input_shapes, self._input_dtypes)):
            try:
                self._runner.trace([np.zeros(s, dtype=d) for s, d in zip(self._input_shapes, self._input_dtypes)])
            except HostKernelError:
                pass

    def _after_import(self):
        """Hook for subclasses: the IR is complete, the runner made, and no weight is uploaded yet."""

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
        outs = self._runner.run(self._gather_inputs(input_feed))
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

    # -- introspection -----------------------------------------------------------
    def placement(self, input_shapes: dict | None = None) -> list[NodePlacement]:
        """Where each node runs for the given input shapes, traced on zeros; without shapes, for the
        signature run last (free dims 1 when nothing ran yet)."""
        runner = self._runner
        if not input_shapes and runner.last_sig in runner.plans:
            return runner.plans[runner.last_sig].placement
        arrays = []
        for name, declared, dtype in zip(self._input_names, self._input_shapes, self._input_dtypes):
            if input_shapes and name in input_shapes:
                shape = tuple(input_shapes[name])
            else:
                shape = tuple(d if isinstance(d, int) else 1 for d in (declared or ()))
            arrays.append(np.zeros(shape, dtype=dtype))
        sig = tuple(map(signature, arrays))
        if sig not in runner.plans:
            runner.trace(arrays)
        return runner.plans[sig].placement

    @property
    def _profiler(self):
        """The ggonnx.profiling.Profiler logging runs, or None."""
        return self._runner.profiler

    @_profiler.setter
    def _profiler(self, profiler) -> None:
        self._runner.profiler = profiler

    def _stop_profiling(self) -> None:
        self._runner.stop_profiling()

    @property
    def plan_count(self) -> int:
        """Plans (input-shape signatures) cached now."""
        return len(self._runner.plans)

    @property
    def family_plan_count(self) -> int:
        """Plans written from a plan family (signatures on a line, e.g. a growing KV cache)
        instead of traced, since the session opened."""
        return self._runner.families.instantiated

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights held by ggml."""
        return self._engine.weight_bytes

    def weight_types(self) -> dict[str, str]:
        """{initializer: ggml type} of the weights stored in a type other than float32 so far
        (weights are stored as plans need them; all of them once a plan covers the model)."""
        return self._runner.weights.types_by_name()
