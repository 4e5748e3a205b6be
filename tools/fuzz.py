"""Differential fuzzer: mutated ONNX node-test models run by ggonnx and by onnxruntime, the oracle.

    python tools/fuzz.py [--cases 2000] [--seed 0] [--timeout 10] [--json out.json] [--show 20]

Each case takes one of onnx's node-test models with its inputs, applies one mutation (an attribute
value, a dropped or added attribute, a rewired input, another op type, an initializer's dims, dtype
or bytes, the opset, the feeds' shapes or values — NaN, Inf, huge integers —, flipped or truncated
protobuf bytes) and runs both runtimes in a forked child with a time limit. Outcomes:

- crash: ggonnx's child died of a signal (segfault, abort);
- hang: ggonnx gave no answer within the time limit;
- oracle_crash / oracle_hang: onnxruntime crashed or hung (each runtime runs in a child of its own);
- both_hang: neither answered (a model that loops for ever);
- wrong: both ran and the outputs differ (rtol 1e-3, atol 1e-4, NaN where NaN, same shapes; for a
  model with a random op, shapes and dtypes only);
- disputed: as wrong, but onnx.reference (run then, in a child too) gives ggonnx's answer: the two
  readings of the spec differ, and which is right is decided per op (README, "Where ggonnx and
  onnxruntime differ");
- nan_documented: as wrong, for NaN or infinite feeds to an op whose answer to them onnxruntime
  makes depend on the value's place (NAN_POSITIONAL_OPS; ggonnx's rule is in the README);
- refused: onnxruntime ran it, ggonnx raised (an op or mode ggonnx lacks, or stricter checks);
- ran_invalid: onnxruntime refused the model or feed as invalid, ggonnx ran it;
- beyond_oracle: onnxruntime has no kernel for an op, type or opset of the model, ggonnx ran it;
- agree: both ran with the same outputs, or both refused.

Deterministic for a seed: case i uses random.Random(seed * 1_000_003 + i).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import select
import signal
import sys
import time
import warnings

import numpy as np
import onnx
from onnx import helper

MUTATIONS = ("attr_value", "attr_drop", "attr_add", "rewire", "op_type", "init_dims", "init_dtype",
             "init_truncate", "opset", "feed_shape", "feed_values", "flip_bytes", "truncate_bytes")


def node_cases():
    """(name, ModelProto, [input arrays]) of onnx's node tests that have data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases(None)
    out = []
    for c in cases:
        if c.model is None or not c.data_sets:
            continue
        inputs = list(c.data_sets[0][0])
        if all(isinstance(a, np.ndarray) for a in inputs):
            out.append((c.name, c.model, inputs))
    return out


def _other_value(rng, value):
    if isinstance(value, int):
        return rng.choice([-1, 0, 1, 2, 7, -7, 2**31, value + 1, value - 1, -(2**40)])
    if isinstance(value, float):
        return rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf"), value * 10])
    if isinstance(value, bytes):
        return rng.choice([b"", b"bogus", value.upper()])
    if isinstance(value, list) and value and isinstance(value[0], int):
        v = list(value)
        v[rng.randrange(len(v))] = rng.choice([-1, 0, 5, 2**31, -(2**31)])
        return v if rng.random() < 0.7 or len(v) == 1 else v[:-1]   # never empty: onnx cannot type []
    return None


