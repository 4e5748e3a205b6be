"""Recurrent layers (RNN, GRU, LSTM), ggonnx against onnxruntime (bench/harness.py's rules): one
streaming step, as voice-activity models run them, and a 100-step sequence; batch 1, random
weights.

    cd bench && python recurrent.py [--budget 1.0]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_args, compare, comparison_cells  # noqa: E402

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def layer(op: str, seq: int, n_in: int, hidden: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = GATES[op]
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.1, n)
               for n, s in (("W", (1, g * hidden, n_in)), ("R", (1, g * hidden, hidden)), ("B", (1, 2 * g * hidden)))]
    states = ["h0"] + (["c0"] if op == "LSTM" else [])
    ins = ["x", "W", "R", "B", "", "h0"] + (["c0"] if op == "LSTM" else [])
    outs = ["y", "hn"] + (["cn"] if op == "LSTM" else [])
    graph = helper.make_graph([helper.make_node(op, ins, outs, hidden_size=hidden)], op.lower(),
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, n_in])] +
                              [helper.make_tensor_value_info(s, TensorProto.FLOAT, [1, 1, hidden]) for s in states],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    feeds = {"x": rng.standard_normal((seq, 1, n_in)).astype(np.float32)}
    feeds.update({s: rng.standard_normal((1, 1, hidden)).astype(np.float32) for s in states})
    return model, feeds


def main():
    args = bench_args(1.0).parse_args()
    print("| layer | steps | input -> hidden | ggonnx ms | onnxruntime ms | ratio | agree |")
    print("|---|---|---|---|---|---|---|")
    for op in ("LSTM", "GRU", "RNN"):
        for seq, n_in, hidden in ((1, 64, 64), (1, 128, 128), (100, 40, 64)):
            model, feeds = layer(op, seq, n_in, hidden)
            c = compare(model, feeds, threads=args.threads, budget_s=args.budget)
            print(f"| {op} | {seq} | {n_in} -> {hidden} | {comparison_cells(c)} |", flush=True)


if __name__ == "__main__":
    main()
