"""resnet50 top-1 agreement with float32, per weight type, over 100 random inputs.

    python bench/top1_agreement.py [--types bf16,q8_0,q6_K,q4_K,q4_0] [--n 100]

Random weights (BatchNorm calibrated on random images) give logits with small margins, so
agreement here is a pessimistic bound on a trained network's.
"""
from __future__ import annotations

import argparse

import numpy as np

import ggonnx
import vision


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="bf16,q8_0,q6_K,q4_K,q4_0")
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args(argv)
    model, feeds, _ = vision.CASES["resnet50_b1"]()
    name = next(iter(feeds))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(feeds[name].shape).astype(np.float32) for _ in range(args.n)]
    ref = ggonnx.Session(model, threads=2)
    top = [int(ref.run(None, {name: x})[0].argmax()) for x in xs]
    for t in args.types.split(","):
        sess = ggonnx.Session(model, threads=2, weights=t)
        agree = sum(int(sess.run(None, {name: x})[0].argmax()) == k for x, k in zip(xs, top))
        print(f"{t}: top-1 agreement with float32 {agree}/{args.n}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
