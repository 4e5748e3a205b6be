"""The command line: `ggonnx run`, `bench`, `profile`, `info`, `quantize`, `config` and `--version`.

Every mistake in the arguments, and every model ggonnx rejects, ends in one line on stderr and
exit code 2 (no traceback): the parser's own errors included.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ggonnx.cli_inputs import UsageError, describe, model_source, open_and_run_once, save_npz


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (its default prints the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _name_equals(what: str, parse_value):
    def parse(text: str):
        name, sep, value = text.partition("=")
        if not name or not sep or not value:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        try:
            return name, parse_value(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    return parse


def _dims(text: str) -> tuple:
    dims = tuple(int(d) for d in text.split(","))
    if any(d < 0 for d in dims):
        raise ValueError(text)
    return dims


def _dim(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _weight_type(text: str) -> str:
    from ggonnx.weight_types import TYPES
    if text not in TYPES:
        raise argparse.ArgumentTypeError(f"unknown weight type {text!r}; ggml types a weight may take: "
                                         f"{', '.join(TYPES)}")
    return text


def _model_args(p, weights_default=None):
    p.add_argument("model", nargs="?", help="model.onnx or .gguf (default: a small built-in CNN)")
    p.add_argument("--threads", type=_int_at_least(1), default=None, help="threads (default: CPUs available)")
    p.add_argument("--shape", action="append", metavar="NAME=D1,D2,..", type=_name_equals("NAME=D1,D2,...", _dims),
                   help="concrete shape of an input; its named free dims take these sizes in every input")
    p.add_argument("--dim", action="append", metavar="DIM=N", type=_name_equals("DIM=N", _dim),
                   help="size of a named free dim (such as seq) in every input")
    p.add_argument("--batch", type=_int_at_least(1), default=None, metavar="B",
                   help="size of each input's first free dim")
    p.add_argument("--weights", default=weights_default, metavar="TYPE", type=_weight_type,
                   help="ggml type of MatMul/Gemm/Conv/embedding weights (f16, bf16, q8_0, q4_K, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the `ggonnx` command and its subcommands."""
    import ggonnx
    from ggonnx import _core

    parser = _Parser(prog="ggonnx", description="ONNX inference on ggml")
    parser.add_argument("--version", action="version",
                        version=f"ggonnx {ggonnx.__version__} (ggml {_core.ggml_version_string()})")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{run,bench,profile,info,quantize,config}")

    run_p = sub.add_parser("run", help="run a model on random or given inputs")
    _model_args(run_p)
    run_p.add_argument("--input", action="append", metavar="NAME=FILE.npy", type=_name_equals("NAME=FILE.npy", str),
                       help="feed an input from a .npy file")
    run_p.add_argument("--repeat", type=_int_at_least(0), default=20, help="timed runs after the first (default 20)")
    run_p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs, keyed by output name")

    bench_p = sub.add_parser("bench", help="time a model (median, p90, min), optionally beside onnxruntime")
    _model_args(bench_p)
    bench_p.add_argument("--compare", choices=["onnxruntime"], help="time onnxruntime too, in alternating blocks")
    bench_p.add_argument("--warmup", type=_int_at_least(0), default=3, help="untimed calls first (default 3)")
    bench_p.add_argument("--repeat", type=_int_at_least(1), default=50, help="timed calls per runtime (default 50)")
    bench_p.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")

    from ggonnx.cli_profile import add_parser as add_profile_parser
    add_profile_parser(sub, _model_args, _int_at_least)

    info_p = sub.add_parser("info", help="show the model, its parameters and where each node runs")
    _model_args(info_p)

    q = sub.add_parser("quantize", help="write a GGUF file with the weights in a ggml type")
    q.add_argument("model", help="model.onnx")
    q.add_argument("-o", "--output", required=True, help="the .gguf file to write")
    q.add_argument("--weights", default="q8_0", metavar="TYPE", type=_weight_type, help="ggml type (default q8_0)")
    q.add_argument("--threads", type=_int_at_least(1), default=None, help="quantizer threads (default: CPUs available)")
    sub.add_parser("config", help="print the build configuration")
    return parser


