"""Attribute values ONNX allows, checked at load: an out-of-spec value is a model error naming the
node, the attribute and the value, not a guess (onnxruntime reads keepdims=7 as 0, ggonnx's kernels
read it as 1: neither is the model's meaning).

Only standard-domain ops are checked, and only attributes whose allowed values are the same in every
opset that has them.
"""
from __future__ import annotations

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
}
AUTO_PAD = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}
AUTO_PAD_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool",
                          "LpPool"})
POSITIVE = {("DepthToSpace", "blocksize"), ("SpaceToDepth", "blocksize"), ("LpPool", "p")}


def check_node(node) -> None:
    """Raise InvalidGraph when ``node`` (an ir.Node) has an attribute value its op does not allow."""
    if node.domain != "":
        return
    for name, value in node.attrs.items():
        bad = None
        if name in FLAGS and isinstance(value, int) and value not in (0, 1):
            bad = "must be 0 or 1"
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
