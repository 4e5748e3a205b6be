"""Attribute values ONNX allows, checked at load: an out-of-spec value is a model error naming the
node, the attribute and the value, not a guess (onnxruntime reads keepdims=7 as 0, ggonnx's kernels
read it as 1: neither is the model's meaning).

Only standard-domain ops are checked, and only attributes whose allowed values are the same in every
opset that has them.
"""
from __future__ import annotations

import onnx.defs

from ggonnx.errors import InvalidGraph

# 0/1 flags (the spec's "int, 0 or 1")
FLAGS = frozenset({
    "keepdims", "exclusive", "reverse", "transA", "transB", "select_last_index", "noop_with_empty_axes",
    "ceil_mode", "count_include_pad", "upper", "largest", "sorted", "detect_negative", "detect_positive",
    "linear_before_reset", "input_forget", "exclude_outside", "align_corners", "fmod", "saturate", "allowzero",
    "training_mode", "is_causal", "interleaved",
})

# (op, attribute) -> the values the spec lists
CHOICES = {
    ("Gelu", "approximate"): {"none", "tanh"},
    ("LpNormalization", "p"): {1, 2},
    ("DepthToSpace", "mode"): {"DCR", "CRD"},
    ("Pad", "mode"): {"constant", "reflect", "edge", "wrap"},
    ("Resize", "mode"): {"nearest", "linear", "cubic"},
    ("Resize", "coordinate_transformation_mode"): {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                                   "align_corners", "asymmetric", "tf_crop_and_resize",
                                                   "tf_half_pixel_for_nn"},  # the last: Resize-11 only
    ("Resize", "nearest_mode"): {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"},
    ("Resize", "keep_aspect_ratio_policy"): {"stretch", "not_larger", "not_smaller"},
    ("LSTM", "direction"): {"forward", "reverse", "bidirectional"},
    ("GRU", "direction"): {"forward", "reverse", "bidirectional"},
    ("RNN", "direction"): {"forward", "reverse", "bidirectional"},
    ("ScatterElements", "reduction"): {"none", "add", "mul", "min", "max"},
    ("ScatterND", "reduction"): {"none", "add", "mul", "min", "max"},
    ("NegativeLogLikelihoodLoss", "reduction"): {"none", "sum", "mean"},
    ("SoftmaxCrossEntropyLoss", "reduction"): {"none", "sum", "mean"},
}
AUTO_PAD = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}
AUTO_PAD_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool",
                          "LpPool"})
POSITIVE = {("DepthToSpace", "blocksize"), ("SpaceToDepth", "blocksize"), ("LpPool", "p")}
# No tensor has more dims than NumPy's limit (ggml's is 4): an axis beyond it fits no input (and
# onnx's own shape inference crashes on some, so this is checked before it runs)
MAX_RANK = 64


def _schema_attributes(node):
    """The attribute names onnx's schema of the node's op (at its opset) defines, or None."""
    try:
        return onnx.defs.get_schema(node.op_type, node.opset, node.domain).attributes
    except onnx.defs.SchemaError:
        return None


def check_node(node) -> None:
    """Raise InvalidGraph when ``node`` (an ir.Node) has an attribute its op does not define (as
    onnxruntime refuses it) or a value its op does not allow."""
    if node.domain not in ("", "ai.onnx.ml"):
        return
    defined = _schema_attributes(node)
    if defined is None and onnx.defs.has(node.op_type, node.domain):
        raise InvalidGraph(f"{node.describe()}: {node.op_type} is not defined in opset {node.opset} of "
                           f"domain '{node.domain or 'ai.onnx'}'")
    if defined is not None:
        unknown = sorted(set(node.attrs) - set(defined))
        if unknown:
            raise InvalidGraph(f"{node.describe()}: attribute(s) {unknown} are not defined for {node.op_type} "
                               f"(opset {node.opset}); it has {sorted(defined)}")
    if node.domain != "":
        return
    for name, value in node.attrs.items():
        bad = None
        if name in FLAGS and isinstance(value, int) and value not in (0, 1):
            bad = "must be 0 or 1"
        elif name in ("axis", "axes") and any(isinstance(a, int) and not -MAX_RANK <= a < MAX_RANK
                                              for a in (value if isinstance(value, list) else [value])):
            bad = f"is outside any tensor's dims (ranks up to {MAX_RANK})"
        elif (node.op_type, name) in POSITIVE and isinstance(value, int) and value <= 0:
            bad = "must be positive"
        elif name == "auto_pad" and node.op_type in AUTO_PAD_OPS and value not in AUTO_PAD:
            bad = f"must be one of {sorted(AUTO_PAD)}"
        else:
            allowed = CHOICES.get((node.op_type, name))
            if allowed is not None and value not in allowed:
                bad = f"must be one of {sorted(allowed, key=str)}"
        if bad:
            raise InvalidGraph(f"{node.describe()}: attribute {name}={value!r} {bad}")
