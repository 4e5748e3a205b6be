"""If, Loop and Scan with their bodies planned like any graph.

The node itself runs on the host (it decides which branch, how many
iterations), but each body is a graph runner (ggonnx.runner, handed down by the
runner that plans the node) on the parent's ggml engine, so its static parts are
ggml islands, planned once per input signature. Cases the nested runners cannot
express (sequence or optional values, a Loop that runs zero times but has scan
outputs, opset-8 Scan) go to onnx's reference kernel.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper


def subgraphs(node: onnx.NodeProto) -> list:
    return [sub for a in node.attribute
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))]


def graph_free_names(graph: onnx.GraphProto, outer_defined: set = frozenset(), free: list | None = None) -> list:
    """Names a (sub)graph reads from enclosing scopes, in first-use order."""
    free = [] if free is None else free
    defined = set(outer_defined)
    defined.update(i.name for i in graph.input)
    defined.update(t.name for t in graph.initializer)
    for n in graph.node:
        for name in n.input:
            if name and name not in defined and name not in free:
                free.append(name)
        for sub in subgraphs(n):
            graph_free_names(sub, defined, free)
        defined.update(o for o in n.output if o)
    return free


def _value_info(name: str, value) -> onnx.ValueInfoProto:
    # rank and sizes left free: loop-carried values may change shape between iterations
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), None)


class _Body:
    """A subgraph as a model of its own (formal inputs first, then the outer values it reads),
    run by ``make_runner(model)``."""

    def __init__(self, graph: onnx.GraphProto, formal: list, outer: dict, opsets: dict, make_runner):
        self.outer_names = [n for n in graph_free_names(graph) if n in outer]
        body = onnx.GraphProto()
        body.CopyFrom(graph)
        del body.input[:]
        body.input.extend([_value_info(vi.name, v) for vi, v in zip(graph.input, formal)])
        body.input.extend([_value_info(n, outer[n]) for n in self.outer_names])
        model = helper.make_model(body, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
        self.formal_names = [vi.name for vi in graph.input]
        self.runner = make_runner(model)

    def run(self, formal: list, outer: dict) -> list:
        feeds = dict(zip(self.formal_names, formal))
        feeds.update((n, outer[n]) for n in self.outer_names)
        return self.runner.run([feeds[n] for n in self.runner.input_names])


class ControlFlowEvaluator:
    """Runs an If or Loop node; same run(None, feeds) interface as onnx's ReferenceEvaluator."""

    def __init__(self, node, explicit_names: list, opsets: dict, make_runner, make_reference):
        self.node = node
        self.explicit_names = explicit_names      # feed names of the node's inputs, '' when omitted
        self.opsets = opsets
        self.make_runner = make_runner            # model -> a runner of it on the parent's engine
        self.make_reference = make_reference
        self.bodies: dict = {}
        self.reference = None
        # nested runners return tensors; bodies producing sequences or optionals stay on the reference
        graphs = [v for v in node.attrs.values() if isinstance(v, onnx.GraphProto)]
        self.tensor_only = all(o.type.WhichOneof("value") == "tensor_type" for g in graphs for o in g.output)

    def run(self, _outputs, feeds: dict) -> list:
        values = [feeds[n] if n else None for n in self.explicit_names]
        outer = {k: v for k, v in feeds.items() if k not in self.explicit_names}
        tensors = [v for v in list(outer.values()) + values if v is not None]
        if self.tensor_only and all(isinstance(v, np.ndarray) for v in tensors):
            run = {"If": self._if, "Loop": self._loop, "Scan": self._scan}[self.node.op_type]
            result = run(values, outer)
            if result is not None and all(isinstance(r, np.ndarray) for r in result):
                return result
        if self.reference is None:
            self.reference = self.make_reference()
        return self.reference.run(None, feeds)

    def _body(self, key: str, formal: list, outer: dict) -> _Body:
        body = self.bodies.get(key)
        if body is None:
            body = self.bodies[key] = _Body(self.node.attrs[key], formal, outer, self.opsets, self.make_runner)
        return body

    def _if(self, values, outer):
        key = "then_branch" if bool(np.asarray(values[0]).reshape(-1)[0]) else "else_branch"
        return self._body(key, [], outer).run([], outer)

    def _loop(self, values, outer):
        trip, cond, carried = values[0], values[1], list(values[2:])
        limit = None if trip is None else int(np.asarray(trip).reshape(-1)[0])
        keep_going = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
        scans, i = [], 0
        while keep_going and (limit is None or i < limit):
            formal = [np.array(i, dtype=np.int64), np.array(keep_going, dtype=bool)] + carried
            outs = self._body("body", formal, outer).run(formal, outer)
            if cond is not None:
                keep_going = bool(np.asarray(outs[0]).reshape(-1)[0])
            carried = list(outs[1:1 + len(carried)])
            scans.append(outs[1 + len(carried):])
            i += 1
        n_scan = len(self.node.attrs["body"].output) - 1 - len(carried)
        if n_scan and not scans:
            return None  # zero iterations: the scan outputs' element shapes are unknown here
        return carried + [np.stack([s[k] for s in scans]) for k in range(n_scan)]

    def _scan(self, values, outer):
        if self.node.opset < 9:  # opset 8 had a batch axis and sequence_lens
            return None
        attrs = self.node.attrs
        m = int(attrs["num_scan_inputs"])
        states, xs = list(values[:len(values) - m]), values[len(values) - m:]
        in_axes = [a % x.ndim for a, x in zip(attrs.get("scan_input_axes", [0] * m), xs)]
        in_dirs = attrs.get("scan_input_directions", [0] * m)
        steps = xs[0].shape[in_axes[0]] if m else 0
        if steps == 0 or any(x.shape[a] != steps for x, a in zip(xs, in_axes)):
            return None
        collected = []
        for t in range(steps):
            slices = [np.take(x, steps - 1 - t if d else t, axis=a) for x, a, d in zip(xs, in_axes, in_dirs)]
            outs = self._body("body", states + slices, outer).run(states + slices, outer)
            states = list(outs[:len(states)])
            collected.append(outs[len(states):])
        k = len(collected[0])
        out_axes = attrs.get("scan_output_axes", [0] * k)
        out_dirs = attrs.get("scan_output_directions", [0] * k)
        scans = []
        for j in range(k):
            parts = [c[j] for c in collected][::-1 if out_dirs[j] else 1]
            scans.append(np.stack(parts, axis=out_axes[j] % (parts[0].ndim + 1)))
        return states + scans
