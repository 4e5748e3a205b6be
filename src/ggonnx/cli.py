"""`ggonnx run`, `ggonnx info` and `ggonnx quantize`: the command line."""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SAMPLE_DIM = 1  # free (symbolic) dims get this size when no --shape is given


def _parse_shapes(items) -> dict:
    shapes = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        if not dims:
            raise SystemExit(f"--shape expects NAME=D1,D2,..., got {item!r}")
        shapes[name] = tuple(int(d) for d in dims.split(","))
    return shapes


def _load(path):
    from ggonnx.default_model import make_default_model
    if path is None:
        return make_default_model(), "built-in default CNN (seeded random weights)"
    return path, path


def _random_feeds(sess, shapes: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        shape = shapes.get(arg.name) or tuple(d if isinstance(d, int) else SAMPLE_DIM for d in (arg.shape or ()))
        feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def cmd_run(args) -> int:
    import ggonnx
    model, label = _load(args.model)
    t0 = time.perf_counter()
    sess = ggonnx.Session(model, threads=args.threads, weights=args.weights)
    t_load = time.perf_counter() - t0
    feeds = _random_feeds(sess, _parse_shapes(args.shape), args.seed)
    for item in args.input or []:
        name, _, path = item.partition("=")
        feeds[name] = np.load(path)
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(f"model: {label}")
    print(f"threads: {sess.threads}   load: {t_load * 1e3:.1f} ms   first run: {t_first * 1e3:.2f} ms   "
          f"median of {args.repeat}: {statistics.median(times) * 1e3:.3f} ms")
    for name, arr in feeds.items():
        print(f"input  {name}: shape {list(arr.shape)} {arr.dtype}")
    np.set_printoptions(precision=5, threshold=12, edgeitems=3)
    for arg, out in zip(sess.get_outputs(), outs):
        print(f"output {arg.name}: shape {list(out.shape)} {out.dtype}  mean {out.mean():.6g}  "
              f"min {out.min():.6g}  max {out.max():.6g}")
        print(f"  {out.ravel()[:8]}")
    return 0


def cmd_info(args) -> int:
    import ggonnx
    model, label = _load(args.model)
    sess = ggonnx.Session(model, threads=args.threads, weights=args.weights)
    print(f"model: {label}")
    for kind, items in (("input ", sess.get_inputs()), ("output", sess.get_outputs())):
        for a in items:
            print(f"{kind} {a.name}: {a.type} {a.shape}")
    shapes = _parse_shapes(args.shape)
    placement = sess.placement(shapes)
    width = max([len(p.node) for p in placement] + [4])
    print(f"\n{'node':<{width}}  {'op':<20} where  detail")
    for p in placement:
        print(f"{p.node:<{width}}  {p.op_type:<20} {p.where:<6} {p.detail}")
    in_ggml = sum(p.where == "ggml" for p in placement)
    folded = sum(p.detail == "folded at plan time" for p in placement)
    total = sum(p.flops for p in placement) or 1
    share = sum(p.flops for p in placement if p.where == "ggml") / total
    print(f"\n{in_ggml} of {len(placement)} nodes run in ggml, {folded} folded at plan time, "
          f"{len(placement) - in_ggml - folded} on the host; {share:.1%} of FLOPs in ggml")
    return 0


def cmd_quantize(args) -> int:
    import ggonnx
    model, label = _load(args.model)
    t0 = time.perf_counter()
    typed = ggonnx.quantize(model, args.output, weights=args.weights, threads=args.threads)
    counts = {}
    for t in typed.values():
        counts[t] = counts.get(t, 0) + 1
    print(f"model: {label}\nwrote {args.output} in {time.perf_counter() - t0:.1f} s: "
          f"{', '.join(f'{n} {t}' for t, n in sorted(counts.items())) or 'no'} typed weights, the rest float32")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ggonnx", description="ONNX inference on ggml")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, help_text in (("run", "run a model on random or given inputs"),
                            ("info", "show inputs, outputs and where each node runs")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model", nargs="?", help="model.onnx (default: a small built-in CNN)")
        p.add_argument("--threads", type=int, default=None, help="threads (default: CPUs available)")
        p.add_argument("--shape", action="append", metavar="NAME=D1,D2,..",
                       help="concrete shape for an input with free dims")
        p.add_argument("--weights", default=None, metavar="TYPE",
                       help="ggml type of MatMul/Gemm/Conv/embedding weights (f16, bf16, q8_0, q4_K, ...)")
    run_p = sub.choices["run"]
    run_p.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="feed an input from a .npy file")
    run_p.add_argument("--repeat", type=int, default=20, help="timed runs after the first (default 20)")
    run_p.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("quantize", help="write a GGUF file with the weights in a ggml type")
    q.add_argument("model", help="model.onnx")
    q.add_argument("-o", "--output", required=True, help="the .gguf file to write")
    q.add_argument("--weights", default="q8_0", metavar="TYPE", help="ggml type (default q8_0)")
    q.add_argument("--threads", type=int, default=None, help="quantizer threads (default: CPUs available)")
    sub.add_parser("config", help="print the build configuration")
    args = parser.parse_args(argv)
    if args.cmd == "config":
        import ggonnx
        ggonnx.show_config()
        return 0
    from ggonnx.errors import GgonnxError
    try:
        return {"run": cmd_run, "info": cmd_info, "quantize": cmd_quantize}[args.cmd](args)
    except (GgonnxError, ValueError) as exc:
        print(f"ggonnx: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
