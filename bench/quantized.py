"""Quantized and reduced-precision weights: ggonnx per weight type beside onnxruntime float32 and
onnxruntime's own int8 (``quantize_dynamic``) model of the same network, in one process.

    python bench/quantized.py [--types f32,bf16,q8_0,q4_K] [--only NAME ...] [--quick]

Every runner is timed in the same alternating blocks (harness.time_blocks); cosine is against
onnxruntime float32's first output.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import ggonnx
from harness import ort_session, percentile, time_blocks
from run import BUSY_MACHINE, FULL, QUICK, fmt_ms, header

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
DEFAULT_TYPES = ("f32", "bf16", "f16", "q8_0", "q6_K", "q5_K", "q4_K", "q4_0", "iq4_nl")
COLUMNS = ("case", "runtime", "weights", "ms", "× onnxruntime f32", "× onnxruntime int8", "cosine",
           "weight MB", "load s", "other load")


def cases() -> dict:
    import transformers_models
    import vision
    picked = {k: transformers_models.CASES[k] for k in ("gpt2_dyn_s1", "bert_base_dyn_s1", "gpt2_s64",
                                                          "bert_base_s128")}
    picked["resnet50_b1"] = vision.CASES["resnet50_b1"]
    return picked


def ort_int8(name: str, model: bytes) -> bytes | None:
    """onnxruntime's quantize_dynamic (int8 weights, dynamic int8 activations) of ``model``, cached."""
    path = os.path.join(CACHE, f"{name}_ort_int8.onnx")
    if not os.path.exists(path):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        os.makedirs(CACHE, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "model.onnx")
            with open(src, "wb") as fh:
                fh.write(model)
            quantize_dynamic(src, path, weight_type=QuantType.QInt8)
    with open(path, "rb") as fh:
        return fh.read()


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def bench_case(name: str, build, types, threads: int, settings: dict) -> list[tuple]:
    model, feeds, _ = build()
    runners, info = {}, {}
    rt = ort_session(model, threads)
    ref = rt.run(None, feeds)[0]
    runners["ort f32"] = lambda: rt.run(None, feeds)
    info["ort f32"] = ("onnxruntime", "f32", 1.0, None, None)
    int8 = ort_int8(name, model)
    rt8 = ort_session(int8, threads)
    runners["ort int8"] = lambda: rt8.run(None, feeds)
    info["ort int8"] = ("onnxruntime", "int8 (quantize_dynamic)", cosine(rt8.run(None, feeds)[0], ref), None, None)
    gg8 = ggonnx.Session(int8, threads=threads)  # onnxruntime's int8 model run by ggonnx: its int8 weights as q8_0
    runners["ggonnx on int8"] = lambda: gg8.run(None, feeds)
    info["ggonnx on int8"] = ("ggonnx", "onnxruntime's int8 model", cosine(gg8.run(None, feeds)[0], ref),
                              gg8.weight_bytes / 1e6, None)
    for t in types:
        t0 = time.perf_counter()
        gg = ggonnx.Session(model, threads=threads, weights=t)
        out = gg.run(None, feeds)[0]
        load = time.perf_counter() - t0
        runners[t] = (lambda g: lambda: g.run(None, feeds))(gg)
        info[t] = ("ggonnx", t, cosine(out, ref), gg.weight_bytes / 1e6, load)
    samples, _, other = time_blocks(runners, settings["blocks"], None, settings["warmup"], settings["budget_s"],
                                    settings["min_per_block"], 1000)
    ms = {k: percentile(v, 50) for k, v in samples.items()}
    rows = []
    for key, (runtime, weights, cos, mb, load) in info.items():
        rows.append((name, runtime, weights, fmt_ms(ms[key]), f"{ms[key] / ms['ort f32']:.2f}",
                     f"{ms[key] / ms['ort int8']:.2f}", f"{cos:.6f}", "–" if mb is None else f"{mb:.0f}",
                     "–" if load is None else f"{load:.1f}",
                     "–" if other is None else f"{100 * other:.0f}%" + (" *" if other > BUSY_MACHINE else "")))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", default=",".join(DEFAULT_TYPES))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", metavar="NAME")
    args = ap.parse_args(argv)
    settings = QUICK if args.quick else FULL
    types = args.types.split(",")
    rows = []
    t_start = time.perf_counter()
    for name, build in cases().items():
        if args.only and not any(o in name for o in args.only):
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows += bench_case(name, build, types, args.threads, settings)
    print(header(args.threads, args.quick))
    print()
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    print("\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]))
    print(f"\n{len(rows)} rows in {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
