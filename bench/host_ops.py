"""Ops that run on ggonnx's host kernels, one model each, against onnxruntime (bench/harness.py's
rules): TopK, NonZero, Unique, ScatterND, ScatterElements, GatherND, Einsum, CumSum,
NonMaxSuppression, as detectors and transformers use them.

    cd bench && python host_ops.py [--budget 0.5]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto as T
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_args, compare, comparison_cells  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "op", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                              [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1000)).astype(np.float32)
    yield "TopK k=10 of [8, 1000]", _model([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
                                           [("x", T.FLOAT, [8, 1000])], [("v", T.FLOAT), ("i", T.INT64)],
                                           [("k", np.array([10], np.int64))]), {"x": x}
    mask = (rng.random((100, 100)) > 0.7).astype(np.float32)
    yield "NonZero of [100, 100]", _model([helper.make_node("NonZero", ["x"], ["y"])], [("x", T.FLOAT, [100, 100])],
                                          [("y", T.INT64)]), {"x": mask}
    values = rng.integers(0, 50, 1000).astype(np.float32)
    yield "Unique of 1,000", _model([helper.make_node("Unique", ["x"], ["y", "i", "inv", "c"], sorted=1)],
                                    [("x", T.FLOAT, [1000])],
                                    [("y", T.FLOAT), ("i", T.INT64), ("inv", T.INT64), ("c", T.INT64)]), {"x": values}
    cache = rng.standard_normal((1, 12, 256, 64)).astype(np.float32)
    yield "ScatterND one KV row", _model([helper.make_node("ScatterND", ["d", "i", "u"], ["y"])],
                                         [("d", T.FLOAT, [1, 12, 256, 64]), ("i", T.INT64, [1, 1, 3]),
                                          ("u", T.FLOAT, [1, 1, 64])], [("y", T.FLOAT)]), \
        {"d": cache, "i": np.array([[[0, 0, 5]]], np.int64), "u": rng.standard_normal((1, 1, 64)).astype(np.float32)}
    yield "ScatterElements [64, 32] into [64, 256]", \
        _model([helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=1)],
               [("d", T.FLOAT, [64, 256]), ("i", T.INT64, [64, 32]), ("u", T.FLOAT, [64, 32])], [("y", T.FLOAT)]), \
        {"d": rng.standard_normal((64, 256)).astype(np.float32), "i": rng.integers(0, 256, (64, 32)),
         "u": rng.standard_normal((64, 32)).astype(np.float32)}
    yield "GatherND 200 rows of [32, 64, 16]", \
        _model([helper.make_node("GatherND", ["d", "i"], ["y"])], [("d", T.FLOAT, [32, 64, 16]), ("i", T.INT64, [200, 1])],
               [("y", T.FLOAT)]), \
        {"d": rng.standard_normal((32, 64, 16)).astype(np.float32), "i": rng.integers(0, 32, (200, 1))}
    yield "Einsum bij,bjk->bik", \
        _model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik")],
               [("a", T.FLOAT, [8, 64, 32]), ("b", T.FLOAT, [8, 32, 48])], [("y", T.FLOAT)]), \
        {"a": rng.standard_normal((8, 64, 32)).astype(np.float32), "b": rng.standard_normal((8, 32, 48)).astype(np.float32)}
    yield "CumSum int64 [1, 512] (position ids)", \
        _model([helper.make_node("CumSum", ["x", "ax"], ["y"])], [("x", T.INT64, [1, 512])], [("y", T.INT64)],
               [("ax", np.array(1, np.int64))]), {"x": np.ones((1, 512), np.int64)}
    boxes = rng.random((1, 1000, 4)).astype(np.float32)
    boxes[..., 2:] += boxes[..., :2]
    yield "NonMaxSuppression 1,000 boxes x 5 classes", \
        _model([helper.make_node("NonMaxSuppression", ["b", "s", "m", "iou", "th"], ["y"])],
               [("b", T.FLOAT, [1, 1000, 4]), ("s", T.FLOAT, [1, 5, 1000])], [("y", T.INT64)],
               [("m", np.array([100], np.int64)), ("iou", np.array([0.5], np.float32)),
                ("th", np.array([0.3], np.float32))]), {"b": boxes, "s": rng.random((1, 5, 1000)).astype(np.float32)}


def main():
    args = bench_args(0.5).parse_args()
    print("| op | ggonnx ms | onnxruntime ms | ratio | agree |")
    print("|---|---|---|---|---|")
    for name, model, feeds in cases():
        c = compare(model, feeds, threads=args.threads, budget_s=args.budget)
        print(f"| {name} | {comparison_cells(c)} |", flush=True)


if __name__ == "__main__":
    main()
