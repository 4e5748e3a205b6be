"""onnxruntime's SessionOptions and RunOptions, and the enums they use.

Every field is honoured or refused loudly: a field ggonnx has no use for is accepted only where
onnxruntime's own meaning leaves results unchanged (memory arenas, execution order, spinning), and
the reason is in ``ACCEPTED_WITHOUT_EFFECT``. An onnxruntime ``SessionOptions`` passed to
``InferenceSession`` is read the same way (``from_onnxruntime``).
"""
from __future__ import annotations

import enum
import logging
import warnings

import numpy as np

LOGGER = logging.getLogger("ggonnx")

# onnxruntime's severities 0..4 (verbose, info, warning, error, fatal) as logging levels
_SEVERITY_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def logging_level(severity: int) -> int:
    if not 0 <= int(severity) <= 4:
        raise ValueError(f"log severity must be 0 (verbose) .. 4 (fatal), got {severity}")
    return _SEVERITY_LEVELS[int(severity)]


class _OrtEnum(enum.IntEnum):
    def __str__(self):  # printed as onnxruntime's pybind enums print
        return f"{type(self).__name__}.{self.name}"


class GraphOptimizationLevel(_OrtEnum):
    """ORT_DISABLE_ALL turns ggonnx's optimizer off (only the rewrites some ops need to run at all
    stay); every other level runs all of it (ggonnx has one level of fusions)."""
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(_OrtEnum):
    """ggonnx runs a graph's ggml islands one after another; ORT_PARALLEL gives the same results."""
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class ExecutionOrder(_OrtEnum):
    DEFAULT = 0
    PRIORITY_BASED = 1
    MEMORY_EFFICIENT = 2


# Session config keys (onnxruntime's names, and ggonnx's own under "ggonnx.") with what they do here.
SESSION_CONFIG_KEYS = {
    "session.intra_op.allow_spinning": "accepted: ggonnx's threads never spin between runs",
    "session.inter_op.allow_spinning": "accepted: ggonnx has no inter-op thread pool",
    "session.use_env_allocators": "accepted: ggonnx has no allocator sharing",
    "session.disable_prepacking": "accepted: ggonnx packs weights once at load either way",
    "session.load_model_format": "'ONNX' only; ORT-format files are refused",
    "session.use_ort_model_bytes_directly": "accepted: ggonnx parses the bytes once",
    "session.set_denormal_as_zero": "accepted: ggml keeps the CPU's denormal setting",
    "session.disable_cpu_ep_fallback": "accepted: every node runs on the CPU provider",
    "session.inter_op_thread_affinities": "accepted: ggonnx has no inter-op thread pool",
    "ggonnx.weights": "ggml type of MatMul/Gemm/Conv weights (as Session(weights=))",
    "ggonnx.use_blas": "'0' keeps every GEMM in ggml's own kernels (default '1')",
    "ggonnx.plan_cache_size": "plans (input-shape signatures) kept per session (default 16)",
}

ACCEPTED_WITHOUT_EFFECT = {
    "enable_cpu_mem_arena": "ggml allocates each plan's memory once, so there is no arena to turn off",
    "enable_mem_pattern": "each plan's tensor memory is planned once by ggml's allocator",
    "enable_mem_reuse": "ggml's allocator reuses tensor memory within a plan",
    "execution_order": "nodes run in ggml's topological order",
    "use_deterministic_compute": "ggml's CPU kernels are deterministic for a given thread count",
    "use_per_session_threads": "each ggonnx session owns its thread pool",
    "inter_op_num_threads": "ggonnx runs one node at a time (ExecutionMode.ORT_SEQUENTIAL)",
}

_warned_keys: set = set()


