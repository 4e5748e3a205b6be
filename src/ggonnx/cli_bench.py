"""`ggonnx bench`: median / p90 / min latency, beside onnxruntime's when asked (ggonnx.benchmark)."""
from __future__ import annotations

import json
import math
import sys
import time

from ggonnx.cli_inputs import UsageError, open_and_run_once

BLOCKS = 5  # the timed calls are split into this many blocks per runtime, alternated


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr (or nothing when disabled or tqdm is missing): (update, close)."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            enabled = False
    if not enabled:
        return None, lambda: None
    bar = tqdm(total=total, file=sys.stderr, unit="call", desc="bench", leave=False)
    return bar.update, bar.close


def _ort_runner(model, threads: int, feeds: dict):
    """onnxruntime's session (the fairness rules' settings) as a call, with its first run's outputs
    and seconds; None when onnxruntime is not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    import onnx

    from ggonnx import gguf_file
    from ggonnx.benchmark import ort_session
    if gguf_file.is_gguf(model):
        raise UsageError("--compare onnxruntime needs an .onnx model (onnxruntime cannot open ggonnx's GGUF files)")
    try:
        rt = ort_session(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model, threads)
        t0 = time.perf_counter()
        refs = rt.run(None, feeds)
        first = time.perf_counter() - t0
    except Exception as exc:  # onnxruntime's own exception types are not importable by name
        raise UsageError(f"onnxruntime could not run the model: {exc}") from None
    return (lambda: rt.run(None, feeds)), refs, first


def cmd_bench(args) -> int:
    """Time ``--repeat`` calls after ``--warmup``; print a table or, with --json, one JSON object."""
    from ggonnx.benchmark import max_abs_diff, summary, time_blocks

    sess, model, label, t_load, feeds, outs, t_first = open_and_run_once(args)
    runners = {"ggonnx": lambda: sess.run(None, feeds)}
    result = {"model": label, "threads": sess.threads, "weights": args.weights,  # None: as the model has them
              "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.items()},
              "warmup": args.warmup, "load_ms": t_load * 1e3, "first_run_ms": t_first * 1e3,
              "ggonnx": None, "onnxruntime": None, "ratio": None, "max_abs_diff": None}
    if args.compare == "onnxruntime":
        ort = _ort_runner(model, sess.threads, feeds)
        if ort is None:
            print("ggonnx bench: onnxruntime is not installed (pip install onnxruntime): timing ggonnx alone",
                  file=sys.stderr)
        else:
            runners["onnxruntime"], refs, ort_first = ort
            result["max_abs_diff"] = max_abs_diff(outs, refs)[0]
            result["onnxruntime_first_run_ms"] = ort_first * 1e3
    blocks = min(BLOCKS, args.repeat)
    per_block = math.ceil(args.repeat / blocks)
    total = (args.warmup + blocks * (per_block + 1)) * len(runners)
    update, close = _progress(total, not args.json and sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        samples, _, other_load = time_blocks(runners, blocks, per_block, args.warmup, progress=update)
    finally:
        close()
    if time.perf_counter() - t0 < 1.0:  # /proc/stat counts clock ticks: a shorter span says nothing
        other_load = None
    for name, s in samples.items():
        result[name] = summary(s[:args.repeat])  # the last block's surplus calls trimmed, alike for both
    if result["onnxruntime"]:
        result["ratio"] = result["ggonnx"]["median_ms"] / result["onnxruntime"]["median_ms"]
    result["other_load"] = other_load
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


def _print_table(r: dict) -> None:
    print(f"model: {r['model']}   threads: {r['threads']}   weights: {r['weights'] or 'as in the model'}")
    for name, d in r["inputs"].items():
        print(f"input  {name}: shape {d['shape']} {d['dtype']}")
    print(f"load {r['load_ms']:.1f} ms, first run {r['first_run_ms']:.2f} ms (plans these shapes), "
          f"warm-up {r['warmup']} calls")
    print(f"\n{'':<12} {'median ms':>10} {'p90 ms':>10} {'min ms':>10} {'calls':>6}")
    for name in ("ggonnx", "onnxruntime"):
        s = r[name]
        if s:
            print(f"{name:<12} {s['median_ms']:>10.4g} {s['p90_ms']:>10.4g} {s['min_ms']:>10.4g} {s['calls']:>6}")
    if r["ratio"] is not None:
        note = " (onnxruntime runs the model's own weights)" if r["weights"] else ""
        print(f"\nratio ggonnx/onnxruntime {r['ratio']:.3f} (medians){note}   "
              f"max abs diff of outputs {r['max_abs_diff']:.3g}")
    if r["other_load"] is not None:
        print(f"other processes' CPU load while timing: {r['other_load']:.0%}")
