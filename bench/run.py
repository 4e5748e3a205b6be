"""Run every bench case, ggonnx beside onnxruntime, and print a markdown table.

    python bench/run.py [--threads 2] [--quick] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from collections import Counter

import onnxruntime as ort

import ggonnx
from harness import OtherLoad, compare
from models import CASES

try:  # torchvision networks and detection/segmentation nets, when torch and torchvision are installed
    import torch, torchvision  # noqa: F401
    import vision
    import detection
    CASES = {**CASES, **vision.CASES, **detection.CASES}
    try:  # Hugging Face transformers (BERT, GPT-2, T5, Whisper, ViT), when transformers is installed too
        import transformers  # noqa: F401
        import transformers_models
        CASES = {**CASES, **transformers_models.CASES}
    except ImportError:
        pass
except ImportError:
    pass

MATMUL_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
FULL = dict(blocks=10, warmup=3, budget_s=3.0, min_per_block=2)
QUICK = dict(blocks=2, warmup=1, budget_s=0.25, min_per_block=2)
COLUMNS = ("case", "ggonnx ms", "onnxruntime ms", "ratio", "ggonnx p90 ms", "onnxruntime p90 ms",
           "ggonnx GFLOP/s", "onnxruntime GFLOP/s", "max abs diff", "timed calls", "other load",
           "matmul/conv FLOPs in ggml", "ggonnx matmul placement")
BUSY_MACHINE = 0.05   # other processes' share of the CPUs above which a row is flagged


def fmt_ms(ms: float) -> str:
    return f"{ms:.4f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def fmt_opt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def placement_summary(placement) -> str:
    """e.g. 'MatMul: BLAS ×2; Gemm: CPU' from ggonnx's per-node records."""
    counts = Counter()
    for p in placement:
        if p.op_type in MATMUL_OPS:
            where = p.detail.split("matmul on ")[-1] if "matmul on " in p.detail else p.where
            counts[f"{p.op_type}: {where}"] += 1
    return "; ".join(k if n == 1 else f"{k} ×{n}" for k, n in counts.items()) or "–"


def ggml_flop_share(placement) -> str:
    """Share of the MatMul/Gemm/Conv/ConvTranspose FLOPs that ggonnx ran in ggml."""
    total = sum(p.flops for p in placement if p.op_type in MATMUL_OPS)
    in_ggml = sum(p.flops for p in placement if p.op_type in MATMUL_OPS and p.where == "ggml")
    return f"{100 * in_ggml / total:.0f}%" if total else "–"


def busy(c) -> bool:
    return c.other_load is not None and c.other_load > BUSY_MACHINE


def row(name: str, c) -> tuple:
    diff = f"{c.max_abs_diff:.2e}" + ("" if c.agree else " MISMATCH")
    load = fmt_opt(None if c.other_load is None else 100 * c.other_load, ".0f") + ("% *" if busy(c) else "%")
    return (name, fmt_ms(c.ggonnx_ms), fmt_ms(c.ort_ms), f"{c.ratio:.2f}", fmt_ms(c.ggonnx_p90_ms),
            fmt_ms(c.ort_p90_ms), fmt_opt(c.ggonnx_gflops, ".1f"), fmt_opt(c.ort_gflops, ".1f"), diff,
            str(c.calls), load, ggml_flop_share(c.placement), placement_summary(c.placement))


def error_row(name: str, exc: BaseException) -> tuple:
    msg = f"ERROR {type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return (name, msg) + ("",) * (len(COLUMNS) - 2)


def markdown(rows) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def select(only: list[str] | None) -> dict:
    if not only:
        return CASES
    picked = {k: v for k, v in CASES.items() if any(o in k for o in only)}
    if not picked:
        sys.exit(f"no case matches {only}; cases: {', '.join(CASES)}")
    return picked


def wait_for_quiet(limit_s: float) -> None:
    """Sleep in 1 s steps (up to limit_s) until other processes leave the CPUs alone."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        load = OtherLoad()
        load.start()
        time.sleep(1.0)
        other = load.stop()
        if other is None or other <= BUSY_MACHINE:
            return
        print(f"  waiting: other processes use {other:.0%} of the CPUs", file=sys.stderr, flush=True)


def git_revision() -> str:
    """Short commit of the ggonnx checkout, '+dirty' when src/ has local changes; '' outside git."""
    src = os.path.dirname(os.path.abspath(ggonnx.__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=src, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" ({rev}{'+dirty' if dirty else ''})"


def measure(run_compare, wait_quiet: float, retries: int):
    """run_compare() after waiting for quiet CPUs; re-run up to `retries` times while the machine
    was busy, keeping the measurement taken under the least other load."""
    best = None
    for attempt in range(retries + 1):
        wait_for_quiet(wait_quiet)
        c = run_compare()
        if best is None or (c.other_load or 0) < (best.other_load or 0):
            best = c
        if not busy(best):
            break
        print(f"  busy machine ({c.other_load:.0%} other load), attempt {attempt + 1}", file=sys.stderr, flush=True)
    return best


def header(threads: int, quick: bool) -> str:
    return (f"ggonnx {ggonnx.__version__}{git_revision()} vs onnxruntime {ort.__version__}, {threads} threads, "
            f"{'quick' if quick else 'full'} run, {platform.processor() or platform.machine()} "
            f"({'/'.join(ggonnx._core.cpu_features()) or 'no SIMD features'}: ratios differ between an AVX-512 and "
            f"an AVX2 CPU), {len(os.sched_getaffinity(0))} CPUs available; ratio = ggonnx / onnxruntime "
            f"(lower is better)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="few iterations, for a smoke run")
    ap.add_argument("--only", action="append", metavar="NAME", help="cases whose name contains NAME (repeatable)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each case, wait up to SECONDS for other processes to leave the CPUs idle")
    ap.add_argument("--retry-busy", type=int, default=0, metavar="N",
                    help="re-time a case up to N times when other processes loaded the CPUs meanwhile")
    args = ap.parse_args(argv)
    settings = QUICK if args.quick else FULL

    rows, failed, flagged = [], 0, 0
    t_start = time.perf_counter()
    for name, build in select(args.only).items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            model, feeds, flops = build()
            c = measure(lambda: compare(model, feeds, threads=args.threads, flops=flops, **settings),
                        args.wait_quiet, args.retry_busy)
            rows.append(row(name, c))
            failed += not c.agree
            flagged += busy(c)
        except Exception as exc:  # report and go on with the other cases
            traceback.print_exc()
            rows.append(error_row(name, exc))
            failed += 1
    print(header(args.threads, args.quick))
    print()
    print(markdown(rows))
    if flagged:
        print(f"\n\\* other processes used more than {BUSY_MACHINE:.0%} of the CPUs while this row was timed: "
              "rerun on a quiet machine before trusting it")
    print(f"\n{len(rows)} cases in {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
