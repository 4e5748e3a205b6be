"""Does a runtime burn CPU while idle?

Each runtime is measured in its own child process: the process CPU time used
during a 300 ms sleep, before any session exists (baseline) and right after
runs that used both BLAS (MLP at 128x768x3072) and ggml's own threads (Relu,
and an 8x768x768 MatMul that ggonnx places on ggml's CPU kernels). Reported
as % of one core; 0 means the worker threads sleep.

    python bench/idle_cpu.py [--threads 2] [--runs 20]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from models import matmul_chain, single_matmul

WINDOW_S = 0.3
WINDOWS_AFTER = 3
RUNTIMES = ("ggonnx", "onnxruntime", "onnxruntime-spinning")


def cpu_percent_over_sleep(seconds: float = WINDOW_S) -> float:
    """Process CPU time during a sleep of ``seconds``, as % of one core."""
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return 100 * (time.process_time() - c0) / (time.perf_counter() - w0)


def make_session(runtime: str, model: bytes, threads: int):
    if runtime == "ggonnx":
        import ggonnx
        return ggonnx.Session(model, threads=threads)
    from harness import ort_session
    return ort_session(model, threads, spinning=runtime == "onnxruntime-spinning")


def measure(runtime: str, threads: int, runs: int) -> dict:
    """In this process: baseline window, runs, then consecutive idle windows."""
    cases = [matmul_chain(128, [768, 3072, 768]), single_matmul(8, 768, 768)]
    baseline = cpu_percent_over_sleep()
    sessions = [(make_session(runtime, model, threads), feeds) for model, feeds, _ in cases]
    for _ in range(runs):
        for sess, feeds in sessions:
            sess.run(None, feeds)
    after = [cpu_percent_over_sleep() for _ in range(WINDOWS_AFTER)]
    return {"runtime": runtime, "baseline": baseline, "after": after,
            "threads_alive": len(os.listdir("/proc/self/task"))}


def run_child(runtime: str, threads: int, runs: int) -> dict:
    cmd = [sys.executable, __file__, "--child", runtime, "--threads", str(threads), "--runs", str(runs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    ms = int(WINDOW_S * 1000)
    windows = [f"{i * ms}–{(i + 1) * ms} ms after" for i in range(WINDOWS_AFTER)]
    cols = ["runtime", "baseline (no session)"] + windows + ["threads in process"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        cells = [r["runtime"], f"{r['baseline']:.2f}%"] + [f"{a:.2f}%" for a in r["after"]] + [str(r["threads_alive"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.threads, args.runs)))
        return 0
    results = [run_child(rt, args.threads, args.runs) for rt in RUNTIMES]
    print(f"Process CPU during {int(WINDOW_S * 1000)} ms sleeps, % of one core, {args.threads} threads "
          f"(onnxruntime: allow_spinning 0, and 1 for reference)\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
