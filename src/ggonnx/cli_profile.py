"""`ggonnx profile`: where a model's time goes, per op type and per node."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from ggonnx.cli_inputs import feeds_for, model_source

FLOP_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def cmd_profile(args) -> int:
    """Profile ``--runs`` runs after a first one that plans; print the per-op-type table and the
    slowest nodes; keep the Chrome trace (--trace) and a timeline picture (--svg) if asked."""
    import ggonnx
    from ggonnx.profiling import load_events, summarize, write_svg
    model, label = model_source(args.model)
    tmp = tempfile.mkdtemp(prefix="ggonnx_profile_")
    try:
        so = ggonnx.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile_")
        if args.threads:
            so.intra_op_num_threads = args.threads
        sess = ggonnx.InferenceSession(model, so, weights=args.weights)
        feeds = feeds_for(sess, args)
        sess.run(None, feeds)  # plans this signature: its time is not part of the table
        first = len(sess._profiler.events)
        for _ in range(args.runs):
            sess.run(None, feeds)
        placement = sess.placement({k: v.shape for k, v in feeds.items() if hasattr(v, "shape")})
        path = sess.end_profiling()
        events = load_events(path)[first:]
        # GFLOP/s only where FLOPs are counted as such (elementwise ops count output elements)
        flops = {p.node: p.flops for p in placement if p.op_type in FLOP_OPS}
        table, slowest = summarize(events, flops, runs=args.runs)
        runs = [e["dur"] for e in events if e.get("name") == "model_run"]
        if args.trace:
            shutil.copyfile(path, args.trace)
        if args.svg:
            write_svg(events, args.svg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_run_ms = sorted(runs)[len(runs) // 2] / 1e3 if runs else 0.0
    if args.json:
        print(json.dumps({"model": label, "runs": args.runs, "median_run_ms": per_run_ms,
                          "op_types": [dict(zip(("op", "where", "us_per_run", "share", "gflops", "calls_per_run"), r))
                                       for r in table],
                          "slowest_nodes": [dict(zip(("node", "op", "where", "us_per_run"), r))
                                            for r in slowest[:args.top]]}))
        return 0
    print(f"model: {label}   threads: {sess.threads}   {args.runs} profiled runs, median {per_run_ms:.3f} ms "
          f"(each ggml node runs as its own graph while profiling, so runs are slower than plain ones)")
    print(f"\n{'op type':<24} {'where':<6} {'ms/run':>9} {'share':>7} {'GFLOP/s':>8} {'calls/run':>9}")
    for op, where, us, share, gflops, calls in table:
        gf = f"{gflops:8.1f}" if gflops else f"{'':8}"
        print(f"{op:<24} {where:<6} {us / 1e3:9.3f} {share:7.1%} {gf} {calls:9.1f}")
    print(f"\nslowest nodes (of {len(slowest)}):")
    width = max([len(n) for n, *_ in slowest[:args.top]] + [4])
    for node, op, where, us in slowest[:args.top]:
        print(f"  {node:<{width}}  {op:<20} {where:<6} {us / 1e3:9.3f} ms")
    for what, target in (("trace", args.trace), ("timeline", args.svg)):
        if target:
            print(f"wrote the {what} to {target}")
    return 0


def add_parser(sub, model_args, int_at_least) -> None:
    """The `profile` subcommand's arguments."""
    p = sub.add_parser("profile", help="time each node: per-op-type table, slowest nodes, Chrome trace")
    model_args(p)
    p.add_argument("--runs", type=int_at_least(1), default=10, help="profiled runs (default 10)")
    p.add_argument("--top", type=int_at_least(1), default=10, help="slowest nodes to list (default 10)")
    p.add_argument("--trace", metavar="FILE.json", help="keep the Chrome-trace JSON (Perfetto, chrome://tracing)")
    p.add_argument("--svg", metavar="FILE.svg", help="draw the last run's timeline as an SVG")
    p.add_argument("--json", action="store_true", help="print the tables as one JSON object")
