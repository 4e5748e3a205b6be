"""One session, many shapes: bert-base and gpt2 exported with free batch and sequence axes, run
at batch 1/4/8 x sequence 1/16/64/128 in a shuffled order, twice over, then each shape's output
checked against onnxruntime's. Resident memory (ggonnx alone in the process, above what it held
before the session): after load and the first run, after the first pass, and the change over
the second: weights are uploaded once and shared by every shape's plan (and plans by one
compute block), so revisiting every shape should add nothing.

    python bench/shape_sweep.py [--models bert_base,gpt2] [--seed 0]
"""
from __future__ import annotations

import argparse
import itertools
import random

import numpy as np

import ggonnx
from harness import ort_session
from transformers_models import export, make_feeds


def rss() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sweep(name: str, seed: int) -> str:
    model = export(name, free_batch=True)
    shapes = list(itertools.product((1, 4, 8), (1, 16, 64, 128)))
    passes = [random.Random(seed + k).sample(shapes, len(shapes)) for k in range(2)]
    base = rss()
    sess = ggonnx.Session(model, threads=2)
    sess.run(None, make_feeds(name, *passes[0][0]))
    marks = [rss()]
    for order in passes:  # ggonnx alone in the process while its memory is measured
        for batch, seq in order:
            sess.run(None, make_feeds(name, batch, seq))
        marks.append(rss())
    oracle = ort_session(model, 2)
    worst = 0.0
    for batch, seq in passes[1]:
        feeds = make_feeds(name, batch, seq)
        for a, b in zip(sess.run(None, feeds), oracle.run(None, feeds)):
            assert a.shape == b.shape, (name, batch, seq, a.shape, b.shape)
            worst = max(worst, float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b))))))
    weights = sess._engine.weight_bytes / 2**20
    first = " ".join(f"{b}x{s}" for b, s in passes[0][:6])
    return (f"| {name} | {2 * len(shapes)} | {first} ... | {worst:.1e} | {weights:.0f} | {marks[0] - base:.0f} | "
            f"{marks[1] - base:.0f} | {marks[2] - marks[1]:+.0f} | {sess.plan_count} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bert_base,gpt2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print("| model | runs | first pass order (first six, batch x seq) | max diff / max abs vs onnxruntime | "
          "ggml weights MB | RSS after load + first run MB | after the first pass MB | second pass MB | "
          "plans kept |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        print(sweep(name, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
