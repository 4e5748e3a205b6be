"""Resident memory and time to the first result of a float32 .onnx opened by path, ggonnx
beside onnxruntime, each in a fresh Python process.

    python bench/memory.py [--only NAME ...] [--runs 50] [--repeat 3]

Per runtime: load + first run (seconds, imports done before the clock starts, the file read
once before so both start from the page cache), RSS growth over the process's baseline after
that first run and after ``--runs`` more, the ratios to onnxruntime, and the growth from the 10th run to the last
(a leak shows there). Medians of ``--repeat`` fresh processes.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from gguf_load import CHILD_PRELUDE, cases, in_fresh_process

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
CHILD = CHILD_PRELUDE + r"""
runtime, path, feeds_path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
feeds = dict(np.load(feeds_path))
if runtime == "ggonnx":
    import ggonnx
    base = rss(); t0 = time.perf_counter()
    sess = ggonnx.Session(path, threads=2)
else:
    import harness
    base = rss(); t0 = time.perf_counter()
    sess = harness.ort_session(path, 2)
sess.run(None, feeds)
first = time.perf_counter() - t0
after_first = rss() - base
for _ in range(10):
    sess.run(None, feeds)
after_10 = rss() - base
for _ in range(runs - 10):
    sess.run(None, feeds)
print(json.dumps({{"first_s": first, "rss_first": after_first, "rss_10": after_10, "rss_runs": rss() - base}}))
"""


def measure(runtime: str, path: str, feeds_path: str, runs: int) -> dict:
    return in_fresh_process(CHILD, path, [runtime, path, feeds_path, str(runs)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", metavar="NAME")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print("| case | runtime | load + first run s | × onnxruntime | RSS after first run MB | "
          f"after {args.runs} more runs MB | × onnxruntime | growth from run 10 to {args.runs} MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, build in cases().items():
        if args.only and not any(o in name for o in args.only):
            continue
        model, feeds, _ = build()
        path, feeds_path = os.path.join(CACHE, f"{name}.onnx"), os.path.join(CACHE, f"{name}_feeds.npz")
        with open(path, "wb") as fh:
            fh.write(model)
        np.savez(feeds_path, **feeds)
        got = {}
        for _ in range(args.repeat):  # alternated, so a slow spell of the machine hits both
            for runtime in ("onnxruntime", "ggonnx"):
                got.setdefault(runtime, []).append(measure(runtime, path, feeds_path, args.runs))
        med = {rt: {k: float(np.median([m[k] for m in ms])) for k in ms[0]} for rt, ms in got.items()}
        ref = med["onnxruntime"]
        for runtime, m in med.items():
            print(f"| {name} | {runtime} | {m['first_s']:.2f} | {m['first_s'] / ref['first_s']:.2f} | "
                  f"{m['rss_first']:.0f} | {m['rss_runs']:.0f} | {m['rss_runs'] / ref['rss_runs']:.2f} | "
                  f"{m['rss_runs'] - m['rss_10']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
