"""Attribute values ONNX allows, checked at load: an out-of-spec value is a model error naming the
node, the attribute and the value, not a guess (onnxruntime reads keepdims=7 as 0, ggonnx's kernels
read it as 1: neither is the model's meaning).

Only standard-domain ops are checked, and only attributes whose allowed values are the same in every
opset that has them.
"""
from __future__ import annotations

import onnx.defs
from onnx import AttributeProto

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
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
POSITIVE = {("DepthToSpace", "blocksize"), ("SpaceToDepth", "blocksize"), ("LpPool", "p"), ("RNN", "hidden_size"),
            ("GRU", "hidden_size"), ("LSTM", "hidden_size")}
# No tensor has more dims than NumPy's limit (ggml's is 4): an axis beyond it fits no input (and
# onnx's own shape inference crashes on some, so this is checked before it runs)
MAX_RANK = 64


def _schema(node):
    """onnx's schema of the node's op at its opset, or None."""
    try:
        return onnx.defs.get_schema(node.op_type, node.opset, node.domain)
    except onnx.defs.SchemaError:
        return None


def _check_inputs(node, schema) -> None:
    """Required inputs present and named, no more inputs than the schema takes (onnx's shape
    inference segfaults on an empty name where a required input belongs)."""
    option = onnx.defs.OpSchema.FormalParameterOption
    formal = list(schema.inputs)
    variadic = bool(formal) and formal[-1].option == option.Variadic
    if len(node.inputs) > len(formal) and not variadic:
        raise InvalidGraph(f"{node.describe()}: {len(node.inputs)} inputs, {node.op_type} takes at most {len(formal)}")
    for i, param in enumerate(formal):
        if param.option != option.Single:
            continue
        if i >= len(node.inputs) or not node.inputs[i]:
            raise InvalidGraph(f"{node.describe()}: required input {i} ({param.name}) of {node.op_type} is missing")


def _bad_pads(node, pads: list):
    """Conv/pool pads are >= 0 (the spec) and, for pools, smaller than the window (as onnxruntime
    requires: a larger pad only adds windows of padding, and 2**31 of them never finish)."""
    if any(p < 0 for p in pads):
        return "must be >= 0"
    kernel = node.attrs.get("kernel_shape")
    if node.op_type in POOLS and isinstance(kernel, list) and len(pads) == 2 * len(kernel):
        if any(p >= kernel[i % len(kernel)] for i, p in enumerate(pads)):
            return f"must be smaller than kernel_shape {kernel}"
    return None


def _check_attribute_types(node, schema) -> None:
    """Each attribute of the type its op declares (onnxruntime refuses alpha=1 given as an int)."""
    for attr in getattr(node.proto, "attribute", ()):
        want = schema.attributes[attr.name].type if attr.name in schema.attributes else None
        if want is not None and attr.type != want and not attr.ref_attr_name:
            raise InvalidGraph(f"{node.describe()}: attribute {attr.name} is a {AttributeProto.AttributeType.Name(attr.type)}, "
                               f"{node.op_type} takes a {AttributeProto.AttributeType.Name(want)}")


def check_node(node) -> None:
    """Raise InvalidGraph when ``node`` (an ir.Node) has an attribute its op does not define (as
    onnxruntime refuses it) or a value its op does not allow."""
    if node.domain not in ("", "ai.onnx.ml"):
        return
    schema = _schema(node)
    if schema is None:
        if onnx.defs.has(node.op_type, node.domain):
            raise InvalidGraph(f"{node.describe()}: {node.op_type} is not defined in opset {node.opset} of "
                               f"domain '{node.domain or 'ai.onnx'}'")
    else:
        _check_inputs(node, schema)
        unknown = sorted(set(node.attrs) - set(schema.attributes))
        if unknown:
            raise InvalidGraph(f"{node.describe()}: attribute(s) {unknown} are not defined for {node.op_type} "
                               f"(opset {node.opset}); it has {sorted(schema.attributes)}")
        _check_attribute_types(node, schema)
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
        elif name == "epsilon" and isinstance(value, float) and not value >= 0:
            bad = "must be a number >= 0"   # ggml's norms assert it; NaN would make every output NaN
        elif name == "num_outputs" and node.op_type == "Split" and value != len(node.outputs):
            bad = f"must equal the node's {len(node.outputs)} outputs"   # onnx's inference asserts
        elif name == "auto_pad" and node.op_type in AUTO_PAD_OPS and value not in AUTO_PAD:
            bad = f"must be one of {sorted(AUTO_PAD)}"
        elif name == "pads" and node.op_type in AUTO_PAD_OPS and isinstance(value, list):
            bad = _bad_pads(node, value)
        else:
            allowed = CHOICES.get((node.op_type, name))
            if allowed is not None and value not in allowed:
                bad = f"must be one of {sorted(allowed, key=str)}"
        if bad:
            raise InvalidGraph(f"{node.describe()}: attribute {name}={value!r} {bad}")
    _check_relations(node)


def _check_relations(node) -> None:
    """Attributes whose allowed values depend on each other (onnxruntime refuses these when it
    builds the kernel)."""
    a = node.attrs
    bad = None
    if node.op_type == "ReverseSequence":
        time_axis, batch_axis = a.get("time_axis", 0), a.get("batch_axis", 1)
        if {time_axis, batch_axis} != {0, 1}:
            bad = f"time_axis={time_axis!r} and batch_axis={batch_axis!r} must be 0 and 1, one each"
    elif node.op_type == "TfIdfVectorizer":
        lo, hi, counts = a.get("min_gram_length"), a.get("max_gram_length"), a.get("ngram_counts", [])
        if isinstance(lo, int) and isinstance(hi, int) and not 1 <= lo <= hi <= len(counts):
            bad = (f"min_gram_length={lo} and max_gram_length={hi} must satisfy 1 <= min <= max <= "
                   f"len(ngram_counts) ({len(counts)})")
    if bad:
        raise InvalidGraph(f"{node.describe()}: {bad}")
