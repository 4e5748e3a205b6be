"""onnxruntime's contrib ops (domain com.microsoft), expanded into standard ONNX nodes at import.

onnxruntime's transformer optimizer and Optimum emit fused ops (Attention, SkipLayerNormalization,
FastGelu, ...). Each is written here as the few standard nodes it stands for, registered by
(domain, op type) like a lowering; the optimizer's fusions and the lowerings then map them onto
ggml (LayerNormalization -> ggml_norm, Gelu -> ggml's gelu, attention MatMuls -> packed GEMMs),
and anything that cannot run in ggml still runs on the host. Semantics follow onnxruntime's
CPU kernels (the tests compare against them); forms an expansion does not cover (a past state
in Attention, rotary embeddings) raise UnsupportedOpError naming the node.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ggonnx.errors import InvalidGraph, UnsupportedOpError
from ggonnx.ir import Graph, Node

MS = "com.microsoft"
_EXPANSIONS: dict = {}
# opsets of the nodes expansions write (lowerings and host kernels are looked up by them)
_OPSETS = {"LayerNormalization": 17, "Gelu": 20, "RMSNormalization": 23}
DEFAULT_OPSET = 18


def expands(op_type: str, *domains: str):
    def deco(fn):
        for domain in domains or (MS,):
            _EXPANSIONS[(domain, op_type)] = fn
        return fn
    return deco


class _Expansion:
    """The standard nodes one contrib node becomes, with fresh names for what lies between."""

    def __init__(self, graph: Graph, node: Node, ranks: dict):
        self.graph, self.node, self.nodes, self.count = graph, node, [], 0
        self.ranks = ranks  # value name -> rank, where onnx's shape inference knows it

    def arg(self, i: int) -> str:
        return self.node.inputs[i] if i < len(self.node.inputs) else ""

    def out(self, i: int) -> str:
        return self.node.outputs[i] if i < len(self.node.outputs) else ""

    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def heads(self, name: str) -> int:
        """A required, positive head count."""
        value = self.attr(name)
        if not isinstance(value, int) or value < 1:
            raise InvalidGraph(f"{self.node.describe()}: attribute '{name}' must be a positive int, got {value!r}")
        return value

    def fresh(self, tag: str) -> str:
        self.count += 1
        return f"{self.node.name}__{tag}_{self.count}"

    def const(self, value, dtype=np.int64) -> str:
        name = self.fresh("const")
        self.graph.initializers[name] = np.asarray(value, dtype=dtype)
        return name

    def op(self, op_type: str, inputs: list, outputs: list | None = None, n_out: int = 1, **attrs):
        outs = list(outputs) if outputs else [self.fresh(op_type.lower()) for _ in range(n_out)]
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        proto = helper.make_node(op_type, inputs, outs, name=self.fresh(op_type), **attrs)
        attrs = {k: numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for k, v in attrs.items()}  # as imported
        self.nodes.append(Node(proto.name, op_type, "", list(inputs), outs, attrs,
                               _OPSETS.get(op_type, DEFAULT_OPSET), proto))
        return outs[0] if len(outs) == 1 else outs

    def unsupported(self, what: str):
        raise UnsupportedOpError(f"{self.node.describe()}: {what} is not supported")


def has_contrib_ops(graph: Graph) -> bool:
    return any((n.domain, n.op_type) in _EXPANSIONS for n in graph.nodes)


def expand_contrib_ops(graph: Graph, ranks: dict) -> None:
    """Replace every contrib node that has an expansion by its standard nodes, in place;
    ``ranks``: value name -> rank (the forms of masks depend on it)."""
    nodes = []
    for node in graph.nodes:
        expand = _EXPANSIONS.get((node.domain, node.op_type))
        if expand is None:
            nodes.append(node)
            continue
        x = _Expansion(graph, node, ranks)
        expand(x)
        nodes.extend(x.nodes)
    graph.nodes = nodes


# -- normalizations -----------------------------------------------------------------------
def _skip_sum(x: _Expansion, bias_index: int) -> str:
    s = x.op("Add", [x.arg(0), x.arg(1)])
    if x.arg(bias_index):
        s = x.op("Add", [s, x.arg(bias_index)])
    if x.out(3):  # input + skip + bias, for the next residual
        x.op("Identity", [s], [x.out(3)])
    return s


@expands("SkipLayerNormalization")
def skip_layer_norm(x: _Expansion):
    s = _skip_sum(x, 4)
    outs = [x.out(0), x.out(1), x.out(2)]
    while outs[-1] == "":
        outs.pop()
    x.op("LayerNormalization", [s, x.arg(2), x.arg(3)], outs, axis=-1, epsilon=float(x.attr("epsilon", 1e-12)))


@expands("SkipSimplifiedLayerNormalization")
def skip_simplified_layer_norm(x: _Expansion):
    if x.out(1) or x.out(2):
        x.unsupported("the mean / inverse standard deviation outputs")
    s = _skip_sum(x, 3)
    x.op("RMSNormalization", [s, x.arg(2)], [x.out(0)], axis=-1, epsilon=float(x.attr("epsilon", 1e-12)))


@expands("SimplifiedLayerNormalization", MS, "")
def simplified_layer_norm(x: _Expansion):
    if x.out(1):
        x.unsupported("the inverse standard deviation output")
    x.op("RMSNormalization", [x.arg(0), x.arg(1)], [x.out(0)], axis=int(x.attr("axis", -1)),
         epsilon=float(x.attr("epsilon", 1e-5)))


@expands("EmbedLayerNormalization")
def embed_layer_norm(x: _Expansion):
    ids, segments, words, positions, segment_table, gamma, beta, mask, position_ids = (x.arg(i) for i in range(9))
    s = x.op("Gather", [words, ids])
    if not position_ids:  # 0..S-1 for every row
        length = x.op("Gather", [x.op("Shape", [ids]), x.const(1)])
        position_ids = x.op("Unsqueeze", [x.op("Range", [x.const(0), length, x.const(1)]), x.const([0])])
    s = x.op("Add", [s, x.op("Gather", [positions, position_ids])])
    if segments:
        s = x.op("Add", [s, x.op("Gather", [segment_table, segments])])
    x.op("LayerNormalization", [s, gamma, beta], [x.out(0)], axis=-1, epsilon=float(x.attr("epsilon", 1e-12)))
    if x.out(1):  # the mask's ones per row (onnxruntime: zeros without a mask)
        source = x.op("Cast", [mask if mask else x.op("Mul", [ids, x.const(0, np.int32)])], to=TensorProto.INT32)
        x.op("ReduceSum", [source, x.const([1])], [x.out(1)], keepdims=0)
    if x.out(2):
        x.op("Identity", [s], [x.out(2)])


# -- activations --------------------------------------------------------------------------
def _biased(x: _Expansion) -> str:
    return x.op("Add", [x.arg(0), x.arg(1)]) if x.arg(1) else x.arg(0)


@expands("Gelu")
def gelu(x: _Expansion):
    x.op("Gelu", [x.arg(0)], [x.out(0)])


@expands("BiasGelu")
def bias_gelu(x: _Expansion):
    x.op("Gelu", [_biased(x)], [x.out(0)])


@expands("FastGelu")
def fast_gelu(x: _Expansion):
    x.op("Gelu", [_biased(x)], [x.out(0)], approximate="tanh")


@expands("QuickGelu")
def quick_gelu(x: _Expansion):
    alpha = x.const(float(x.attr("alpha", 1.702)), np.float32)
    x.op("Mul", [x.arg(0), x.op("Sigmoid", [x.op("Mul", [x.arg(0), alpha])])], [x.out(0)])


@expands("BiasSplitGelu")
def bias_split_gelu(x: _Expansion):
    left, right = x.op("Split", [_biased(x)], n_out=2, axis=-1, num_outputs=2)
    x.op("Mul", [left, x.op("Gelu", [right])], [x.out(0)])


# -- attention ----------------------------------------------------------------------------
def _heads(x: _Expansion, t: str, heads: int, perm) -> str:
    """[B, S, N*D] -> [B, N, S, D] (perm 0,2,1,3) or [B, N, D, S] (0,2,3,1)."""
    return x.op("Transpose", [x.op("Reshape", [t, x.const([0, 0, heads, -1])])], perm=list(perm))


def _scaled(x: _Expansion, scores: str, q: str) -> str:
    """scores times the node's scale, or 1/sqrt(head size) from the query heads' last dim."""
    scale = x.attr("scale")
    if scale is None or float(scale) == 0.0:
        d = x.op("Cast", [x.op("Gather", [x.op("Shape", [q]), x.const(3)])], to=TensorProto.FLOAT)
        return x.op("Div", [scores, x.op("Sqrt", [d])])
    return x.op("Mul", [scores, x.const(float(scale), np.float32)])


def _attend(x: _Expansion, q: str, k_t: str, v: str, out: str, mask: str, bias: str, new_keys: str = ""):
    """softmax(q k^T * scale + masks) v over heads [B, N, S, D], merged back to [B, S, N*D]."""
    scores = _scaled(x, x.op("MatMul", [q, k_t]), q)
    filter_value = x.const(float(x.attr("mask_filter_value", -10000.0)), np.float32)
    if mask:
        scores = x.op("Add", [scores, _mask_bias(x, mask, k_t, filter_value)])
    if int(x.attr("unidirectional", 0)):
        scores = x.op("Add", [scores, _causal_bias(x, q, k_t, filter_value, new_keys)])
    if bias:
        scores = x.op("Add", [scores, bias])
    probs = x.op("Softmax", [scores], axis=-1)
    merged = x.op("Transpose", [x.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    x.op("Reshape", [merged, x.const([0, 0, -1])], [out])


def _mask_bias(x: _Expansion, mask: str, k_t: str, filter_value: str) -> str:
    """(1 - keep) * filter, shaped to add to scores [B, N, S, T]. ``mask``: [B] key lengths
    (keys from that position on are masked), [B, T] or [B, S, T] with 1 = attend."""
    rank = x.ranks.get(mask)
    if rank == 1:
        total = x.op("Gather", [x.op("Shape", [k_t]), x.const(3)])
        positions = x.op("Range", [x.const(0), total, x.const(1)])
        ends = x.op("Unsqueeze", [x.op("Cast", [mask], to=TensorProto.INT64), x.const([1])])
        keep = x.op("Cast", [x.op("Less", [positions, ends])], to=TensorProto.FLOAT)
        axes = [1, 2]
    elif rank in (2, 3):
        keep = x.op("Cast", [mask], to=TensorProto.FLOAT)
        axes = [1, 2] if rank == 2 else [1]
    else:
        x.unsupported(f"a rank-{rank} mask")
    off = x.op("Sub", [x.const(1.0, np.float32), keep])
    return x.op("Unsqueeze", [x.op("Mul", [off, filter_value]), x.const(axes)])


def _causal_bias(x: _Expansion, q: str, k_t: str, filter_value: str, new_keys: str = "") -> str:
    """filter where key position j > T - S + query position i: the queries are the last S of
    the T positions, after a past ([S, T]). Where the new keys are not the queries' own positions
    (their counts differ) onnxruntime masks in a pattern of its own: ``new_keys`` (their
    tensor) makes that case fail when the plan is made, naming the node, instead."""
    shape_q, shape_k = x.op("Shape", [q]), x.op("Shape", [k_t])
    length = x.op("Gather", [shape_q, x.const(2)])
    if new_keys:  # a Reshape of the new keys' positions to the queries' count: fails unless equal
        positions = x.op("Range", [x.const(0), x.op("Gather", [x.op("Shape", [new_keys]), x.const(1)]), x.const(1)])
        checked = x.op("Reshape", [positions, x.op("Reshape", [length, x.const([1])])])
        length = x.op("Gather", [x.op("Shape", [checked]), x.const(0)])
    total = x.op("Gather", [shape_k, x.const(3)])
    start = x.op("Sub", [total, length])
    queries = x.op("Unsqueeze", [x.op("Range", [start, x.op("Add", [start, length]), x.const(1)]), x.const([1])])
    keys = x.op("Range", [x.const(0), total, x.const(1)])
    later = x.op("Cast", [x.op("Greater", [keys, queries])], to=TensorProto.FLOAT)
    return x.op("Mul", [later, filter_value])


@expands("Attention")
def attention(x: _Expansion):
    """input [B, S, H_in] times weights [H_in, Hq + Hk + Hv] (+ bias): Q, K, V; mask_index [B],
    [B, T] or [B, S, T]; attention_bias [B or 1, N, S, T]; unidirectional."""
    if x.arg(4) or x.out(1):
        x.unsupported("a past / present state (use MultiHeadAttention's past_key / past_value)")
    if int(x.attr("do_rotary", 0)):
        x.unsupported("do_rotary=1")
    heads = x.heads("num_heads")
    qkv = x.op("MatMul", [x.arg(0), x.arg(1)])
    if x.arg(2):
        qkv = x.op("Add", [qkv, x.arg(2)])
    sizes = x.attr("qkv_hidden_sizes")
    if sizes:
        q, k, v = x.op("Split", [qkv, x.const(list(sizes))], n_out=3, axis=-1)
    else:
        q, k, v = x.op("Split", [qkv], n_out=3, axis=-1, num_outputs=3)
    _attend(x, _heads(x, q, heads, (0, 2, 1, 3)), _heads(x, k, heads, (0, 2, 3, 1)), _heads(x, v, heads, (0, 2, 1, 3)),
            x.out(0), x.arg(3), x.arg(5))


@expands("MultiHeadAttention")
def multi_head_attention(x: _Expansion):
    """query [B, S, H], key [B, L, H], value [B, L, Hv] (+ bias [H + H + Hv]); key_padding_mask
    [B], [B, T] or [B, S, T]; attention_bias; past_key / past_value [B, N, P, D] concatenated
    before the new keys and values (present_key / present_value)."""
    query, key, value, bias = x.arg(0), x.arg(1), x.arg(2), x.arg(3)
    if not key or not value or x.ranks.get(key) != 3 or x.ranks.get(value) != 3:
        x.unsupported("packed or pre-split (4-D) key / value")
    heads = x.heads("num_heads")
    if bias:
        bq, bk, bv = x.op("Split", [bias], n_out=3, axis=0, num_outputs=3)
        query, key, value = x.op("Add", [query, bq]), x.op("Add", [key, bk]), x.op("Add", [value, bv])
    q = _heads(x, query, heads, (0, 2, 1, 3))
    k = _heads(x, key, heads, (0, 2, 1, 3))
    v = _heads(x, value, heads, (0, 2, 1, 3))
    if x.arg(6) or x.arg(7):
        if not (x.arg(6) and x.arg(7)):
            x.unsupported("past_key without past_value (or the reverse)")
        k = x.op("Concat", [x.arg(6), k], axis=2)
        v = x.op("Concat", [x.arg(7), v], axis=2)
    if x.out(1):
        x.op("Identity", [k], [x.out(1)])
    if x.out(2):
        x.op("Identity", [v], [x.out(2)])
    _attend(x, q, x.op("Transpose", [k], perm=[0, 1, 3, 2]), v, x.out(0), x.arg(4), x.arg(5), x.arg(1))


# -- positions ----------------------------------------------------------------------------
@expands("RotaryEmbedding")
def rotary_embedding(x: _Expansion):
    """input [B, S, N*D] or [B, N, S, D]; position_ids [B, S] (or one start offset [1]); caches
    [positions, R/2]: the first R = rotary_embedding_dim (or D) dims of every head rotated, as
    halves or (interleaved) as pairs."""
    data, positions, cos_cache, sin_cache = x.arg(0), x.arg(1), x.arg(2), x.arg(3)
    rank, pos_rank = x.ranks.get(data), x.ranks.get(positions)
    if rank not in (3, 4) or pos_rank not in (1, 2) or int(x.attr("is_packed_batching", 0)) \
            or float(x.attr("scale", 1.0)) != 1.0:
        x.unsupported(f"a rank-{rank} input with rank-{pos_rank} position ids (or packed batching, a scale)")
    half = x.op("Gather", [x.op("Shape", [cos_cache]), x.const([1])])   # [1]: R/2
    rotary = x.op("Mul", [half, x.const([2])])
    seq_axis = 1 if rank == 3 else 2
    if pos_rank == 1:  # a start offset: positions offset .. offset + S - 1 for every row
        length = x.op("Gather", [x.op("Shape", [data]), x.const(seq_axis)])
        start = x.op("Squeeze", [positions, x.const([0])])
        positions = x.op("Unsqueeze", [x.op("Range", [start, x.op("Add", [start, length]), x.const(1)]),
                                       x.const([0])])
    heads = data
    if rank == 3:  # [B, S, N*D] -> [B, S, N, D]
        n = int(x.attr("num_heads", 0))
        split = x.const([0, 0, n, -1]) if n else x.op("Concat", [x.const([0, 0, -1]), rotary], axis=0)
        heads = x.op("Reshape", [data, split])
    rotated = _rotate(x, heads, positions, cos_cache, sin_cache, 2 if rank == 3 else 1, half, rotary,
                      int(x.attr("interleaved", 0)), int(x.attr("rotary_embedding_dim", 0)) != 0)
    x.op("Reshape", [rotated, x.op("Shape", [data])], [x.out(0)])


def _rotate(x: _Expansion, heads: str, positions: str, cos_cache: str, sin_cache: str, head_axis: int,
            half: str, rotary: str, interleaved: bool, partial: bool) -> str:
    """Rotary embedding of 4-D ``heads`` (head dims last; ``head_axis`` where the heads are, so
    cos/sin [B, S, R/2] gathered at ``positions`` broadcast over them): the first R dims rotated
    as halves or interleaved pairs, the rest (``partial``) kept."""
    axis = x.const([head_axis])
    cos = x.op("Unsqueeze", [x.op("Gather", [cos_cache, positions]), axis])
    sin = x.op("Unsqueeze", [x.op("Gather", [sin_cache, positions]), axis])
    end = x.const([1 << 62])
    last = x.const([-1])
    part = x.op("Slice", [heads, x.const([0]), rotary, last]) if partial else heads
    if interleaved:  # pairs (2i, 2i+1)
        pairs = x.op("Reshape", [part, x.op("Concat", [x.const([0, 0, 0]), half, x.const([2])], axis=0)])
        a = x.op("Squeeze", [x.op("Slice", [pairs, x.const([0]), x.const([1]), last]), last])
        b = x.op("Squeeze", [x.op("Slice", [pairs, x.const([1]), x.const([2]), last]), last])
    else:  # halves
        a = x.op("Slice", [part, x.const([0]), half, last])
        b = x.op("Slice", [part, half, rotary, last])
    ra = x.op("Sub", [x.op("Mul", [a, cos]), x.op("Mul", [b, sin])])
    rb = x.op("Add", [x.op("Mul", [b, cos]), x.op("Mul", [a, sin])])
    if interleaved:
        both = x.op("Concat", [x.op("Unsqueeze", [ra, last]), x.op("Unsqueeze", [rb, last])], axis=-1)
        rotated = x.op("Reshape", [both, x.op("Concat", [x.const([0, 0, 0]), rotary], axis=0)])
    else:
        rotated = x.op("Concat", [ra, rb], axis=-1)
    if partial:
        rotated = x.op("Concat", [rotated, x.op("Slice", [heads, rotary, end, last])], axis=-1)
    return rotated


@expands("GroupQueryAttention")
def group_query_attention(x: _Expansion):
    """query [B, S, N*D], key / value [B, S, Nkv*D], past_key / past_value [B, Nkv, P, D] (not a
    shared buffer), seqlens_k [B] (T - 1 per entry), optional rotary caches: causal attention in
    which every Nkv head serves N / Nkv query heads. Every entry must hold T = P + S tokens
    (batches padded inside the cache raise at run time, naming the node)."""
    q, k, v, past_k, past_v, seqlens = (x.arg(i) for i in range(6))
    extras = [x.arg(i) for i in range(9, 17)]
    if not k or not v or any(extras) or float(x.attr("softcap", 0.0)) or int(x.attr("local_window_size", -1)) != -1 \
            or int(x.attr("smooth_softmax", 0)) or not int(x.attr("causal", 1)) or int(x.attr("qk_output", 0)) \
            or int(x.attr("kv_cache_bit_width", 0)) or bool(past_k) != bool(past_v):
        x.unsupported("packed QKV, position ids, attention bias, head sinks, quantized caches, softcap, "
                      "local windows, smooth softmax or non-causal attention")
    heads, kv_heads = x.heads("num_heads"), x.heads("kv_num_heads")
    if heads % kv_heads:
        x.unsupported(f"{heads} query heads over {kv_heads} key/value heads")
    qh, kh, vh = _heads(x, q, heads, (0, 2, 1, 3)), _heads(x, k, kv_heads, (0, 2, 1, 3)), _heads(x, v, kv_heads, (0, 2, 1, 3))
    length = x.op("Gather", [x.op("Shape", [q]), x.const([1])])          # [1]: S
    ends = x.op("Cast", [x.op("Add", [seqlens, x.const(1, np.int32)])], to=TensorProto.INT64)   # [B]: T per entry
    starts = x.op("Sub", [ends, length])                                   # [B]: P per entry
    steps = x.op("Range", [x.const(0), x.op("Squeeze", [length, x.const([0])]), x.const(1)])   # [S]: 0..S-1
    if int(x.attr("do_rotary", 0)):
        half = x.op("Gather", [x.op("Shape", [x.arg(7)]), x.const([1])])
        rotary = x.op("Mul", [half, x.const([2])])
        positions = x.op("Add", [x.op("Unsqueeze", [starts, x.const([1])]), steps])      # [B, S]
        interleaved = int(x.attr("rotary_interleaved", 0))
        qh = _rotate(x, qh, positions, x.arg(7), x.arg(8), 1, half, rotary, interleaved, False)
        kh = _rotate(x, kh, positions, x.arg(7), x.arg(8), 1, half, rotary, interleaved, False)
    if past_k:
        kh, vh = x.op("Concat", [past_k, kh], axis=2), x.op("Concat", [past_v, vh], axis=2)
    total = x.op("Gather", [x.op("Shape", [kh]), x.const([2])])           # [1]: P + S
    # every entry must hold P + S tokens: a Reshape of B * (P + S) zeros to sum(T) fails otherwise
    batch = x.op("Gather", [x.op("Shape", [q]), x.const([0])])
    zeros = x.op("ConstantOfShape", [x.op("Mul", [batch, total])],
                 value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    tokens = x.op("ReduceSum", [ends, x.const([0])], keepdims=1)
    checked = x.op("ReduceSum", [x.op("Reshape", [zeros, tokens]), x.const([0])], keepdims=0)
    if x.out(1):
        x.op("Identity", [kh], [x.out(1)])
    if x.out(2):
        x.op("Identity", [vh], [x.out(2)])
    grouped = x.op("Reshape", [qh, x.const([0, kv_heads, -1, 0])])        # [B, Nkv, g*S, D]
    scores = _scaled(x, x.op("MatMul", [grouped, x.op("Transpose", [kh], perm=[0, 1, 3, 2])]), qh)
    # key j is hidden from query i of entry b when j > P_b + i: [B, 1, S, T], tiled over the group
    queries = x.op("Add", [x.op("Unsqueeze", [starts, x.const([1, 2])]),
                           x.op("Unsqueeze", [steps, x.const([1])])])               # [B, S, 1]
    keys = x.op("Range", [x.const(0), x.op("Squeeze", [total, x.const([0])]), x.const(1)])
    hidden = x.op("Cast", [x.op("Greater", [keys, queries])], to=TensorProto.FLOAT)
    bias = x.op("Add", [x.op("Mul", [hidden, x.const(np.finfo(np.float32).min, np.float32)]), checked])
    bias = x.op("Tile", [x.op("Unsqueeze", [bias, x.const([1])]), x.const([1, 1, heads // kv_heads, 1])])
    probs = x.op("Softmax", [x.op("Add", [scores, bias])], axis=-1)
    context = x.op("Reshape", [x.op("MatMul", [probs, vh]), x.const([0, heads, -1, 0])])   # [B, N, S, D]
    x.op("Reshape", [x.op("Transpose", [context], perm=[0, 2, 1, 3]), x.const([0, 0, -1])], [x.out(0)])
