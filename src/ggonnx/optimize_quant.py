"""Rewrites of onnxruntime-quantized graphs into ops ggml runs; part of the optimizer.

- MatMulNBits (com.microsoft, 4- or 8-bit blocks along K) becomes a MatMul by the dequantized
  weight. Where the blocks are ggml blocks exactly (block sizes that are multiples of 32: q4_0
  without 4-bit zero points or with all of them 8, q4_1 with others, q8_0 for 8 bits with
  zero points 128) the weight's ggml bytes go to ``Graph.typed_weights`` and the session stores
  those rather than float32 (the scales rounded to float16, as ggml blocks hold them).
- quantize_dynamic's DynamicQuantizeLinear -> MatMulInteger / ConvInteger -> Cast -> Mul(scales)
  becomes a MatMul / Conv by the dequantized int8 weight. The activations are not quantized on the way, so the
  result sits closer to float32 than onnxruntime's int8 kernels. Symmetric (zero point 0) weights
  with one scale per tensor or per output channel are q8_0 blocks exactly (a dense conv's in its
  (ky, kx, c) rows): recorded likewise.
- QLinearMatMul / QLinearConv (and com.microsoft QLinearAdd / QLinearMul) become
  DequantizeLinear of their inputs, the float op and QuantizeLinear of the result; constant
  DequantizeLinear folds into float32 weights and the per-tensor Quantize/Dequantize pairs of
  activations run in ggml (ops/quant.py).
"""
from __future__ import annotations

import numpy as np
import onnx

from ggonnx.ir import Graph, Node

Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)])
Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", 32)])


def _node(op: str, inputs, outputs, name: str, domain: str = "", opset: int = 21, **attrs) -> Node:
    proto = onnx.helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs)
    return Node(name, op, domain, list(inputs), list(outputs), dict(attrs), opset, proto)


def _pack_q4(values: np.ndarray) -> np.ndarray:
    """4-bit values [..., 32] as ggml's qs bytes: element j in the low nibble, j + 16 in the high."""
    return (values[..., :16] | (values[..., 16:] << 4)).astype(np.uint8)


