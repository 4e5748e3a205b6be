"""Time to the first result and resident memory: a float32 .onnx, the same .onnx quantized at
load (Session(weights=T)), and a GGUF file written by ``ggonnx.quantize``; onnxruntime on the
float32 .onnx and on its own int8 model beside them.

    python bench/gguf_load.py [--types q8_0,q4_K] [--only NAME ...]

Each measurement runs in a fresh Python process (imports done before the clock starts), the
files read once before so every row starts from the page cache.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
# what every child starts with: imports, and rss() in MB
CHILD_PRELUDE = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
import numpy as np
"""
CHILD = CHILD_PRELUDE + r"""
runtime, path, weights, feeds_path = sys.argv[1:5]
feeds = dict(np.load(feeds_path))
if runtime == "ggonnx":
    import ggonnx
    base = rss(); t0 = time.perf_counter()
    sess = ggonnx.Session(path, weights=weights or None)
    run = lambda: sess.run(None, feeds)
else:
    import harness
    base = rss(); t0 = time.perf_counter()
    sess = harness.ort_session(path, 2)
    run = lambda: sess.run(None, feeds)
run()
first = time.perf_counter() - t0
run()
print(json.dumps({{"first_s": first, "rss_mb": rss() - base}}))
"""


def cases() -> dict:
    import transformers_models
    import vision
    picked = {k: transformers_models.CASES[k] for k in ("gpt2_dyn_s1", "bert_base_dyn_s1")}
    picked["resnet50_b1"] = vision.CASES["resnet50_b1"]
    return picked


def in_fresh_process(child: str, path: str, args: list) -> dict:
    """Run ``child`` (a code template, {bench} its folder) in a new Python with ``args`` after the
    model file ``path`` is read into the page cache; its last stdout line as JSON."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass
    code = child.format(bench=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                         text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(runtime: str, path: str, weights: str, feeds_path: str) -> dict:
    return in_fresh_process(CHILD, path, [runtime, path, weights, feeds_path])


def main(argv=None) -> int:
    import numpy as np

    import ggonnx
    import quantized

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="q8_0,q4_K")
    ap.add_argument("--only", action="append", metavar="NAME")
    args = ap.parse_args(argv)
    print("| case | runtime | model file | file MB | load + first run s | × float32 .onnx | RSS after load MB |")
    print("|---|---|---|---|---|---|---|")
    for name, build in cases().items():
        if args.only and not any(o in name for o in args.only):
            continue
        model, feeds, _ = build()
        onnx_path = os.path.join(CACHE, f"{name}.onnx")
        feeds_path = os.path.join(CACHE, f"{name}_feeds.npz")
        with open(onnx_path, "wb") as fh:
            fh.write(model)
        np.savez(feeds_path, **feeds)
        int8_path = os.path.join(CACHE, f"{name}_ort_int8.onnx")
        quantized.ort_int8(name, model)
        rows = [("onnxruntime", onnx_path, "", "float32 .onnx"), ("onnxruntime", int8_path, "", "its int8 .onnx"),
                ("ggonnx", onnx_path, "", "float32 .onnx")]
        for t in args.types.split(","):
            gguf_path = os.path.join(CACHE, f"{name}_{t}.gguf")
            ggonnx.quantize(onnx_path, gguf_path, weights=t)
            rows += [("ggonnx", onnx_path, t, f".onnx, weights={t} at load"), ("ggonnx", gguf_path, "", f"{t} .gguf")]
        base = None
        for runtime, path, weights, label in rows:
            m = measure(runtime, path, weights, feeds_path)
            if runtime == "ggonnx" and label == "float32 .onnx":
                base = m["first_s"]
            ratio = f"{m['first_s'] / base:.2f}" if base and runtime == "ggonnx" else "–"
            print(f"| {name} | {runtime} | {label} | {os.path.getsize(path) / 1e6:.0f} | {m['first_s']:.2f} | {ratio} | "
                  f"{m['rss_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
