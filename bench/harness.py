"""ggonnx and onnxruntime side by side in one process, measured fairly.

Fairness rules (see bench/README.md): same thread count, onnxruntime with
spinning off and sequential execution, outputs checked against each other,
warm-up first, then alternating blocks of calls with each block's first call
dropped, medians reported.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field

import ggonnx
# The timing protocol itself lives in the package (`ggonnx bench` uses it too); re-exported
# here so the scripts of bench/ keep importing it from harness.
from ggonnx.benchmark import (OtherLoad, auto_per_block, max_abs_diff, ort_session, percentile,  # noqa: F401
                              time_blocks, time_calls)

# Outputs agree when max |ggonnx - onnxruntime| <= AGREE_RTOL * max |onnxruntime|.
AGREE_RTOL = 1e-3


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


def bench_args(default_budget: float) -> argparse.ArgumentParser:
    """The options every side-by-side table script takes (--budget, --threads); add more, then parse."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=default_budget, help="seconds of timed calls per runtime and case")
    ap.add_argument("--threads", type=int, default=2)
    return ap


def comparison_cells(c: Comparison, digits: int = 4) -> str:
    """A table row's timing cells: ggonnx ms, onnxruntime ms, ratio, agree."""
    return f"{c.ggonnx_ms:.{digits}f} | {c.ort_ms:.{digits}f} | {c.ratio:.2f} | {'yes' if c.agree else 'NO'}"