def mutate(rng, model: onnx.ModelProto, feeds: list) -> tuple[str, bytes, list]:
    """One mutation of (model, feeds): (its name, serialized model, feeds)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    feeds = [np.array(f, copy=True) for f in feeds]
    g = m.graph
    kind = rng.choice(MUTATIONS)
    node = rng.choice(list(g.node)) if len(g.node) else None
    if kind in ("attr_value", "attr_drop") and node is not None and node.attribute:
        a = rng.choice(list(node.attribute))
        if kind == "attr_drop":
            node.attribute.remove(a)
        else:
            new = _other_value(rng, helper.get_attribute_value(a))
            if new is None:
                kind = "attr_drop"
                node.attribute.remove(a)
            else:
                node.attribute.remove(a)
                node.attribute.append(helper.make_attribute(a.name, new))
    elif kind == "attr_add" and node is not None:
        node.attribute.append(helper.make_attribute(rng.choice(["axis", "keepdims", "alpha", "mode", "bogus"]),
                                                    rng.choice([1, -3, 0.5, "edge"])))
    elif kind == "rewire" and node is not None and node.input:
        names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
        node.input[rng.randrange(len(node.input))] = rng.choice(names + [""])
    elif kind == "op_type" and node is not None:
        node.op_type = rng.choice(["Relu", "Add", "MatMul", "Concat", "Reshape", "Transpose", "Softmax", "ReduceSum",
                                   "Gather", "Slice", "Conv", "MaxPool", "Where", "Cast", "Expand", "Resize"])
    elif kind.startswith("init_") and g.initializer:
        t = rng.choice(list(g.initializer))
        if kind == "init_dims" and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 3, 1000])
        elif kind == "init_dtype":
            t.data_type = rng.choice([1, 6, 7, 10, 11, 9])
        elif t.raw_data:
            t.raw_data = t.raw_data[:len(t.raw_data) // 2]
    elif kind == "opset":
        for op in m.opset_import:
            if op.domain in ("", "ai.onnx"):
                op.version = rng.choice([1, 6, 9, 11, 13, 17, 21, 30])
    elif kind == "feed_shape" and feeds:
        k = rng.randrange(len(feeds))
        f = feeds[k]
        shape = list(f.shape) or [1]
        shape[rng.randrange(len(shape))] = rng.choice([0, 1, 2, 5])
        feeds[k] = np.resize(f, shape).astype(f.dtype) if f.size else np.zeros(shape, f.dtype)
    elif kind == "feed_values" and feeds:
        k = rng.randrange(len(feeds))
        f = feeds[k]
        if f.size:
            flat = f.reshape(-1)
            if f.dtype.kind == "f":
                flat[rng.randrange(flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
            elif f.dtype.kind in "iu":
                info = np.iinfo(f.dtype)
                flat[rng.randrange(flat.size)] = rng.choice([info.max, info.min, 10**6 % (int(info.max) + 1)])
    data = m.SerializeToString()
    if kind == "flip_bytes" and data:
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        data = bytes(b)
    elif kind == "truncate_bytes" and data:
        data = data[:rng.randrange(len(data))]
    return kind, data, feeds


def _run(runtime: str, data: bytes, feeds: list):
    """In a child: one runtime on the case: ("ok", outputs) or ("error", "Class: message")."""
    try:
        if runtime == "reference":   # onnx's own evaluator: the spec's executable reading
            import onnx.reference
            model = onnx.load_from_string(data)
            names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
            res = onnx.reference.ReferenceEvaluator(model).run(None, dict(zip(names, feeds)))
        else:
            res = _run_session(runtime, data, feeds)
        return "ok", [np.asarray(r) if not isinstance(r, (list, dict)) else r for r in res]
    except Exception as exc:  # the point of the exercise: which runtime raises what
        return "error", f"{type(exc).__name__}: {str(exc)[:600]}"


def _run_session(runtime: str, data: bytes, feeds: list):
    """onnxruntime's or ggonnx's InferenceSession on the case: its outputs."""
    if runtime == "onnxruntime":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 4
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    else:
        import ggonnx
        sess = ggonnx.InferenceSession(data)
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, feeds)))


def run_in_child(runtime: str, data: bytes, feeds: list, timeout: float):
    """Fork, run ``runtime`` on the case in the child, wait up to ``timeout``: its answer, or
    ("crash", signal) / ("hang", None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            payload = pickle.dumps(_run(runtime, data, feeds))
        except BaseException as exc:  # an unpicklable result is still an answer
            payload = pickle.dumps(("error", f"unpicklable result: {exc!r}"))
        with os.fdopen(w, "wb") as fh:
            fh.write(payload)
        os._exit(0)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb") as fh:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fh], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hang", None
            chunk = os.read(fh.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "crash", os.WTERMSIG(status)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:
        return "crash", "no answer"


def run_case(data: bytes, feeds: list, timeout: float) -> dict:
    """Each runtime in a child of its own, so a crash is charged to the runtime that crashed."""
    return {rt: run_in_child(rt, data, feeds, timeout) for rt in ("onnxruntime", "ggonnx")}


def _same(a, b) -> bool:
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return True  # sequences and maps: not compared here
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-3, atol=1e-4, equal_nan=True))
    return bool(np.array_equal(a, b))


# ops whose values are draws: two runtimes agree when shapes and dtypes do
RANDOM_OPS = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli",
                        "Multinomial"})


def _draws(data: bytes) -> bool:
    try:
        model = onnx.load_from_string(data)
    except Exception:
        return False
    return any(n.op_type in RANDOM_OPS for n in model.graph.node)


# ops whose answer for NaN or infinite inputs onnxruntime makes depend on the value's place
# (README, "Where ggonnx and onnxruntime differ", states ggonnx's choice for each): a case that
# feeds such values to one of them and disagrees is counted as documented, not wrong
NAN_POSITIONAL_OPS = frozenset({"MaxPool", "GlobalMaxPool", "DynamicQuantizeLinear", "ReduceMax", "ReduceMin",
                                "ArgMax", "ArgMin", "Hardmax", "ScatterElements", "ScatterND"})


