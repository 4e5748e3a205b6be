"""Graph rewrites run once at import, before planning.

- Constant folding: nodes whose inputs are all initializers (ConstantOfShape-built
  weights, Constant nodes, casts and reshapes of weights) become initializers.
- BatchNormalization after a Conv or ConvTranspose with constant weights folds into its
  weights and bias (inference), removing two full passes over the activation.
- The exact-GELU pattern exporters write, x * 0.5 * (1 + Erf(x / sqrt(2))), becomes
  one Gelu node (opset 20), which ggml runs; Erf alone has no ggml kernel.
- The tanh-GELU pattern (GPT-2's gelu_new) becomes one Gelu(approximate="tanh") node.
- T5's RMSNorm pattern becomes one RMSNormalization node (opset 23, ggml_rms_norm).
- x * Sigmoid(x) becomes one Swish node (opset 24), ggml's vectorized silu.
"""
from __future__ import annotations

import numpy as np
import onnx

from ggonnx import host_random
from ggonnx.ir import Graph, Node


def _consumers(graph: Graph) -> dict:
    users: dict = {}
    for node in graph.nodes:
        for name in node.inputs + node.implicit_inputs:
            users[name] = users.get(name, 0) + 1
    for out in graph.outputs:
        users[out.name] = users.get(out.name, 0) + 1
    return users


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
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or conv.domain or \
                users.get(bn.inputs[0]) != 1:
            continue
        names = [conv.inputs[1]] + bn.inputs[1:5] + ([conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else [])
        if not all(n in inits for n in names):
            continue
        w = inits[conv.inputs[1]].astype(np.float64)
        scale, beta, mean, var = (inits[n].astype(np.float64).reshape(-1) for n in bn.inputs[1:5])
        if inits[conv.inputs[1]].dtype.kind != "f" or w.ndim < 3:
            continue
        transposed = conv.op_type == "ConvTranspose"
        group = int(conv.attrs.get("group", 1))
        # output channel of each weight slice: dim 0 of a Conv weight [OC, C/g, ...]; for a
        # ConvTranspose weight [C, OC/g, ...], input channel c feeds group c // (C/g)
        if transposed:
            c, ocg = w.shape[:2]
            if group < 1 or c % group:
                continue
            out_channel = (np.arange(c)[:, None] // (c // group)) * ocg + np.arange(ocg)[None, :]
        else:
            out_channel = np.arange(w.shape[0])
        if scale.size != (w.shape[1] * group if transposed else w.shape[0]) or \
                not all(v.size == scale.size for v in (beta, mean, var)):
            continue
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        b = inits[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
        dtype = inits[conv.inputs[1]].dtype
        w_name, b_name = f"{conv.name}__bn_folded_W", f"{conv.name}__bn_folded_B"
        factor = s[out_channel]
        inits[w_name] = (w * factor.reshape(factor.shape + (1,) * (w.ndim - factor.ndim))).astype(dtype)
        inits[b_name] = ((b - mean) * s + beta).astype(dtype)
        conv.rewrite(inputs=[conv.inputs[0], w_name, b_name], outputs=[bn.outputs[0]])
        removed.add(id(bn))
    if removed:
        graph.nodes = [n for n in graph.nodes if id(n) not in removed]
        still_used = {i for n in graph.nodes for i in n.inputs + n.implicit_inputs}
        for name in [k for k in inits if k not in still_used and k not in {o.name for o in graph.outputs}]:
            del inits[name]


# Never folded: outputs that differ between runs, or that only make sense per signature.
_NOT_FOLDABLE = host_random.RANDOM_OPS | {"If", "Loop", "Scan", "SequenceMap"}


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


def _def_use(graph: Graph):
    """(producer of each value, only_user(name): the one node reading ``name``, when nothing
    else, graph outputs included, does; else None)."""
    users = _consumers(graph)
    by_input: dict = {}
    for n in graph.nodes:
        for name in n.inputs:
            by_input.setdefault(name, []).append(n)
    producer = {o: n for n in graph.nodes for o in n.outputs if o}

    def only_user(name):
        found = by_input.get(name, [])
        return found[0] if len(found) == 1 and users.get(name) == 1 else None
    return producer, only_user


def _scalar(graph: Graph, name: str):
    value = graph.initializers.get(name)
    if value is None or value.size != 1 or value.dtype.kind != "f":
        return None
    return float(value.reshape(-1)[0])


def _other(node: Node, name: str):
    """The other input of a binary node that has ``name`` as one input, else None."""
    if len(node.inputs) == 2 and name in node.inputs:
        return node.inputs[1] if node.inputs[0] == name else node.inputs[0]
    return None


def fuse_gelu(graph: Graph) -> None:
    producer, only_user = _def_use(graph)

    removed, fused = set(), {}
    for erf in graph.nodes:
        if erf.op_type != "Erf" or erf.domain or id(erf) in removed:
            continue
        scaled = producer.get(erf.inputs[0])
        if scaled is None or only_user(scaled.outputs[0]) is not erf:
            continue
        x = None
        if scaled.op_type == "Div" and np.isclose(_scalar(graph, scaled.inputs[1]) or 0, np.sqrt(2), rtol=1e-4):
            x = scaled.inputs[0]
        elif scaled.op_type == "Mul":
            for a, b in (scaled.inputs, scaled.inputs[::-1]):
                if np.isclose(_scalar(graph, b) or 0, 1 / np.sqrt(2), rtol=1e-4):
                    x = a
        add = only_user(erf.outputs[0])
        if x is None or add is None or add.op_type != "Add" or _scalar(graph, _other(add, erf.outputs[0])) != 1.0:
            continue
        mul = only_user(add.outputs[0])
        if mul is None or mul.op_type != "Mul":
            continue
        partner = _other(mul, add.outputs[0])
        half_x = producer.get(partner)
        chain = [scaled, erf, add, mul]
        if partner == x:  # x * (1 + erf) * 0.5
            last = only_user(mul.outputs[0])
            if last is None or last.op_type != "Mul" or _scalar(graph, _other(last, mul.outputs[0])) != 0.5:
                continue
            chain.append(last)
        elif half_x is not None and half_x.op_type == "Mul" and _other(half_x, x) is not None \
                and _scalar(graph, _other(half_x, x)) == 0.5 and only_user(partner) is mul:
            chain.append(half_x)  # (0.5 * x) * (1 + erf)
            last = mul
        else:
            continue
        gelu_proto = onnx.helper.make_node("Gelu", [x], [last.outputs[0]], name=f"{erf.name}__gelu")
        fused[id(chain[0])] = Node(gelu_proto.name, "Gelu", "", [x], [last.outputs[0]], {}, 20, gelu_proto)
        removed.update(id(n) for n in chain)
    if fused:
        nodes = []
        for n in graph.nodes:
            if id(n) in fused:
                nodes.append(fused[id(n)])
            elif id(n) not in removed:
                nodes.append(n)
        # the fused node sits where the chain began; its input x comes before, its output after
        graph.nodes = nodes


SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))


def fuse_gelu_tanh(graph: Graph) -> None:
    """GPT-2's "gelu_new", 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) with x^3 as
    Pow(x, 3) or x*x*x, becomes one Gelu(approximate="tanh") node (opset 20): one vectorized
    pass instead of eight, and no scalar tanhf."""
    producer, only_user = _def_use(graph)

    def scaled_by(node, value):
        """The other input of a Mul ``node`` by the constant ``value``, else None."""
        if node is None or node.op_type != "Mul" or node.domain or len(node.inputs) != 2:
            return None
        for a, b in (node.inputs, node.inputs[::-1]):
            c = _scalar(graph, b)
            if c is not None and np.isclose(c, value, rtol=1e-4):
                return a
        return None

    def cube_of(name):
        """(x, nodes) when ``name`` is x^3 as Pow(x, 3), x*(x*x) or (x*x)*x, else None."""
        n = producer.get(name)
        if n is None or n.domain or only_user(name) is None:
            return None
        if n.op_type == "Pow" and _scalar(graph, n.inputs[1]) == 3.0:
            return n.inputs[0], [n]
        if n.op_type == "Mul" and len(n.inputs) == 2:
            for a, b in (n.inputs, n.inputs[::-1]):
                sq = producer.get(b)
                if sq is not None and sq.op_type == "Mul" and sq.inputs == [a, a] and only_user(b) is n:
                    return a, [sq, n]
        return None

    removed, fused = set(), {}
    for tanh in graph.nodes:
        if tanh.op_type != "Tanh" or tanh.domain or id(tanh) in removed:
            continue
        inner = producer.get(tanh.inputs[0])
        s = scaled_by(inner, SQRT_2_OVER_PI)
        add = producer.get(s) if s else None
        if s is None or only_user(tanh.inputs[0]) is not tanh or add is None or add.op_type != "Add" \
                or only_user(s) is not inner:
            continue
        found = None
        for x, m in (add.inputs, add.inputs[::-1]):
            cube = scaled_by(producer.get(m), 0.044715)
            if cube is not None and only_user(m) is add:
                c = cube_of(cube)
                if c is not None and c[0] == x:
                    found = x, [producer.get(m)] + c[1]
        one_plus = only_user(tanh.outputs[0])
        if found is None or one_plus is None or one_plus.op_type != "Add" or \
                _scalar(graph, _other(one_plus, tanh.outputs[0])) != 1.0:
            continue
        x, cube_nodes = found
        chain = cube_nodes + [add, inner, tanh, one_plus]
        mul = only_user(one_plus.outputs[0])
        if mul is None or mul.op_type != "Mul":
            continue
        partner = _other(mul, one_plus.outputs[0])
        if partner == x:  # x * (1 + tanh) * 0.5
            last = only_user(mul.outputs[0])
            if scaled_by(last, 0.5) != mul.outputs[0]:
                continue
            chain += [mul, last]
        elif scaled_by(producer.get(partner), 0.5) == x and only_user(partner) is mul:
            chain += [producer.get(partner), mul]   # (0.5 * x) * (1 + tanh)
            last = mul
        else:
            continue
        proto = onnx.helper.make_node("Gelu", [x], [last.outputs[0]], name=f"{tanh.name}__gelu_tanh",
                                      approximate="tanh")
        fused[id(chain[0])] = Node(proto.name, "Gelu", "", [x], [last.outputs[0]], {"approximate": "tanh"}, 20,
                                   proto)
        removed.update(id(n) for n in chain)
    if fused:  # the Gelu sits where the chain began: x before it, the users of the result after
        graph.nodes = [fused.get(id(n), n) for n in graph.nodes if id(n) not in removed or id(n) in fused]


def fuse_rms_norm(graph: Graph) -> None:
    """T5's RMSNorm as exported, w * (x * (1 / Sqrt(ReduceMean(x^2, [-1]) + eps))) (or x / Sqrt),
    becomes one RMSNormalization node (opset 23, ggml_rms_norm): two passes instead of seven."""
    producer, only_user = _def_use(graph)
    removed, fused = set(), {}
    for pow_ in graph.nodes:
        if pow_.op_type != "Pow" or pow_.domain or _scalar(graph, pow_.inputs[1]) != 2.0:
            continue
        x = pow_.inputs[0]
        mean = only_user(pow_.outputs[0])
        axes = graph.initializers.get(mean.inputs[1]) if mean is not None and len(mean.inputs) > 1 else None
        if mean is None or mean.op_type != "ReduceMean" or axes is None or axes.reshape(-1).tolist() != [-1] \
                or mean.attrs.get("keepdims", 1) != 1 or mean.attrs.get("noop_with_empty_axes", 0):
            continue
        add = only_user(mean.outputs[0])
        eps = _scalar(graph, _other(add, mean.outputs[0])) if add is not None and add.op_type == "Add" else None
        sqrt = only_user(add.outputs[0]) if eps is not None else None
        if sqrt is None or sqrt.op_type != "Sqrt":
            continue
        nxt = only_user(sqrt.outputs[0])
        if nxt is not None and nxt.op_type == "Div" and nxt.inputs == [x, sqrt.outputs[0]]:
            chain, normed = [pow_, mean, add, sqrt, nxt], nxt.outputs[0]          # x / sqrt
        elif nxt is not None and nxt.op_type == "Div" and nxt.inputs[1] == sqrt.outputs[0] and \
                _scalar(graph, nxt.inputs[0]) == 1.0:
            mul = only_user(nxt.outputs[0])                                      # x * (1 / sqrt)
            if mul is None or mul.op_type != "Mul" or _other(mul, nxt.outputs[0]) != x:
                continue
            chain, normed = [pow_, mean, add, sqrt, nxt, mul], mul.outputs[0]
        else:
            continue
        scale_mul = only_user(normed)
        weight = _other(scale_mul, normed) if scale_mul is not None and scale_mul.op_type == "Mul" else None
        w = graph.initializers.get(weight) if weight else None
        if w is None or w.ndim != 1 or w.dtype.kind != "f":
            continue
        chain.append(scale_mul)
        out = scale_mul.outputs[0]
        proto = onnx.helper.make_node("RMSNormalization", [x, weight], [out], name=f"{pow_.name}__rms_norm",
                                      axis=-1, epsilon=eps)
        fused[id(pow_)] = Node(proto.name, "RMSNormalization", "", [x, weight], [out],
                               {"axis": -1, "epsilon": eps}, 23, proto)
        removed.update(id(n) for n in chain)
    if fused:  # at the Pow: x is computed before it, the result's users come after the chain
        graph.nodes = [fused.get(id(n), n) for n in graph.nodes if id(n) not in removed or id(n) in fused]


def fuse_swish(graph: Graph) -> None:
    """x * Sigmoid(x) (SiLU, as exporters write it) becomes one Swish node (opset 24): one
    vectorized ggml pass instead of ggml's scalar sigmoid and a multiply."""
    users = _consumers(graph)
    sigmoid_of = {n.outputs[0]: n for n in graph.nodes
                  if n.op_type == "Sigmoid" and not n.domain and users.get(n.outputs[0]) == 1}
    replaced, removed = {}, set()
    for mul in graph.nodes:
        if mul.op_type != "Mul" or mul.domain or len(mul.inputs) != 2:
            continue
        for gate, x in (mul.inputs, mul.inputs[::-1]):
            sig = sigmoid_of.get(gate)
            if sig is not None and sig.inputs[0] == x and id(sig) not in removed:
                proto = onnx.helper.make_node("Swish", [x], [mul.outputs[0]], name=f"{mul.name}__swish")
                replaced[id(mul)] = Node(proto.name, "Swish", "", [x], [mul.outputs[0]], {}, 24, proto)
                removed.add(id(sig))
                break
    if replaced:  # the Swish sits where the Mul was: x is computed before it, its users after
        graph.nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in removed]


def optimize(graph: Graph, full: bool = True) -> None:
    """Rewrite ``graph`` for ggml. ``full=False`` (onnxruntime's ORT_DISABLE_ALL) keeps only the
    rewrites some ops need to run at all (onnxruntime's quantized and contrib ops)."""
    from ggonnx.optimize_quant import rewrite_quantized
    rewrite_quantized(graph)
    if not full:
        drop_unread_initializers(graph)
        return
    fold_constants(graph)
    fold_batchnorm_into_conv(graph)
    fuse_gelu(graph)
    fuse_gelu_tanh(graph)
    fuse_rms_norm(graph)
    fuse_swish(graph)
    drop_unread_initializers(graph)


def drop_unread_initializers(graph: Graph) -> None:
    """Initializers no node (subgraphs included) nor output reads any more, e.g. the weights a
    fold or a quantized-op rewrite replaced: held for nothing otherwise."""
    users = _consumers(graph)
    for name in [k for k in graph.initializers if not users.get(k)]:
        del graph.initializers[name]
        graph.typed_weights.pop(name, None)