def nbits_weight(b, scales, zero_points, n: int, k: int, bits: int, block: int):
    """MatMulNBits' B [N, blocks, block*bits/8] -> (float32 W [K, N], ggml (type, bytes) or None)."""
    blocks = -(-k // block)
    raw = np.asarray(b, dtype=np.uint8).reshape(n, blocks, block * bits // 8)
    if bits == 4:
        q = np.empty((n, blocks, block), dtype=np.uint8)
        q[..., 0::2], q[..., 1::2] = raw & 0x0F, raw >> 4
    else:
        q = raw
    s = np.asarray(scales, dtype=np.float32).reshape(n, blocks)
    default_zp = 1 << (bits - 1)
    if zero_points is None:
        zp = np.full((n, blocks), default_zp, dtype=np.float32)
    elif zero_points.dtype == np.uint8:
        zraw = np.asarray(zero_points).reshape(n, -1)
        if bits == 4:
            zp = np.stack([zraw & 0x0F, zraw >> 4], axis=-1).reshape(n, -1)[:, :blocks].astype(np.float32)
        else:
            zp = zraw[:, :blocks].astype(np.float32)
    else:  # zero points given as floats, in the scales' type
        zp = np.asarray(zero_points, dtype=np.float32).reshape(n, blocks)
    w_t = ((q.astype(np.float32) - zp[..., None]) * s[..., None]).reshape(n, blocks * block)[:, :k]
    typed = None
    if block % 32 == 0 and k % 32 == 0 and (zero_points is None or zero_points.dtype == np.uint8):
        sub = block // 32  # ggml blocks per MatMulNBits block, each with the block's scale
        q32 = q.reshape(n, blocks * sub, 32)[:, :k // 32]
        d = np.repeat(s, sub, axis=1)[:, :k // 32]
        zps = np.repeat(zp, sub, axis=1)[:, :k // 32]
        if bits == 4 and np.all(zps == 8):
            out = np.empty(q32.shape[:2], dtype=Q4_0)
            out["d"], out["qs"] = d, _pack_q4(q32)
            typed = ("q4_0", out.view(np.uint8).reshape(-1))
        elif bits == 4:
            out = np.empty(q32.shape[:2], dtype=Q4_1)
            out["d"], out["m"], out["qs"] = d, -zps * d, _pack_q4(q32)
            typed = ("q4_1", out.view(np.uint8).reshape(-1))
        elif bits == 8 and np.all(zps == 128):
            out = np.empty(q32.shape[:2], dtype=Q8_0)
            out["d"], out["qs"] = d, (q32.astype(np.int16) - 128).astype(np.int8)
            typed = ("q8_0", out.view(np.uint8).reshape(-1))
    return np.ascontiguousarray(w_t.T), typed


def int8_rows(rows_q, scale, zp):
    """int8/uint8 weight rows [N, K] with one scale and zero point per tensor or per row ->
    (float32 rows, ggml (type, bytes) or None): symmetric int8 rows are q8_0 blocks exactly."""
    n, k = rows_q.shape
    s = np.broadcast_to(np.asarray(scale, dtype=np.float32).reshape(-1), (n,))
    z = np.broadcast_to(np.asarray(zp if zp is not None else 0, dtype=np.float32).reshape(-1), (n,))
    rows = (rows_q.astype(np.float32) - z[:, None]) * s[:, None]
    typed = None
    if rows_q.dtype == np.int8 and k % 32 == 0 and not z.any():
        out = np.empty((n, k // 32), dtype=Q8_0)
        out["d"], out["qs"] = s[:, None], np.ascontiguousarray(rows_q).reshape(n, k // 32, 32)
        typed = ("q8_0", out.view(np.uint8).reshape(-1))
    return rows, typed


def int8_weight(wq, scale, zp):
    """MatMulInteger's int8/uint8 B [K, N] with per-tensor or per-column scale and zero point ->
    (float32 W, ggml (type, bytes of B^T's rows) or None)."""
    rows, typed = int8_rows(np.ascontiguousarray(wq.T), scale, zp)
    return np.ascontiguousarray(rows.T), typed


def int8_conv_weight(wq, scale, zp, group: int):
    """ConvInteger's int8/uint8 W [OC, C/g, KH, KW], per-tensor or per-output-channel scale and
    zero point -> (float32 W, ggml (type, bytes of its (ky, kx, c) rows) or None; dense convs only)."""
    oc = wq.shape[0]
    rows, typed = int8_rows(np.ascontiguousarray(wq.transpose(0, 2, 3, 1).reshape(oc, -1)), scale, zp)
    w = np.ascontiguousarray(rows.reshape(oc, wq.shape[2], wq.shape[3], wq.shape[1]).transpose(0, 3, 1, 2))
    return w, typed if group == 1 else None


def rewrite_matmul_nbits(graph: Graph) -> None:
    inits = graph.initializers
    out = []
    for node in graph.nodes:
        if node.op_type != "MatMulNBits" or node.domain != "com.microsoft":
            out.append(node)
            continue
        ins = node.inputs + [""] * (6 - len(node.inputs))
        n, k = int(node.attrs.get("N", 0)), int(node.attrs.get("K", 0))
        bits, block = int(node.attrs.get("bits", 4)), int(node.attrs.get("block_size", 0))
        if bits not in (4, 8) or block < 16 or block & (block - 1) or n < 1 or k < 1 or \
                any(x and x not in inits for x in (ins[1], ins[2], ins[3])) or ins[4] or \
                inits.get(ins[1]) is None or inits[ins[1]].size != n * -(-k // block) * block * bits // 8:
            out.append(node)   # g_idx, 2/3-bit or run-time weights: left to the host
            continue
        w, typed = nbits_weight(inits[ins[1]], inits[ins[2]], inits.get(ins[3]) if ins[3] else None, n, k, bits, block)
        name = f"{node.name}__weight"
        inits[name] = w
        if typed is not None:
            graph.typed_weights[name] = (typed[0], typed[1], (n, k))
        result = node.outputs[0]
        mm_out = f"{result}__nobias" if ins[5] else result
        out.append(_node("MatMul", [ins[0], name], [mm_out], f"{node.name}__matmul"))
        if ins[5]:
            out.append(_node("Add", [mm_out, ins[5]], [result], f"{node.name}__bias"))
    graph.nodes = out


def rewrite_dynamic_matmul_integer(graph: Graph) -> None:
    """DynamicQuantizeLinear(x) -> MatMulInteger / ConvInteger(xq, Wq, xzp, wzp) -> Cast(float)
    -> Mul(x_scale * w_scale) with constant Wq, w_scale, w_zp becomes MatMul / Conv(x, W)."""
    from ggonnx.optimize import _def_use
    inits = graph.initializers
    producer, only_user = _def_use(graph)
    replaced, removed = {}, set()
    for mmi in graph.nodes:
        if mmi.op_type not in ("MatMulInteger", "ConvInteger") or mmi.domain:
            continue
        conv = mmi.op_type == "ConvInteger"
        ins = mmi.inputs + [""] * (4 - len(mmi.inputs))
        dql = producer.get(ins[0])
        wq = inits.get(ins[1])
        if dql is None or dql.op_type != "DynamicQuantizeLinear" or wq is None or wq.ndim != (4 if conv else 2) or \
                ins[2] != dql.outputs[2] or (ins[3] and ins[3] not in inits):
            continue
        cast = only_user(mmi.outputs[0])
        if cast is None or cast.op_type != "Cast" or cast.attrs.get("to") != onnx.TensorProto.FLOAT:
            continue
        mul = only_user(cast.outputs[0])
        if mul is None or mul.op_type != "Mul" or len(mul.inputs) != 2:
            continue
        scale_name = mul.inputs[1] if mul.inputs[0] == cast.outputs[0] else mul.inputs[0]
        scale_mul = producer.get(scale_name)
        if scale_mul is None or scale_mul.op_type != "Mul" or dql.outputs[1] not in scale_mul.inputs:
            continue
        w_scale = inits.get(scale_mul.inputs[1] if scale_mul.inputs[0] == dql.outputs[1] else scale_mul.inputs[0])
        n_out = wq.shape[0] if conv else wq.shape[1]
        if w_scale is None or w_scale.size not in (1, n_out) or only_user(scale_name) is not mul:
            continue
        zp = inits.get(ins[3]) if ins[3] else None
        if conv and (w_scale.size > 1 and w_scale.ndim != 1 or zp is not None and zp.size not in (1, n_out)):
            continue
        name = f"{mmi.name}__weight"
        if conv:
            w, typed = int8_conv_weight(wq, w_scale, zp, int(mmi.attrs.get("group", 1)))
            rows_shape = (wq.shape[0], wq.size // wq.shape[0])
            new = _node("Conv", [dql.inputs[0], name], [mul.outputs[0]], f"{mmi.name}__conv", **mmi.attrs)
        else:
            w, typed = int8_weight(wq, w_scale, zp)
            rows_shape = (wq.shape[1], wq.shape[0])
            new = _node("MatMul", [dql.inputs[0], name], [mul.outputs[0]], f"{mmi.name}__matmul")
        inits[name] = w
        if typed is not None:
            graph.typed_weights[name] = (typed[0], typed[1], rows_shape)
        replaced[id(mul)] = new
        removed.update((id(mmi), id(cast), id(scale_mul)))
    if replaced:  # the float op sits where the Mul was; the DynamicQuantizeLinear goes when unread
        graph.nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in removed]
        _drop_unread(graph, "DynamicQuantizeLinear")


def _drop_unread(graph: Graph, op_type: str) -> None:
    from ggonnx.optimize import _consumers
    users = _consumers(graph)
    graph.nodes = [n for n in graph.nodes if n.op_type != op_type or any(users.get(o) for o in n.outputs if o)]


# QOperator ops: (float op, domain, [(value, scale, zero point) input positions], output scale/zp positions)
_QLINEAR = {
    ("", "QLinearMatMul"): ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    ("", "QLinearConv"): ("Conv", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    ("com.microsoft", "QLinearAdd"): ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    ("com.microsoft", "QLinearMul"): ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
}


def rewrite_qlinear_ops(graph: Graph) -> None:
    out = []
    for node in graph.nodes:
        spec = _QLINEAR.get((node.domain, node.op_type))
        ins = node.inputs
        if spec is None or len(ins) < spec[2][1] + 1:
            out.append(node)
            continue
        op, operands, (ys, yz) = spec
        floats = []
        for i, (v, s, z) in enumerate(operands):
            f = f"{node.name}__in{i}"
            axis = {"axis": 0} if op == "Conv" and i == 1 else {}
            out.append(_node("DequantizeLinear", [ins[v], ins[s], ins[z]], [f], f"{node.name}__dq{i}", **axis))
            floats.append(f)
        if op == "Conv" and len(ins) > 8 and ins[8]:  # int32 bias, scaled by x_scale * w_scale
            bias = f"{node.name}__bias"
            out.append(_node("Mul", [ins[1], ins[4]], [f"{bias}_scale"], f"{bias}_scale"))
            out.append(_node("Cast", [ins[8]], [f"{bias}_f"], f"{bias}_cast", to=onnx.TensorProto.FLOAT))
            out.append(_node("Mul", [f"{bias}_f", f"{bias}_scale"], [bias], f"{bias}_mul"))
            floats.append(bias)
        attrs = {k: v for k, v in node.attrs.items()}
        y = f"{node.name}__out"
        out.append(_node(op, floats, [y], f"{node.name}__float", **attrs))
        out.append(_node("QuantizeLinear", [y, ins[ys], ins[yz]], [node.outputs[0]], f"{node.name}__q"))
    graph.nodes = out


def fold_int8_matmul_weights(graph: Graph) -> None:
    """DequantizeLinear of a constant int8 matrix read only as a MatMul's B (QDQ weights):
    folded here rather than by constant folding, so a symmetric per-tensor or per-column weight
    keeps its int8 blocks as q8_0."""
    from ggonnx.optimize import _def_use
    inits = graph.initializers
    _, only_user = _def_use(graph)
    kept = []
    for node in graph.nodes:
        ins = node.inputs + [""] * (3 - len(node.inputs))
        wq, scale = inits.get(ins[0]), inits.get(ins[1])
        user = only_user(node.outputs[0]) if node.op_type == "DequantizeLinear" and not node.domain else None
        if user is None or user.op_type != "MatMul" or user.inputs[1:] != [node.outputs[0]] or wq is None or \
                wq.ndim != 2 or wq.dtype != np.int8 or scale is None or scale.dtype != np.float32 or \
                scale.size not in (1, wq.shape[1]) or (scale.size > 1 and node.attrs.get("axis", 1) not in (1, -1)) or \
                (ins[2] and ins[2] not in inits) or node.attrs.get("block_size", 0):
            kept.append(node)
            continue
        w, typed = int8_weight(wq, scale, inits.get(ins[2]) if ins[2] else None)
        inits[node.outputs[0]] = w
        if typed is not None:
            graph.typed_weights[node.outputs[0]] = (typed[0], typed[1], (wq.shape[1], wq.shape[0]))
    graph.nodes = kept


def rewrite_quantized(graph: Graph) -> None:
    rewrite_matmul_nbits(graph)
    rewrite_dynamic_matmul_integer(graph)
    rewrite_qlinear_ops(graph)
    fold_int8_matmul_weights(graph)
