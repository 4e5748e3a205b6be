"""InferenceSession: onnxruntime.InferenceSession's API over a ggonnx Session.

SessionOptions, RunOptions, providers, OrtValues, IOBinding, run_async and profiling behave as in
onnxruntime; where ggonnx does something else the docstring says so (ggonnx.ort_options lists the
fields accepted without effect and why).
"""
from __future__ import annotations

import logging
import threading
import time
import warnings

from ggonnx.errors import InvalidArgument, RunTerminated
from ggonnx.importer import ImportOptions
from ggonnx.ort_options import (GraphOptimizationLevel, LOGGER, RunOptions, from_onnxruntime, logging_level)
from ggonnx.ort_values import IOBinding, OrtValue, as_array
from ggonnx.runtime_info import CPU_PROVIDER
from ggonnx.session import Session

_default_severity = 2  # onnxruntime's default: warnings and worse


def set_default_logger_severity(severity: int) -> None:
    """Log records below ``severity`` (0 verbose .. 4 fatal) are dropped unless a session or run
    sets its own level; records go to the "ggonnx" logger (stderr when nothing else handles it)."""
    global _default_severity
    logging_level(severity)
    _default_severity = int(severity)


def _emit(severity: int, threshold: int, message: str) -> None:
    if severity < threshold:
        return
    if not LOGGER.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s:ggonnx] %(message)s"))
        LOGGER.addHandler(handler)
    # the threshold is onnxruntime's severity, so the logger's own level is not consulted
    LOGGER.handle(LOGGER.makeRecord(LOGGER.name, logging_level(severity), __file__, 0, message, (), None))


def _provider_list(providers, provider_options) -> tuple[list, list]:
    providers = providers or [CPU_PROVIDER]
    if provider_options is not None and len(provider_options) != len(providers):
        raise ValueError("'providers' and 'provider_options' should be the same length if both are given")
    names, options = [], []
    for i, p in enumerate(providers):
        name, opts = (p[0], dict(p[1])) if isinstance(p, (tuple, list)) else (p, {})
        if provider_options is not None:
            opts = dict(provider_options[i])
        if not isinstance(name, str):
            raise ValueError(f"a provider is a name or a (name, options) tuple, got {p!r}")
        names.append(name)
        options.append(opts)
    return names, options