def _nonfinite_to_positional_op(data: bytes, feeds: list) -> bool:
    if not any(isinstance(f, np.ndarray) and f.dtype.kind == "f" and not np.isfinite(f).all() for f in feeds):
        return False
    try:
        model = onnx.load_from_string(data)
    except Exception:
        return False
    return any(n.op_type in NAN_POSITIONAL_OPS for n in model.graph.node)


def _same_draws(a, b) -> bool:
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return True
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype


def _oracle_lacks(message: str) -> bool:
    """onnxruntime refused for want of a kernel or of the opset, not because the model is invalid."""
    return (message.startswith("NotImplemented") or "ValidateOpsetForDomain" in message
            or "is not a registered function/op" in message
            or "can't be converted to MLDataType" in message   # its Python API takes no bfloat16 feed
            # StringNormalizer builds a C++ locale (en_US.UTF-8 by default) that a machine without
            # that language pack lacks: every such model fails there, valid or not
            or "Failed to construct locale" in message
            # its CPU RNN/GRU/LSTM kernels lack layout=1 (batch first), which ONNX defines
            or "Batchwise recurrent operations (layout == 1) are not supported" in message)


def classify(result: dict, random_values: bool = False) -> str:
    (ok_o, ro), (ok_g, rg) = result["onnxruntime"], result["ggonnx"]
    if ok_g == ok_o == "hang":  # a model that loops for ever (a Loop of 2**63 trips): both right
        return "both_hang"
    if ok_g in ("crash", "hang"):
        return ok_g
    if ok_o in ("crash", "hang"):  # onnxruntime's own failure: no oracle for this case
        return "oracle_" + ok_o
    if ok_o == "ok" and ok_g == "ok":
        same = _same_draws if random_values else _same
        return "agree" if len(ro) == len(rg) and all(same(x, y) for x, y in zip(ro, rg)) else "wrong"
    if ok_o == "ok":
        return "refused"
    if ok_g == "ok":
        return "beyond_oracle" if _oracle_lacks(str(ro)) else "ran_invalid"
    return "agree"


def fuzz(n: int, seed: int, timeout: float, cases=None, progress=None) -> tuple[dict, list]:
    """Counts per outcome over ``n`` cases, and the non-agreeing cases' details."""
    import onnxruntime  # noqa: F401  imported once here: each forked child starts warm
    import ggonnx  # noqa: F401
    cases = cases or node_cases()
    counts = {k: 0 for k in ("agree", "wrong", "disputed", "nan_documented", "refused", "ran_invalid", "beyond_oracle",
                             "crash", "hang", "oracle_crash", "oracle_hang", "both_hang")}
    details = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        name, model, feeds = cases[rng.randrange(len(cases))]
        kind, data, mfeeds = mutate(rng, model, feeds)
        result = run_case(data, mfeeds, timeout)
        outcome = classify(result, _draws(data))
        if outcome == "wrong":   # a second oracle: does the spec's reference side with ggonnx?
            reference = run_in_child("reference", data, mfeeds, timeout)
            if classify({"onnxruntime": reference, "ggonnx": result["ggonnx"]}) == "agree":
                outcome = "disputed"
            elif _nonfinite_to_positional_op(data, mfeeds):
                outcome = "nan_documented"
        counts[outcome] += 1
        if outcome != "agree":
            details.append({"case": i, "seed": seed, "model": name, "mutation": kind, "outcome": outcome})
        if progress:
            progress(i, outcome)
    return counts, details


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--json", help="write counts and the non-agreeing cases here")
    ap.add_argument("--show", type=int, default=20, help="non-agreeing cases to print (crashes/hangs/wrong first)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    counts, details = fuzz(args.cases, args.seed, args.timeout,
                           progress=lambda i, o: print(f"\r{i + 1}/{args.cases}", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(json.dumps(counts), f"in {time.monotonic() - t0:.0f} s")
    rank = {"crash": 0, "hang": 1, "wrong": 2, "disputed": 3, "nan_documented": 3, "ran_invalid": 4, "refused": 5,
            "beyond_oracle": 6, "oracle_crash": 7, "oracle_hang": 8, "both_hang": 9}
    for d in sorted(details, key=lambda d: rank[d["outcome"]])[:args.show]:
        print(f"  {d['outcome']:<11} case {d['case']:>5}  {d['model']}  ({d['mutation']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"counts": counts, "cases": details}, fh, indent=1)
    return 1 if counts["crash"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
