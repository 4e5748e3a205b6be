"""MatMul and Gemm.

ggml_mul_mat(a, b) computes b @ a^T row-wise: a is [K, N] (ggml order), b is
[K, M], the result [N, M]. So ONNX A @ B becomes mul_mat(B^T, A): constant B
is stored transposed once per session, an activation B is transposed in the
graph.
"""
from __future__ import annotations

import math

import numpy as np

from ggonnx import _core, blas
from ggonnx.emitter import amx_tiles_len
from ggonnx.errors import ShapeError
from ggonnx.ops.context import Value
from ggonnx.ops.registry import register
from ggonnx.weight_types import BF16, F32

# float32 matmuls go to OpenBLAS only where it beat ggml's own (llamafile) sgemm side by
# side on 2 AVX-512 cores: at least 64 in every dim and 5e7 multiply-adds (128x768x3072:
# 375 vs 307 GFLOP/s; 64x768x768: equal; 32x256x256: ggml 121 vs 106). When OpenBLAS
# runs narrower kernels than ggml (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU), ggml's
# sgemm was faster at every shape measured, so OpenBLAS gets none.
BLAS_MIN_DIM = 64
BLAS_MIN_MACS = 50_000_000
_blas_competitive = None


def choose_placement(m: int, n: int, k: int) -> int:
    global _blas_competitive
    if _blas_competitive is None:
        _blas_competitive = blas.f32_kernels_match_cpu()
    if _blas_competitive and min(m, n, k) >= BLAS_MIN_DIM and m * n * k >= BLAS_MIN_MACS:
        return _core.PLACE_BLAS
    return _core.PLACE_CPU


# Our packed GEMM (ggonnx.kernels, the weight packed at load) against ggml's sgemm and OpenBLAS,
# side by side on 2 AVX-512 cores (bench/run.py): 128x768x3072 397 vs 316 (BLAS) GFLOP/s,
# 128x768x768 387 vs 294, 32x256x256 139 vs 90 (ggml), 1x768x768 and 8x768x768 even. Larger
# weights: gpt2's 768x50257 LM head (a shallow depth, streamed once) 1.00x onnxruntime packed vs
# 1.06x on OpenBLAS, but 512x4096x4096 1.07x vs 0.93x, so deep big weights stay on OpenBLAS.
PACKED_MAX_WEIGHT_BYTES = 16 << 20
PACKED_MAX_DEEP_K = 1024


def use_packed_gemm(m: int, n: int, k: int) -> bool:
    return (4 * n * k <= PACKED_MAX_WEIGHT_BYTES or k <= PACKED_MAX_DEEP_K
            or choose_placement(m, n, k) != _core.PLACE_BLAS)


