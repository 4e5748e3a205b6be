"""Two builds of ggonnx side by side: the same models timed in alternating blocks by one worker
process per build, so machine drift hits both alike.

    python bench/builds.py --python /path/to/venv-a/bin/python --python /path/to/venv-b/bin/python \
        [--model bench/.cache/resnet50_b1.onnx ...] [--blocks 9] [--threads 2]

Each worker opens the model with its own ggonnx (e.g. the -march=native build and the portable
wheel), runs it once, then answers "time N" with N call times; the report gives each build's
median ms and the ratio of the second to the first (the median of per-block ratios).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
DEFAULT_MODELS = ["resnet50_b1.onnx", "mobilenet_v2_b1_224x224.onnx", "efficientnet_b0_b1_224x224.onnx",
                  "hf_bert_base_b1_s128.onnx", "hf_gpt2_b1_s64.onnx", "hf_whisper_tiny_encoder_b1.onnx"]

WORKER = r"""
import json, sys, time
import numpy as np
import ggonnx, ggonnx.cpu_variant as cv
path, threads = sys.argv[1], int(sys.argv[2])
sess = ggonnx.Session(path, threads=threads)
rng = np.random.default_rng(0)
feeds = {}
for a in sess.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in a.shape]
    dt = np.dtype({"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}[a.type])
    feeds[a.name] = rng.standard_normal(shape).astype(dt) if dt.kind == "f" else np.ones(shape, dt)
sess.run(None, feeds)
print(json.dumps({"variant": cv.chosen[0]}), flush=True)
for line in sys.stdin:
    n = int(line.split()[1])
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        out.append(time.perf_counter_ns() - t0)
    print(json.dumps(out), flush=True)
"""


def _worker(python: str, model: str, threads: int):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    proc = subprocess.Popen([python, "-c", WORKER, model, str(threads)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd="/")
    hello = json.loads(proc.stdout.readline())
    return proc, hello["variant"]


def _block(proc, n: int) -> list[int]:
    proc.stdin.write(f"time {n}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def compare(pythons: list[str], model: str, blocks: int, threads: int, budget_ms: float = 1500) -> dict:
    workers = [_worker(p, model, threads) for p in pythons]
    try:
        warm = _block(workers[0][0], 3)
        per_block = max(3, min(200, int(budget_ms * 1e6 / max(1, statistics.median(warm)))))
        samples = [[] for _ in workers]
        ratios = []
        for b in range(blocks):
            order = range(len(workers)) if b % 2 == 0 else reversed(range(len(workers)))
            medians = {}
            for i in order:
                times = _block(workers[i][0], per_block)
                samples[i] += times
                medians[i] = statistics.median(times)
            ratios.append(medians[1] / medians[0])
        return {"model": os.path.basename(model), "variants": [v for _, v in workers],
                "ms": [statistics.median(s) / 1e6 for s in samples], "ratio": statistics.median(ratios),
                "block_ratios": [round(r, 3) for r in ratios], "calls": [len(s) for s in samples]}
    finally:
        for proc, _ in workers:
            proc.stdin.close()
            proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", required=True, help="interpreter of a build (give two)")
    ap.add_argument("--model", action="append", help="an .onnx file (default: six bench models from .cache)")
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if len(args.python) != 2:
        ap.error("give --python twice: the reference build first")
    # absolute paths: the workers run from / (no project on their import path)
    models = [os.path.abspath(m) for m in args.model] if args.model else \
        [os.path.join(CACHE, m) for m in DEFAULT_MODELS if os.path.exists(os.path.join(CACHE, m))]
    print("| model | build A ms | build B ms | B / A (median of block ratios) | block ratios |")
    print("|---|---|---|---|---|")
    ratios = []
    for model in models:
        r = compare(args.python, model, args.blocks, args.threads)
        ratios.append(r["ratio"])
        print(f"| {r['model']} ({' vs '.join(r['variants'])}) | {r['ms'][0]:.2f} | {r['ms'][1]:.2f} | "
              f"{r['ratio']:.3f} | {r['block_ratios']} |", flush=True)
    print(f"\ngeomean B / A: {statistics.geometric_mean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
