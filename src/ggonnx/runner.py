"""GraphRunner: one imported graph planned per input-shape signature and run.

What a Session and a control-flow body share: the weight store, the plan cache (an LRU per
signature), plan families for signatures on a line (a growing KV cache), and tracing a plan
for a new signature. Arrays in and out by position; naming, dtype checks of user feeds and the
onnxruntime API are the Session's. Control-flow bodies (ggonnx.control_flow) get runners of
their own on the same engine through ``body_runner``, handed down to the planner, so no module
below imports this one.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from operator import itemgetter

import numpy as np

from ggonnx.emitter import WeightStore
from ggonnx.errors import InvalidInputError, PlanOutgrown, PlanRetired
from ggonnx.importer import import_model, load_model
from ggonnx.ir import Graph
from ggonnx.memory import release_after_upload
from ggonnx.model_file import check_unchanged
from ggonnx.plan_family import FamilyCache
from ggonnx.planner import IslandStep, compile_plan
from ggonnx.weight_types import WeightPolicy, release_float_copies

DEFAULT_PLAN_CACHE = 16
FAMILY_PLANS_KEPT = 2   # cached plans written from a plan family (one per cache length while decoding)


def signature(value):
    """What a plan is specialised on: an array's shape; a sequence's element shapes."""
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, list):
        return ("seq",) + tuple(np.shape(v) for v in value)
    return (type(value).__name__,)


class GraphRunner:
    """Plans and runs ``graph`` on ``engine``, weights stored as ``policy`` says."""

    def __init__(self, graph: Graph, engine, policy: WeightPolicy, plan_cache_size: int = DEFAULT_PLAN_CACHE):
        self.graph = graph
        self.engine = engine
        self.weights = WeightStore(engine, policy)
        self.plans: OrderedDict = OrderedDict()
        self.plan_cache_size = max(1, plan_cache_size)
        self.build_lock = threading.Lock()
        self.profiler = None   # a ggonnx.profiling.Profiler while profiling
        self.last_sig = None   # the signature run last
        self.input_names = [i.name for i in graph.inputs]
        self.input_shapes = [i.shape for i in graph.inputs]
        # check_shapes' per input with a declared shape: (index, rank, picker of its fixed dims, their values)
        self._declared = []
        for k, declared in enumerate(self.input_shapes):
            if declared is not None:
                at = [j for j, d in enumerate(declared) if isinstance(d, int)]
                vals = tuple(declared[j] for j in at)
                self._declared.append((k, len(declared), itemgetter(*at) if at else None,
                                       vals if len(at) != 1 else vals[0]))
        # plans for signatures on a line (a growing KV cache) without tracing; only where a dim is free
        self.families = FamilyCache(enabled=any(s is None or not all(isinstance(d, int) for d in s)
                                                for s in self.input_shapes))

    def body_runner(self, model) -> GraphRunner:
        """A runner of a control-flow body ``model`` (an onnx.ModelProto) on this engine."""
        return GraphRunner(import_model(load_model(model)), self.engine, WeightPolicy(None))

    def run(self, arrays: list) -> list:
        """The graph's outputs for ``arrays`` (one per graph input, in order)."""
        sig = tuple(map(signature, arrays))
        self.last_sig = sig
        plan = self.plans.get(sig)
        if plan is None:
            return self.trace(arrays, sig=sig)
        try:
            self.plans.move_to_end(sig)
        except KeyError:  # evicted by another thread meanwhile; we still hold it
            pass
        try:
            return plan.run(arrays, self.profiler)
        except PlanOutgrown:  # data-dependent shapes or integer ranges moved: plan again for these values
            return self.trace(arrays, replace=True)
        except PlanRetired:  # another thread's new plan took this one over after we fetched it
            return self.trace(arrays)

    def check_shapes(self, sig) -> None:
        """Each array input's shape against its declared one (free dims are strings); run per new
        signature, so its declared dims are picked with one itemgetter call (a decode step of
        gpt2: 26 inputs, ~60 us in generator expressions before)."""
        for k, rank, pick, fixed in self._declared:
            got = sig[k]
            if got and isinstance(got[0], str):  # a sequence or a map: no array shape to check
                continue
            if len(got) != rank or (pick is not None and pick(got) != fixed):
                raise InvalidInputError(f"input '{self.input_names[k]}': expected shape "
                                        f"{list(self.input_shapes[k])} (strings are free dims), got {list(got)}")

    def trace(self, arrays: list, replace: bool = False, sig=None) -> list:
        """Plan the signature of ``arrays`` (``sig``, where the caller has it) by tracing a run on
        them, or writing it from a plan family; returns that run's outputs."""
        if sig is None:
            sig = tuple(map(signature, arrays))
        self.check_shapes(sig)
        with self.build_lock:
            plan = None if replace else self.plans.get(sig)
            if plan is not None:
                return plan.run(arrays, self.profiler)
            t0 = time.monotonic_ns()
            plan = None
            check_unchanged(self.graph.mapped)  # a new plan may read weights from the model file again
            if not replace and self.families.covers(sig):
                # drop the family's older plans first: the new one reuses their compute memory (a
                # fresh buffer's page faults cost as much as the token's compute here) and takes
                # over the oldest one's ggml context and scheduler
                older = [k for k, p in self.plans.items() if p.from_family]
                dropped = [self.plans.pop(old) for old in older[:max(0, len(older) - FAMILY_PLANS_KEPT + 1)]]
                plan = self.families.plan_for(sig, self.engine, dropped[0] if dropped else None)
            if plan is not None:
                if self.profiler is not None:
                    self.profiler.add("Session", "plan_from_family", t0, time.monotonic_ns(), {"signature": repr(sig)})
                try:
                    outs = plan.run(arrays, self.profiler)
                except PlanOutgrown:
                    plan = None
                else:
                    self.cache(sig, plan)
                    return outs
            try:
                plan, outs = compile_plan(self.graph, self.engine, self.weights, arrays, self.body_runner)
            except BaseException:
                self.weights.discard_pending()
                raise
            if self.profiler is not None:
                self.profiler.add("Session", "plan_trace", t0, time.monotonic_ns(), {"signature": repr(sig)})
            self.families.traced(sig, plan)
            self.cache(sig, plan)
            release_float_copies(self.graph, self.weights)
            release_after_upload(self.graph.mapped)
            return outs

    def cache(self, sig, plan) -> None:
        self.plans[sig] = plan
        while len(self.plans) > self.plan_cache_size:
            self.plans.popitem(last=False)

    def stop_profiling(self) -> None:
        """Plans profiled so far run every ggml node as its own graph: give them back their speed."""
        for plan in list(self.plans.values()):
            for step in plan.steps:
                if isinstance(step, IslandStep):
                    step.plan.set_profiling(False)
