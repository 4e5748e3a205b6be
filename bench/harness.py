"""ggonnx and onnxruntime side by side in one process, measured fairly.

Fairness rules (see bench/README.md): same thread count, onnxruntime with
spinning off and sequential execution, outputs checked against each other,
warm-up first, then alternating blocks of calls with each block's first call
dropped, medians reported.
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnxruntime as ort

import ggonnx

# Outputs agree when max |ggonnx - onnxruntime| <= AGREE_RTOL * max |onnxruntime|.
AGREE_RTOL = 1e-3


def ort_session(model_bytes: bytes, threads: int, spinning: bool = False) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


@dataclass
class Comparison:
    ggonnx_ms: float
    ort_ms: float
    max_abs_diff: float
    max_abs_ref: float
    calls: int                      # timed calls per runtime
    ggonnx_p90_ms: float = 0.0
    ort_p90_ms: float = 0.0
    other_load: float | None = None  # share of all CPUs busy outside this process while timing
    flops: int | None = None
    placement: list = field(default_factory=list)   # ggonnx NodePlacement records

    @property
    def ratio(self) -> float:
        return self.ggonnx_ms / self.ort_ms

    @property
    def agree(self) -> bool:
        return self.max_abs_diff <= AGREE_RTOL * max(self.max_abs_ref, 1e-30)

    def gflops(self, ms: float) -> float | None:
        return self.flops / (ms * 1e6) if self.flops else None

    @property
    def ggonnx_gflops(self):
        return self.gflops(self.ggonnx_ms)

    @property
    def ort_gflops(self):
        return self.gflops(self.ort_ms)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(ratio=self.ratio, agree=self.agree, ggonnx_gflops=self.ggonnx_gflops, ort_gflops=self.ort_gflops)
        return d


def max_abs_diff(outs, refs) -> tuple[float, float]:
    """(max |a - b|, max |b|) over all outputs; inf when the outputs do not line up."""
    if len(outs) != len(refs):
        return float("inf"), 0.0
    diff, scale = 0.0, 0.0
    for a, b in zip(outs, refs):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf"), 0.0
        if b.size:
            diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b))))
            scale = max(scale, float(np.max(np.abs(b))))
    return diff, scale


def percentile(samples_ns: list[int], q: float) -> float:
    """q-th percentile in ms."""
    return float(np.percentile(samples_ns, q)) / 1e6


class OtherLoad:
    """Share of the machine's CPU time used by other processes between start() and stop().

    Read from /proc/stat (all CPUs) minus this process's own CPU time; Linux only,
    resolution one clock tick, so meaningful over runs of a second or more.
    """

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


def time_calls(run, n: int) -> list[int]:
    """n calls of run(), each timed in ns."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - t0)
    return samples


def auto_per_block(warm_ns: list[int], blocks: int, budget_s: float, lo: int, hi: int) -> int:
    """Calls per block so that one runtime's timed calls take about budget_s."""
    per_call = statistics.median(warm_ns) / 1e9
    return max(lo, min(hi, int(budget_s / (blocks * max(per_call, 1e-7)))))


def time_blocks(runners: dict, blocks: int, per_block: int | None, warmup: int, budget_s: float,
                min_per_block: int, max_per_block: int) -> tuple[dict, int, float | None]:
    """Time each of ``runners`` {name: call} in alternating blocks, each block's first call dropped:
    ({name: samples in ns}, calls per block, other processes' load meanwhile)."""
    warm = {name: [] for name in runners}
    for _ in range(warmup):
        for name, run in runners.items():
            warm[name] += time_calls(run, 1)
    if per_block is None:
        per_block = auto_per_block([t for w in warm.values() for t in w], blocks, budget_s, min_per_block,
                                   max_per_block)
    samples = {name: [] for name in runners}
    load = OtherLoad()
    gc.collect()
    gc.disable()
    load.start()
    try:
        for _ in range(blocks):
            for name, run in runners.items():
                samples[name] += time_calls(run, per_block + 1)[1:]
    finally:
        other_load = load.stop()
        gc.enable()
    return samples, per_block, other_load


def compare(model_bytes: bytes, feeds: dict, threads: int = 2, blocks: int = 5, per_block: int | None = None,
            flops: int | None = None, warmup: int = 3, budget_s: float = 2.0,
            min_per_block: int = 3, max_per_block: int = 1000) -> Comparison:
    """Time ggonnx against onnxruntime on one model; see the module docstring for the rules.

    ``per_block=None`` picks the block size from the warm-up latency so that each
    runtime's timed calls take about ``budget_s`` (within [min_per_block, max_per_block]).
    """
    gg = ggonnx.Session(model_bytes, threads=threads)
    rt = ort_session(model_bytes, threads)
    runners = {"ggonnx": lambda: gg.run(None, feeds), "ort": lambda: rt.run(None, feeds)}

    diff, scale = max_abs_diff(runners["ggonnx"](), runners["ort"]())
    samples, per_block, other_load = time_blocks(runners, blocks, per_block, warmup, budget_s, min_per_block,
                                                 max_per_block)

    placement = gg.placement({k: v.shape for k, v in feeds.items()})
    return Comparison(ggonnx_ms=percentile(samples["ggonnx"], 50), ort_ms=percentile(samples["ort"], 50),
                      max_abs_diff=diff, max_abs_ref=scale, calls=blocks * per_block,
                      ggonnx_p90_ms=percentile(samples["ggonnx"], 90), ort_p90_ms=percentile(samples["ort"], 90),
                      other_load=other_load, flops=flops, placement=list(placement))