def packed_gemm_weight(ctx, b: Value):
    """Constant B [K, N] as the packed GEMM's weight of N outputs over depth K."""
    k, n = b.shape
    panel = _core.GEMM_PANEL
    return ctx.weight(b, "gemm_packed_T", packed_weight_from_kn, (-(-n // panel) * panel * k,))


def packed_weight_from_kn(b: np.ndarray) -> np.ndarray:
    """B [K, OC] (a MatMul's right operand) in the packed GEMM layout: panels of GEMM_PANEL output
    channels, each [K][PANEL], copied in runs of one panel row (bert-base's weights went through an
    element-by-element transpose first: ~0.6 s of its load)."""
    k, oc = b.shape
    panel = _core.GEMM_PANEL
    padded = np.pad(b, ((0, 0), (0, -(-oc // panel) * panel - oc)))
    return np.ascontiguousarray(padded.reshape(k, -1, panel).transpose(1, 0, 2)).reshape(-1)


def packed_weight(w2: np.ndarray) -> np.ndarray:
    """W [OC, K] (a conv's or a transposed Gemm's weight) in the packed GEMM layout."""
    return packed_weight_from_kn(w2.T)


# ggml's fast kernels for typed weights want whole groups of weight rows: tinyBLAS 4 (bf16, f16,
# q8_0), the repacked q4_0/q4_K/iq4_nl layouts 8, the AMX tiles 32; other row counts take the
# dot-product path (gpt2's 50257-row LM head in bf16: 160 GFLOP/s, 3x slower). Such weights get
# zero rows up to a multiple of TYPED_ROW_MULTIPLE and the product's extra rows are dropped.
TYPED_ROW_MULTIPLE = 32


def amx_bf16_tiles(rows: np.ndarray) -> np.ndarray:
    """Weight rows [N, K] in the AMX bf16 kernel's tile order (kernels.h): for each 16 outputs,
    for each 32 of depth, 16 depth pairs x 16 outputs x 2; N padded to a multiple of 32 and K
    to one of 32 with zeros. Float32 values (stored as bf16), or bf16 bits as uint16."""
    n, k = rows.shape
    n_pad, k_pad = -(-n // 32) * 32, -(-k // 32) * 32
    w = np.zeros((n_pad, k_pad), rows.dtype)
    w[:n, :k] = rows
    return w.reshape(n_pad // 16, 16, k_pad // 32, 16, 2).transpose(0, 2, 3, 1, 4).reshape(-1)


def weight_rows_times(ctx, v: Value, layout: str, rows_of, n: int, k: int, x, wtype: int,
                      place: int = _core.PLACE_CPU, pad_rows: bool = True):
    """Rows ``rows_of(const)`` [N, K] of constant ``v`` stored as ggml type ``wtype`` times x
    [K, M] -> [N, M]: bf16 on our AMX tile kernel where the CPU has AMX (ggml's bf16 kernel
    is a vdpbf16ps loop no faster than float32 there), else ggml's kernels for the type
    (``pad_rows``: N padded as TYPED_ROW_MULTIPLE says)."""
    e = ctx.e
    if wtype == BF16 and _core.amx_bf16():
        size = amx_tiles_len(n, k)
        shipped = e.weights.policy.prebuilt_rows(v.name, BF16)
        if shipped is not None:  # a GGUF file's bf16 rows, rearranged bit for bit
            raw, (rows_n, rows_k) = shipped
            make = lambda: (amx_bf16_tiles(np.ascontiguousarray(raw).view(np.uint16).reshape(  # noqa: E731
                rows_n, rows_k)).view(np.uint8), (size,))
        else:
            make = lambda: amx_bf16_tiles(rows_of(np.asarray(v.const, dtype=np.float32))[:n])  # noqa: E731
        tiles = e.weight((v.name, layout + " amx"), make, (size,), BF16, matmul_only=False)
        return e.gemm_amx_bf16(tiles, x, n)
    n_pad = -(-n // TYPED_ROW_MULTIPLE) * TYPED_ROW_MULTIPLE if pad_rows else n
    padded = (lambda c: np.pad(rows_of(c), ((0, n_pad - n), (0, 0)))) if n_pad != n else rows_of
    w = ctx.typed_weight(v, layout + (f" rows{n_pad}" if n_pad != n else ""), padded, (n_pad, k), wtype)
    y = e.mul_mat(w, x, place)
    return y if n_pad == n else e.view(y, (n, x.ne[1], 1, 1), 0)


def typed_weight_matmul(ctx, x, b: Value, k: int, n: int, rows: int, wtype: int, trans_b: bool = False):
    """x [K, rows] (ggml) times constant B [K, N] (or B^T with ``trans_b``) stored as ggml type
    ``wtype`` -> [N, rows]."""
    return weight_rows_times(ctx, b, "raw" if trans_b else "T", (lambda c: c) if trans_b else (lambda c: c.T),
                             n, k, ctx.e.reshape(x, (k, rows)), wtype)


def _transposed_weight(ctx, v: Value):
    """Constant B [..., K, N] stored as B^T [..., N, K]: ggml [K, N, ...]."""
    shape = v.shape[:-2] + (v.shape[-1], v.shape[-2])
    return ctx.weight(v, "T", lambda c: np.swapaxes(c, -1, -2), shape)


def _transposed(ctx, v: Value):
    """ggml tensor holding v^T over its last two dims."""
    if v.const is not None:
        return _transposed_weight(ctx, v)
    return ctx.e.permute(ctx.tensor(v), (1, 0, 2, 3))


def matmul(ctx, a: Value, b: Value) -> Value:
    a_shape, b_shape = a.shape, b.shape
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"{ctx.node.describe()}: MatMul of a scalar ({a_shape} @ {b_shape})")
    a2 = a_shape if a.rank > 1 else (1,) + a_shape
    b2 = b_shape if b.rank > 1 else b_shape + (1,)
    m, k = a2[-2:]
    k2, n = b2[-2:]
    if k != k2:
        raise ShapeError(f"{ctx.node.describe()}: inner dims differ: {a_shape} @ {b_shape}")
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise ShapeError(f"{ctx.node.describe()}: batch dims of {a_shape} and {b_shape} do not broadcast") from None
    if len(batch) > 2:
        ctx.unsupported(f"batched MatMul with {len(batch)} batch dims ({a_shape} @ {b_shape})")

    e = ctx.e
    wtype = ctx.weight_type(b, k, n) if b.rank == 2 and a.rank >= 2 else F32
    if wtype != F32:
        rows = m * int(math.prod(batch))
        y = typed_weight_matmul(ctx, ctx.tensor(a), b, k, n, rows, wtype)
        shape = batch + (m, n)
        return ctx.output(e.reshape(y, tuple(reversed(shape))), shape)
    if b.const is not None and b.rank == 2 and a.rank >= 2 and use_packed_gemm(m * int(math.prod(batch)), n, k):
        # a constant weight: our packed GEMM, the weight packed once at load (A's rows as pixels)
        rows = m * int(math.prod(batch))
        y = e.gemm_packed(e.reshape(ctx.tensor(a), (k, rows)), packed_gemm_weight(ctx, b), None, n)
        shape = batch + (m, n)
        return ctx.output(e.reshape(y, tuple(reversed(shape))), shape)
    if b.const is None and m == 1 and b.rank >= 2:
        y = _row_times_activation(ctx, a, b, b2, batch, k, n)
        if y is not None:
            shape = batch + (m, n) if a.rank > 1 else batch + (n,)
            return ctx.output(e.reshape(y, tuple(reversed(shape))), shape)
    if b.const is None and a.rank >= 2 and b.rank >= 2 and n >= ACT_PACKED_MIN_N and k >= ACT_PACKED_MIN_K:
        y = _activation_packed(ctx, a, b, a2, b2, batch, m, k, n)
        if y is not None:
            shape = batch + (m, n)
            return ctx.output(e.reshape(y, tuple(reversed(shape))), shape)
    if b.rank == 1:
        bt = e.reshape(ctx.tensor(b), (k, 1))            # B^T of a column vector is the row [K]
    else:
        bt = _transposed(ctx, b)
    ta = ctx.tensor(a)
    a_ne = (k, m) + tuple(reversed(batch)) + (1,) * (2 - len(batch))
    if a2[:-2] != batch:
        a_full = (k, m) + tuple(reversed((1,) * (len(batch) - len(a2[:-2])) + a2[:-2])) + (1,) * (2 - len(batch))
        ta = e.repeat(e.reshape(ta, a_full), a_ne)
    else:
        ta = e.reshape(ta, a_ne)
    b_batch = (1,) * (len(batch) - len(b2[:-2])) + b2[:-2]
    bt = e.reshape(bt, (k, n) + tuple(reversed(b_batch)) + (1,) * (2 - len(batch)))
    y = e.mul_mat(bt, ta, choose_placement(m * int(math.prod(batch)), n, k))

    shape = batch + (m, n)
    if a.rank == 1:
        shape = shape[:-2] + (n,)
    if b.rank == 1:
        shape = shape[:-1]
    return ctx.output(e.reshape(y, tuple(reversed(shape))), shape)


# An activation B (attention's K^T and V) packed at run time for our GEMM: one copy, as the
# transpose ggml's mul_mat needs anyway, then the packed kernel (whisper-tiny's 1500x1500x64
# Q.K^T per head: OpenBLAS 178 GFLOP/s). Below these sizes the packing is not worth it.
ACT_PACKED_MIN_N = 16
ACT_PACKED_MIN_K = 16


def _activation_packed(ctx, a: Value, b: Value, a2, b2, batch, m: int, k: int, n: int):
    """A @ B with B computed at run time: B's rows packed into GEMM panels per batch entry
    (ggml [N, K, batch] is B's own layout: no transpose), A's rows as the GEMM's pixels; B shared
    when its batch dims are all 1. None where A's batch would need broadcasting."""
    nbatch = int(math.prod(batch))
    if tuple(a2[:-2]) != batch and nbatch != 1:
        return None
    b_shared = int(math.prod(b2[:-2])) == 1
    if not b_shared and tuple((1,) * (len(batch) - len(b2[:-2])) + tuple(b2[:-2])) != batch:
        return None
    e = ctx.e
    wb = e.pack_panels(e.reshape(ctx.tensor(b), (n, k, 1 if b_shared else nbatch)))
    return e.gemm_packed(e.reshape(ctx.tensor(a), (k, m, nbatch)), wb, None, n)


def _row_times_activation(ctx, a: Value, b: Value, b2, batch, k: int, n: int):
    """One row of A per batch entry times B computed at run time (decode's attention: q @ K^T,
    probabilities @ V), reading B where it lies: packing or transposing it would copy the whole
    KV cache for one row of work. B given as a Transpose of S: ggml_mul_mat over S's rows; else
    ggml_out_prod over B's rows (their sum weighted by A's row; one batch entry per thread, so
    only with several). None where A's batch would need broadcasting, or B has one entry."""
    a_batch = (1,) * (len(batch) - max(a.rank - 2, 0)) + tuple(a.shape[:-2])
    if a_batch != batch:
        return None
    e = ctx.e
    pad = (1,) * (2 - len(batch))
    b_batch = (1,) * (len(batch) - len(b2[:-2])) + tuple(b2[:-2])
    b_dims, a_dims = tuple(reversed(b_batch)) + pad, tuple(reversed(batch)) + pad
    source = e.transposed_source(ctx.tensor(b))
    if source is not None:
        return e.mul_mat(e.reshape(source, (k, n) + b_dims), e.reshape(ctx.tensor(a), (k, 1) + a_dims))
    if math.prod(batch) < 2:
        return None
    return e.out_prod(e.reshape(ctx.tensor(b), (n, k) + b_dims), e.reshape(ctx.tensor(a), (1, k) + a_dims))


@register("MatMul", since=1)
def lower_matmul(ctx, node, inputs):
    return [matmul(ctx, inputs[0], inputs[1])]


@register("Gemm", since=7)
def lower_gemm(ctx, node, inputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_a, trans_b = ctx.attr("transA", 0), ctx.attr("transB", 0)
    if a.rank != 2 or b.rank != 2:
        raise ShapeError(f"{node.describe()}: Gemm needs 2-D A and B, got {a.shape} and {b.shape}")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ShapeError(f"{node.describe()}: inner dims differ: A {a.shape} (transA={trans_a}), "
                         f"B {b.shape} (transB={trans_b})")
    e = ctx.e
    wtype = ctx.weight_type(b, k, n) if not trans_a else F32
    if wtype != F32:
        y = typed_weight_matmul(ctx, ctx.tensor(a), b, k, n, m, wtype, trans_b=bool(trans_b))
        if alpha != 1.0:
            y = e.scale_bias(y, alpha)
        if c is not None and beta != 0.0:
            y = _add_c(ctx, node, y, c, beta, m, n)
        return [ctx.output(y, (m, n))]
    if b.const is not None and not trans_a and alpha == 1.0 and use_packed_gemm(m, n, k):
        # a constant weight (gpt2's projections): our packed GEMM, a row bias C in its epilogue
        panel = _core.GEMM_PANEL
        wt = ctx.weight(b, "gemm_packed_T" if not trans_b else "gemm_packed",
                        packed_weight if trans_b else packed_weight_from_kn,
                        (-(-n // panel) * panel * k,))
        bias = None
        if c is not None and beta != 0.0 and c.const is not None and c.const.size == n and \
                c.shape in ((n,), (1, n)):
            bias = ctx.weight(c, f"bias_panels beta={beta}", lambda v: np.pad(v.reshape(-1) * np.float32(beta),
                                                                              (0, -(-n // panel) * panel - n)),
                              (-(-n // panel) * panel,))
        y = e.gemm_packed(ctx.tensor(a), wt, bias, n)
        if c is not None and beta != 0.0 and bias is None:
            y = _add_c(ctx, node, y, c, beta, m, n)
        return [ctx.output(y, (m, n))]
    # mul_mat wants B^T as [K, N] in ggml order, i.e. the (N, K) row-major matrix.
    bt = ctx.tensor(b) if trans_b else _transposed(ctx, b)
    ta = _transposed(ctx, a) if trans_a else ctx.tensor(a)
    y = e.mul_mat(bt, ta, choose_placement(m, n, k))
    if alpha != 1.0:
        y = e.scale_bias(y, alpha)
    if c is not None and beta != 0.0:
        y = _add_c(ctx, node, y, c, beta, m, n)
    return [ctx.output(y, (m, n))]


def _add_c(ctx, node, y, c: Value, beta: float, m: int, n: int):
    """y + beta * C, C broadcast to (m, n)."""
    try:
        np.broadcast_shapes(c.shape, (m, n))
    except ValueError:
        raise ShapeError(f"{node.describe()}: C {c.shape} does not broadcast to ({m}, {n})") from None
    e = ctx.e
    if c.const is not None:
        tc = ctx.weight(c, f"beta={beta}", lambda v: v * np.float32(beta), c.shape)
    else:
        tc = ctx.tensor(c)
        if beta != 1.0:
            tc = e.scale_bias(tc, beta)
    return e.binary(_core.Op.ADD, y, tc)
