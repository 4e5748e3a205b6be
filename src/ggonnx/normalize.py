"""Old-opset forms rewritten once, at import, into the newest form of each op.

Several ops moved attributes to inputs in later opsets (Clip's min/max,
Reshape's shape, Slice's starts/ends/axes, Pad's pads/value, the axes of
Squeeze/Unsqueeze and the Reduce ops, Split's split). Each such node becomes a
node of the newer opset whose moved attributes are constant initializers, so
lowering functions and host kernels see one form.
"""
from __future__ import annotations

import numpy as np

from ggonnx.ir import Graph, Node


def _int64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _clip(node: Node) -> dict:
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return {"min": None if lo is None else np.array(lo, np.float32),
            "max": None if hi is None else np.array(hi, np.float32)}


def _axes(node: Node) -> dict:
    axes = node.attrs.get("axes")
    return {"axes": None if axes is None else _int64(axes)}


def _slice(node: Node) -> dict:
    axes = node.attrs.get("axes")
    return {"starts": _int64(node.attrs["starts"]), "ends": _int64(node.attrs["ends"]),
            "axes": None if axes is None else _int64(axes)}


def _pad(node: Node) -> dict:
    pads = node.attrs.get("pads", node.attrs.get("paddings"))
    return {"pads": _int64(pads), "constant_value": np.array(node.attrs.get("value", 0.0), np.float32)}


def _reshape(node: Node) -> dict:
    return {"shape": _int64(node.attrs["shape"])}


def _split(node: Node) -> dict:
    split = node.attrs.get("split")
    return {"split": None if split is None else _int64(split)}


# op type -> (first opset with the input form, builder of the new inputs from the old attributes,
#             attributes that disappear, where the new inputs go after the node's first input)
_RULES = {
    "Clip": (11, _clip, ("min", "max", "consumed_inputs"), ("min", "max")),
    "Reshape": (5, _reshape, ("shape",), ("shape",)),
    "Slice": (10, _slice, ("starts", "ends", "axes"), ("starts", "ends", "axes")),
    "Pad": (11, _pad, ("pads", "paddings", "value"), ("pads", "constant_value")),
    "Squeeze": (13, _axes, ("axes",), ("axes",)),
    "Unsqueeze": (13, _axes, ("axes",), ("axes",)),
    "Split": (13, _split, ("split",), ("split",)),
    "ReduceSum": (13, _axes, ("axes",), ("axes",)),
    **{op: (18, _axes, ("axes",), ("axes",)) for op in (
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")},
}


def normalize(graph: Graph) -> None:
    """Rewrite old-opset nodes of the default domain in place (nodes, protos, initializers)."""
    for index, node in enumerate(graph.nodes):
        rule = _RULES.get(node.op_type)
        if node.domain != "" or rule is None or node.opset >= rule[0]:
            continue
        if node.op_type == "Split" and node.opset < 2:  # Split-1 had its own input form
            continue
        new_opset, build, dropped, order = rule
        new_inputs = build(node)
        inputs = [node.inputs[0]]
        for name in order:
            value = new_inputs.get(name)
            if value is None:
                inputs.append("")
                continue
            init = f"{node.name or node.op_type}__{index}__{name}"
            graph.initializers[init] = value
            inputs.append(init)
        while inputs and inputs[-1] == "":
            inputs.pop()
        node.rewrite(inputs=inputs, drop_attrs=dropped)
        node.opset = new_opset