class SessionOptions:
    """onnxruntime.SessionOptions, with the same fields and defaults."""

    def __init__(self):
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.execution_order = ExecutionOrder.DEFAULT
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_profiling = False
        self.profile_file_prefix = "onnxruntime_profile_"
        self.optimized_model_filepath = ""
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self.use_per_session_threads = True
        self._config: dict[str, str] = {}
        self._initializers: dict[str, np.ndarray] = {}
        self._dims_by_name: dict[str, int] = {}
        self._dims_by_denotation: dict[str, int] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Set a session config key; keys ggonnx does not know are kept and warned about once."""
        key, value = str(key), str(value)
        if key not in SESSION_CONFIG_KEYS and key not in _warned_keys:
            _warned_keys.add(key)
            warnings.warn(f"ggonnx: session config key {key!r} has no effect in ggonnx", RuntimeWarning, stacklevel=2)
        if key == "session.load_model_format" and value.upper() != "ONNX":
            raise ValueError(f"session.load_model_format={value!r}: ggonnx reads ONNX models only")
        self._config[key] = value

    def get_session_config_entry(self, key: str) -> str:
        try:
            return self._config[key]
        except KeyError:
            raise RuntimeError(f"SessionOptions does not have configuration with key: {key}") from None

    def add_initializer(self, name: str, value) -> None:
        """Replace the model's initializer ``name`` with ``value`` (an array or OrtValue)."""
        from ggonnx.ort_values import as_array
        self._initializers[str(name)] = as_array(value)

    def add_external_initializers(self, names, values) -> None:
        for name, value in zip(names, values, strict=True):
            self.add_initializer(name, value)

    def add_free_dimension_override_by_name(self, name: str, value: int) -> None:
        self._dims_by_name[str(name)] = _dim_value(value)

    def add_free_dimension_override_by_denotation(self, denotation: str, value: int) -> None:
        self._dims_by_denotation[str(denotation)] = _dim_value(value)

    def register_custom_ops_library(self, path: str) -> None:
        raise NotImplementedError("ggonnx cannot load onnxruntime custom-op libraries")

    def add_provider(self, *args, **kwargs) -> None:
        raise NotImplementedError("SessionOptions.add_provider: pass providers= to InferenceSession instead")

    def set_load_cancellation_flag(self, value: bool) -> None:
        if value:
            raise NotImplementedError("ggonnx cannot cancel a model load")

    # -- what a session reads -----------------------------------------------------------------
    @property
    def free_dimension_overrides(self) -> tuple[dict, dict]:
        return dict(self._dims_by_name), dict(self._dims_by_denotation)

    @property
    def initializers(self) -> dict:
        return dict(self._initializers)

    @property
    def config(self) -> dict:
        return dict(self._config)


def _dim_value(value) -> int:
    v = int(value)
    if v < 0:
        raise ValueError(f"a free dimension override must be >= 0, got {value}")
    return v


_COPIED_FIELDS = ("intra_op_num_threads", "inter_op_num_threads", "log_severity_level", "log_verbosity_level",
                  "logid", "enable_profiling", "profile_file_prefix", "optimized_model_filepath",
                  "enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse", "use_deterministic_compute",
                  "use_per_session_threads")


def from_onnxruntime(options) -> SessionOptions:
    """ggonnx's SessionOptions read from ``options`` (an onnxruntime.SessionOptions or ours).

    onnxruntime's class cannot report the initializers, free-dimension overrides or unknown config
    keys added to it: ggonnx reads the fields and the config keys it knows, and says so once."""
    if options is None:
        return SessionOptions()
    if isinstance(options, SessionOptions):  # a copy: later changes to the caller's object do not apply
        ours = SessionOptions()
        ours.__dict__.update({k: dict(v) if isinstance(v, dict) else v for k, v in options.__dict__.items()})
        return ours
    ours = SessionOptions()
    for name in _COPIED_FIELDS:
        if hasattr(options, name):
            setattr(ours, name, getattr(options, name))
    ours.graph_optimization_level = GraphOptimizationLevel(int(options.graph_optimization_level))
    ours.execution_mode = ExecutionMode(int(options.execution_mode))
    for key in SESSION_CONFIG_KEYS:
        try:
            ours._config[key] = options.get_session_config_entry(key)
        except Exception:  # onnxruntime raises when the key is not set
            pass
    if "onnxruntime" not in _warned_keys:
        _warned_keys.add("onnxruntime")
        warnings.warn("ggonnx: read an onnxruntime.SessionOptions; initializers and free-dimension overrides "
                      "added to it cannot be read back from onnxruntime's class: use ggonnx.SessionOptions "
                      "for those", RuntimeWarning, stacklevel=3)
    return ours


class RunOptions:
    """onnxruntime.RunOptions: ``terminate`` stops a run before it starts with ``Fail``;
    ``log_severity_level`` applies to the run's log records; ``logid`` tags them (the run tag)."""

    def __init__(self):
        self.terminate = False
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.only_execute_path_to_fetches = False
        self._config: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        try:
            return self._config[key]
        except KeyError:
            raise RuntimeError(f"RunOptions does not have configuration with key: {key}") from None

    def add_active_adapter(self, adapter) -> None:
        raise NotImplementedError("ggonnx has no LoRA adapters")
