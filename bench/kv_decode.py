"""Token-by-token decoding with a KV cache: gpt2 exported with past_key_values, each step fed the
previous step's present keys and values, so the cache grows by one every token.

    python bench/kv_decode.py [--types f32,q8_0,q4_K] [--steps 24] [--start 16]
    python bench/kv_decode.py --types q8_0 --lengths 40,200,500,1000

Per runtime (onnxruntime also on its quantize_dynamic int8 model): median and mean
milliseconds a token over the loop, after a first step that builds the session's first plan
(ggonnx traces the first few cache lengths, then writes each new length's plan from its plan
family: that time is part of its per-token cost, and the traces are in the first round's mean),
and at a fixed cache length (a repeated signature, the steady-state compute alone). The runtimes
take turns over ``--rounds`` rounds, each round ``--steps`` positions further on; the table gives
medians over rounds and each round's ratio to onnxruntime int8.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from unittest import mock

import numpy as np

import ggonnx
from harness import ort_session

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
LAYERS, HEADS, HEAD_DIM = 12, 12, 64


def export() -> str:
    path = os.path.join(CACHE, "hf_gpt2_kv.onnx")
    if os.path.exists(path):
        return path
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.cache_utils import DynamicCache
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager", use_cache=True)).eval()

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, input_ids, attention_mask, *past):
            cache = DynamicCache()
            for i in range(LAYERS):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
            flat = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
            return (out.logits, *flat)

    names = ["input_ids", "attention_mask"] + [f"past_{k}_{i}" for i in range(LAYERS) for k in "kv"]
    outs = ["logits"] + [f"present_{k}_{i}" for i in range(LAYERS) for k in "kv"]
    dyn = {"input_ids": {1: "seq"}, "attention_mask": {1: "total"}, "logits": {1: "seq"}}
    dyn.update({n: {2: "past"} for n in names[2:]})
    dyn.update({n: {2: "total"} for n in outs[1:]})
    args = (torch.randint(0, 50257, (1, 1)), torch.ones(1, 8, dtype=torch.int64),
            *[torch.randn(1, HEADS, 7, HEAD_DIM) for _ in range(2 * LAYERS)])
    os.makedirs(CACHE, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad(), \
            mock.patch("transformers.masking_utils.find_packed_sequence_indices", lambda position_ids: None):
        warnings.simplefilter("ignore")
        torch.onnx.export(Step().eval(), args, path, input_names=names, output_names=outs, dynamic_axes=dyn,
                          opset_version=17, dynamo=False)
    return path


def feeds_for(token: int, past: list) -> dict:
    feeds = {"input_ids": np.array([[token]], np.int64),
             "attention_mask": np.ones((1, past[0].shape[2] + 1), np.int64)}
    for i in range(LAYERS):
        feeds[f"past_k_{i}"], feeds[f"past_v_{i}"] = past[2 * i], past[2 * i + 1]
    return feeds


def decode(run, steps: int, start: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    run(feeds_for(42, [rng.standard_normal((1, HEADS, start - 1, HEAD_DIM)).astype(np.float32)
                       for _ in range(2 * LAYERS)]))   # the session's first plan uploads the weights
    past = [rng.standard_normal((1, HEADS, start, HEAD_DIM)).astype(np.float32) for _ in range(2 * LAYERS)]
    token, times = 42, []
    for _ in range(steps):
        feeds = feeds_for(token, past)
        t0 = time.perf_counter()
        out = run(feeds)
        times.append(time.perf_counter() - t0)
        token, past = int(out[0][0, -1].argmax()), list(out[1:])
    return float(np.median(times)) * 1e3, float(np.mean(times)) * 1e3


def fixed(run, start: int, reps: int = 20) -> float:
    rng = np.random.default_rng(0)
    feeds = feeds_for(42, [rng.standard_normal((1, HEADS, start, HEAD_DIM)).astype(np.float32)
                           for _ in range(2 * LAYERS)])
    run(feeds)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="f32,q8_0,q4_K")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--start", type=int, default=16, help="cache length before the first step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="growing-cache passes per runtime, interleaved")
    ap.add_argument("--lengths", help="instead: ms a token at these fixed cache lengths (e.g. 40,200,1000)")
    args = ap.parse_args(argv)
    path = export()
    import quantized
    with open(path, "rb") as fh:
        int8 = quantized.ort_int8("gpt2_kv", fh.read())
    runners = {"onnxruntime f32": ort_session(path, args.threads), "onnxruntime int8": ort_session(int8, args.threads)}
    for t in args.types.split(","):
        runners[f"ggonnx {t}"] = ggonnx.Session(path, threads=args.threads, weights=None if t == "f32" else t)
    if args.lengths:
        lengths = [int(v) for v in args.lengths.split(",")]
        print("| runtime | " + " | ".join(f"cache {n}: ms a token" for n in lengths) + " |")
        print("|---|" + "---|" * len(lengths))
        for name, sess in runners.items():
            run = (lambda s: lambda f: s.run(None, f))(sess)
            print(f"| {name} | " + " | ".join(f"{fixed(run, n):.1f}" for n in lengths) + " |", flush=True)
        return 0
    # rounds: every runtime decodes in turn, then the next round from where the last one ended,
    # so a drift of the machine's speed meets all runtimes alike (this VM's drifts reach 30%)
    grow = {name: [] for name in runners}
    flat = {name: [] for name in runners}
    for r in range(args.rounds):
        start = args.start + r * args.steps
        for name, sess in runners.items():
            run = (lambda s: lambda f: s.run(None, f))(sess)
            grow[name].append(decode(run, args.steps, start))
            flat[name].append(fixed(run, start + args.steps))
    base = "onnxruntime int8"
    print("| runtime | ms a token, growing cache (median / mean) | ms a token, fixed cache length "
          f"| growing × {base} (per round) |")
    print("|---|---|---|---|")
    for name in runners:
        med = float(np.median([m for m, _ in grow[name]]))
        mean = float(np.median([m for _, m in grow[name]]))
        ratios = [m / b for (m, _), (b, _) in zip(grow[name], grow[base])]
        print(f"| {name} | {med:.1f} / {mean:.1f} | {float(np.median(flat[name])):.1f} "
              f"| {float(np.median(ratios)):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
