"""Timing ggonnx, alone or beside onnxruntime, fairly: what `ggonnx bench` and bench/ share.

The protocol (bench/README.md, "Fairness rules"): the same thread count for both runtimes,
onnxruntime with sequential execution, one inter-op thread and intra-op spinning off (ggml's
workers sleep between graphs, so spinning would bill onnxruntime's idle time to nobody), warm-up
first, then alternating blocks of calls so that drift in machine load hits every runtime alike,
each block's first call dropped, percentiles reported.
"""
from __future__ import annotations

import gc
import os
import statistics
import time

import numpy as np


def ort_session(model, threads: int, spinning: bool = False):
    """An onnxruntime CPU session set up as the fairness rules ask (``model``: path or bytes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def max_abs_diff(outs, refs) -> tuple[float, float]:
    """(max |a - b|, max |b|) over all outputs; inf when the outputs do not line up.

    Outputs that are not numeric tensors (strings, sequences, maps) count as 0 when equal."""
    if len(outs) != len(refs):
        return float("inf"), 0.0
    diff, scale = 0.0, 0.0
    for a, b in zip(outs, refs):
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.dtype.kind in "OUS":
            same = _equal(a, b)
            if not same:
                return float("inf"), 0.0
            continue
        if a.shape != b.shape:
            return float("inf"), 0.0
        if b.size:
            diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
            scale = max(scale, float(np.max(np.abs(b.astype(np.float64)))))
    return diff, scale


def _equal(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def percentile(samples_ns: list[int], q: float) -> float:
    """q-th percentile of samples in ns, in ms."""
    return float(np.percentile(samples_ns, q)) / 1e6


def summary(samples_ns: list[int]) -> dict | None:
    """{"median_ms", "p90_ms", "min_ms", "calls"} of samples in ns; None for no samples."""
    if not samples_ns:
        return None
    return {"median_ms": percentile(samples_ns, 50), "p90_ms": percentile(samples_ns, 90),
            "min_ms": min(samples_ns) / 1e6, "calls": len(samples_ns)}


class OtherLoad:
    """Share of the machine's CPU time used by other processes between start() and stop().

    Read from /proc/stat (all CPUs) minus this process's own CPU time; Linux only,
    resolution one clock tick, so meaningful over runs of a second or more.
    """

    def __init__(self):
        self._t0 = None

    def start(self):
        self._t0 = self._sample()

    def stop(self) -> float | None:
        t1 = self._sample()
        if self._t0 is None or t1 is None:
            return None
        (busy0, own0, wall0), (busy1, own1, wall1) = self._t0, t1
        capacity = (wall1 - wall0) * len(os.sched_getaffinity(0))
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / capacity if capacity > 0 else None

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as fh:
                ticks = [int(x) for x in fh.readline().split()[1:]]
        except OSError:
            return None
        idle = ticks[3] + ticks[4]                       # idle + iowait
        busy = (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        return busy, t.user + t.system, time.perf_counter()


def time_calls(run, n: int, progress=None) -> list[int]:
    """n calls of run(), each timed in ns; ``progress(1)`` after each, outside the timed span."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - t0)
        if progress is not None:
            progress(1)
    return samples


def auto_per_block(warm_ns: list[int], blocks: int, budget_s: float, lo: int, hi: int) -> int:
    """Calls per block so that one runtime's timed calls take about budget_s."""
    per_call = statistics.median(warm_ns) / 1e9 if warm_ns else 1e-3
    return max(lo, min(hi, int(budget_s / (blocks * max(per_call, 1e-7)))))


def time_blocks(runners: dict, blocks: int, per_block: int | None, warmup: int, budget_s: float = 2.0,
                min_per_block: int = 3, max_per_block: int = 1000,
                progress=None) -> tuple[dict, int, float | None]:
    """Time each of ``runners`` {name: call} in alternating blocks, each block's first call dropped:
    ({name: samples in ns}, calls per block, other processes' load meanwhile).

    ``per_block=None`` picks the block size from the warm-up latency so that each runtime's
    timed calls take about ``budget_s`` (within [min_per_block, max_per_block]). ``progress(n)``
    is told of every call made, warm-up and dropped ones included:
    ``(warmup + blocks * (per_block + 1)) * len(runners)`` in all."""
    warm = {name: [] for name in runners}
    for _ in range(warmup):
        for name, run in runners.items():
            warm[name] += time_calls(run, 1, progress)
    if per_block is None:
        per_block = auto_per_block([t for w in warm.values() for t in w], blocks, budget_s, min_per_block,
                                   max_per_block)
    samples = {name: [] for name in runners}
    load = OtherLoad()
    gc.collect()
    gc.disable()  # a collection inside one runtime's block would be billed to it alone
    load.start()
    try:
        for _ in range(blocks):
            for name, run in runners.items():
                samples[name] += time_calls(run, per_block + 1, progress)[1:]
    finally:
        other_load = load.stop()
        gc.enable()
    return samples, per_block, other_load