def cmd_run(args) -> int:
    """Run the model once to plan, then ``--repeat`` timed runs; print inputs and outputs."""
    from ggonnx.benchmark import summary, time_calls
    sess, _, label, t_load, feeds, outs, t_first = open_and_run_once(args)
    stats = summary(time_calls(lambda: sess.run(None, feeds), args.repeat))
    timed = (f"median of {stats['calls']}: {stats['median_ms']:.3f} ms (p90 {stats['p90_ms']:.3f}, "
             f"min {stats['min_ms']:.3f})" if stats else "no timed runs")
    print(f"model: {label}")
    print(f"threads: {sess.threads}   load: {t_load * 1e3:.1f} ms   first run: {t_first * 1e3:.2f} ms   {timed}")
    for name, arr in feeds.items():
        print(f"input  {name}: {describe(arr)}")
    np.set_printoptions(precision=5, threshold=12, edgeitems=3)
    names = [a.name for a in sess.get_outputs()]
    for name, out in zip(names, outs):
        print(f"output {name}: {describe(out)}")
        if isinstance(out, np.ndarray):
            print(f"  {out.ravel()[:8]}")
    if args.output:
        skipped = save_npz(args.output, dict(zip(names, outs)))
        print(f"saved {len(names) - len(skipped)} outputs to {args.output}"
              + (f" (not stored: {', '.join(skipped)}, maps or empty optionals)" if skipped else ""))
    return 0


def cmd_quantize(args) -> int:
    """Write a GGUF file and count its typed weights."""
    import ggonnx
    model, label = model_source(args.model)
    t0 = time.perf_counter()
    typed = ggonnx.quantize(model, args.output, weights=args.weights, threads=args.threads)
    counts = {}
    for t in typed.values():
        counts[t] = counts.get(t, 0) + 1
    print(f"model: {label}\nwrote {args.output} in {time.perf_counter() - t0:.1f} s: "
          f"{', '.join(f'{n} {t}' for t, n in sorted(counts.items())) or 'no'} typed weights, the rest float32")
    return 0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_name(exc) -> str:
    """The exception's class, with ggonnx's own name beside an onnxruntime-style one
    ("InvalidProtobuf (ModelLoadError)")."""
    name = type(exc).__name__
    own = [c.__name__ for c in type(exc).__mro__[1:]
           if c.__module__ == "ggonnx.errors" and c.__name__.endswith("Error") and c.__name__ != "GgonnxError"]
    return f"{name} ({own[0]})" if own and not name.endswith("Error") else name


def _model_errors() -> tuple:
    """The exception types a model ggonnx (or onnx, or protobuf) rejects is reported with."""
    import onnx
    from google.protobuf.message import Error as ProtobufError

    from ggonnx.errors import GgonnxError
    return (GgonnxError, ValueError, OSError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError,
            ProtobufError)


def main(argv=None) -> int:
    """Entry point of the `ggonnx` command; returns its exit status (2 for any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's errors: already printed
        return exc.code if isinstance(exc.code, int) else 0
    if args.cmd == "config":
        import ggonnx
        ggonnx.show_config()
        return 0
    from ggonnx.cli_bench import cmd_bench
    from ggonnx.cli_info import cmd_info
    from ggonnx.cli_profile import cmd_profile
    handler = {"run": cmd_run, "bench": cmd_bench, "profile": cmd_profile, "info": cmd_info,
               "quantize": cmd_quantize}[args.cmd]
    try:
        return handler(args)
    except BrokenPipeError:  # `ggonnx info model.onnx | head`: the reader left early, not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError):
            pass
        return 0
    except UsageError as exc:
        print(f"ggonnx {args.cmd}: error: {_one_line(exc)}", file=sys.stderr)
    except _model_errors() as exc:
        print(f"ggonnx {args.cmd}: {_error_name(exc)}: {_one_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
