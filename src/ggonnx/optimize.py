"""Graph rewrites run once at import, before planning.

- Constant folding: nodes whose inputs are all initializers (ConstantOfShape-built
  weights, Constant nodes, casts and reshapes of weights) become initializers.
- BatchNormalization after a Conv with constant weights folds into the Conv's
  weights and bias (inference), removing two full passes over the activation.
"""
from __future__ import annotations

import numpy as np
import onnx

from ggonnx.ir import Graph, Node


def _consumers(graph: Graph) -> dict:
    users: dict = {}
    for node in graph.nodes:
        for name in node.inputs + node.implicit_inputs:
            users[name] = users.get(name, 0) + 1
    for out in graph.outputs:
        users[out.name] = users.get(out.name, 0) + 1
    return users


def _set_inputs(node: Node, inputs: list) -> None:
    node.inputs = inputs
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.input[:]
    proto.input.extend(inputs)
    node.proto = proto


def _set_output(node: Node, name: str) -> None:
    node.outputs = [name]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.output[:]
    proto.output.append(name)
    node.proto = proto


def fold_batchnorm_into_conv(graph: Graph) -> None:
    inits = graph.initializers
    users = _consumers(graph)
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    removed = set()
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or bn.domain or bn.attrs.get("training_mode", 0):
            continue
        if len([o for o in bn.outputs if o]) != 1 or len(bn.inputs) < 5:
            continue
        conv = producer.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or conv.domain or users.get(bn.inputs[0]) != 1:
            continue
        names = [conv.inputs[1]] + bn.inputs[1:5] + ([conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else [])
        if not all(n in inits for n in names):
            continue
        w = inits[conv.inputs[1]].astype(np.float64)
        scale, beta, mean, var = (inits[n].astype(np.float64).reshape(-1) for n in bn.inputs[1:5])
        if w.dtype.kind != "f" or scale.size != w.shape[0]:
            continue
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        b = inits[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
        dtype = inits[conv.inputs[1]].dtype
        w_name, b_name = f"{conv.name}__bn_folded_W", f"{conv.name}__bn_folded_B"
        inits[w_name] = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(dtype)
        inits[b_name] = ((b - mean) * s + beta).astype(dtype)
        _set_inputs(conv, [conv.inputs[0], w_name, b_name])
        _set_output(conv, bn.outputs[0])
        removed.add(id(bn))
    if removed:
        graph.nodes = [n for n in graph.nodes if id(n) not in removed]
        still_used = {i for n in graph.nodes for i in n.inputs + n.implicit_inputs}
        for name in [k for k in inits if k not in still_used and k not in {o.name for o in graph.outputs}]:
            del inits[name]


# Never folded: outputs that differ between runs, or that only make sense per signature.
_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                 "Bernoulli", "If", "Loop", "Scan", "SequenceMap"}


def fold_constants(graph: Graph) -> None:
    from ggonnx.ops.context import Value
    from ggonnx.planner import _reference_model

    inits = graph.initializers
    outputs = {o.name for o in graph.outputs}
    kept = []
    for node in graph.nodes:
        names = [n for n in node.inputs if n]
        foldable = (node.op_type not in _NOT_FOLDABLE and not node.implicit_inputs
                    and all(n in inits for n in names)
                    and not any(o in outputs for o in node.outputs))
        if foldable:
            values = [Value.constant(n, inits[n], True) if n else None for n in node.inputs]
            try:
                evaluator, feed_names = _reference_model(node, values, [])
                results = evaluator.run(None, dict(zip(feed_names, [inits[n] for n in names])))
            except Exception:  # left to planning, which reports errors with concrete shapes
                results = None
            if results is not None and all(isinstance(r, np.ndarray) for r in results):
                for name, r in zip([o for o in node.outputs if o], results):
                    inits[name] = r
                continue
        kept.append(node)
    graph.nodes = kept


def optimize(graph: Graph) -> None:
    fold_constants(graph)
    fold_batchnorm_into_conv(graph)