class InferenceSession(Session):
    """onnxruntime.InferenceSession's constructor and methods over a ggonnx Session.

    Providers other than the CPU one fall back to the CPU with a warning (as onnxruntime does for a
    provider it lacks). ``weights=`` is ggonnx's weight type, as for ``Session`` (also settable as the
    session config entry "ggonnx.weights").
    """

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, *,
                 weights: str | None = None, **kwargs):
        disabled = kwargs.pop("disabled_optimizers", None)
        if kwargs:
            raise TypeError(f"InferenceSession got unexpected keyword arguments {sorted(kwargs)}")
        if disabled:
            raise NotImplementedError("disabled_optimizers: ggonnx's rewrites are not onnxruntime's optimizers; "
                                      "use graph_optimization_level=ORT_DISABLE_ALL to turn them all off")
        self._requested = (providers, provider_options)
        self._sess_options = opts = from_onnxruntime(sess_options)
        self._set_providers(providers, provider_options, stacklevel=3)
        config = opts.config
        self._severity = int(opts.log_severity_level)
        self._logid = opts.logid
        dims_by_name, dims_by_denotation = opts.free_dimension_overrides
        import_options = ImportOptions(
            optimized=GraphOptimizationLevel(opts.graph_optimization_level) != GraphOptimizationLevel.ORT_DISABLE_ALL,
            dims_by_name=tuple(sorted(dims_by_name.items())),
            dims_by_denotation=tuple(sorted(dims_by_denotation.items())),
            initializers=tuple(opts.initializers.items()))
        self._t_load = time.monotonic_ns()
        self._profiling_start_ns = 0
        super().__init__(path_or_bytes, threads=opts.intra_op_num_threads or None,
                         weights=weights or config.get("ggonnx.weights"),
                         use_blas=config.get("ggonnx.use_blas", "1") != "0",
                         plan_cache_size=int(config.get("ggonnx.plan_cache_size", 16)),
                         import_options=import_options)
        t_ready = time.monotonic_ns()
        if self._profiler is not None:
            self._profiler.add("Session", "session_initialization", self._t_load, t_ready)
        self._log(1, f"session ready in {(t_ready - self._t_load) / 1e6:.1f} ms: {len(self._graph.nodes)} nodes "
                     f"after optimization, {self.threads} threads")

    def _after_import(self):
        if self._sess_options.enable_profiling:
            from ggonnx.profiling import Profiler
            self._profiler = Profiler(self._graph, self._sess_options.profile_file_prefix)
            self._profiler.add("Session", "model_loading", self._t_load, time.monotonic_ns())
            self._profiling_start_ns = self._profiler.start_ns
        path = self._sess_options.optimized_model_filepath
        if path:
            from ggonnx.ir_export import save_graph
            save_graph(self._graph, path)
            self._log(1, f"wrote the optimized graph to {path}")

    def _reopen_kwargs(self) -> dict:
        providers, provider_options = self._requested
        return {"sess_options": self._sess_options, "providers": providers, "provider_options": provider_options,
                "weights": self._open_kwargs["weights"]}

    def _log(self, severity: int, message: str, run_severity: int = -1) -> None:
        threshold = run_severity if run_severity >= 0 else self._severity if self._severity >= 0 else _default_severity
        _emit(severity, threshold, f"[{self._logid or 'session'}] {message}")

    # -- providers ------------------------------------------------------------------------------
    def _set_providers(self, providers, provider_options, stacklevel: int) -> None:
        names, options = _provider_list(providers, provider_options)
        for name, opts in zip(names, options):
            if name != CPU_PROVIDER:
                warnings.warn(f"ggonnx: provider {name!r} is not available; running on CPU", RuntimeWarning,
                              stacklevel=stacklevel)
            elif opts:
                warnings.warn(f"ggonnx: CPUExecutionProvider options {sorted(opts)} have no effect in ggonnx",
                              RuntimeWarning, stacklevel=stacklevel)

    def set_providers(self, providers=None, provider_options=None) -> None:
        """Everything runs on the CPU provider; other names warn and fall back, as in the constructor."""
        self._set_providers(providers, provider_options, stacklevel=3)
        self._requested = (providers, provider_options)

    def get_provider_options(self) -> dict:
        """Return the options of each registered provider: {"CPUExecutionProvider": {}}."""
        return {CPU_PROVIDER: {}}

    def disable_fallback(self) -> None:
        """Accepted: every node already runs on the CPU provider, so there is nothing to fall back from."""

    def enable_fallback(self) -> None:
        """Accepted: see disable_fallback."""

    def get_session_options(self):
        """Return the session options (a ggonnx.SessionOptions, also when onnxruntime's was given)."""
        return self._sess_options

    # -- running --------------------------------------------------------------------------------
    def run(self, output_names, input_feed, run_options: RunOptions | None = None) -> list:
        """Compute ``output_names`` (None = all) from ``input_feed`` {name: array, list, scalar or OrtValue}."""
        run_severity = -1
        tag = ""
        if run_options is not None:
            if run_options.terminate:
                raise RunTerminated("Exiting due to terminate flag being set to true.")
            run_severity = int(run_options.log_severity_level)
            tag = run_options.logid
        t0 = time.monotonic_ns()
        outs = super().run(output_names, input_feed)
        t1 = time.monotonic_ns()
        profiler = self._profiler
        if profiler is not None:
            profiler.add("Session", "model_run", t0, t1, {"run_tag": tag} if tag else None)
        self._log(0, f"run {tag!r}: {(t1 - t0) / 1e6:.3f} ms, {self.plan_count} plans cached", run_severity)
        return outs

    # -- profiling ------------------------------------------------------------------------------
    def end_profiling(self) -> str:
        """Stop profiling and write the Chrome-trace JSON (``profile_file_prefix`` + date + .json);
        returns its path ("" when profiling was off), as onnxruntime does."""
        profiler, self._profiler = self._profiler, None
        if profiler is None:
            return ""
        self._stop_profiling()
        return profiler.write()

    def get_profiling_start_time_ns(self) -> int:
        """Return the wall-clock time (ns since the epoch) profiling started; 0 when it is off."""
        return self._profiling_start_ns

    def run_with_ort_values(self, output_names, input_dict_ort_values, run_options=None) -> list[OrtValue]:
        """Compute the outputs from a {name: OrtValue} feed; returns OrtValues."""
        feeds = {k: as_array(v) for k, v in input_dict_ort_values.items()}
        return [OrtValue(o) for o in self.run(output_names, feeds, run_options)]

    def run_async(self, output_names, input_feed, callback, user_data, run_options=None) -> None:
        """Run on a worker thread; ``callback(outputs, user_data, error_message)`` is called there
        (outputs None and a message on failure, as onnxruntime's callback gets)."""
        def work():
            try:
                outs = self.run(output_names, input_feed, run_options)
            except Exception as exc:  # reported to the callback, as onnxruntime does
                callback(None, user_data, f"{type(exc).__name__}: {exc}")
                return
            callback(outs, user_data, "")
        threading.Thread(target=work, name="ggonnx-run-async", daemon=True).start()

    def io_binding(self) -> IOBinding:
        """Return an IOBinding for this session."""
        return IOBinding(self)

    def run_with_iobinding(self, iobinding: IOBinding, run_options=None) -> None:
        """Compute the bound outputs from the bound inputs."""
        if iobinding._session is not self:
            raise InvalidArgument("this IOBinding belongs to another session")
        iobinding._run(run_options)

