"""MatMul (numpy matmul semantics) and Gemm."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from ._helpers import assert_close, op_node, randn, run_graph_shapes, run_op, seeds, sum_atol

# which of A, B is an initializer (never both: that would be folded on the host)
MATMUL_CONST = st.sampled_from([(), (1,), (0,)])


@st.composite
def matmul_shapes(draw, min_dim: int = 1, max_dim: int = 6):
    """Shapes of A and B for MatMul: 1-D operands, 2-D, and up to two broadcast batch dims."""
    m, k, n = (draw(st.integers(min_dim, max_dim)) for _ in range(3))
    batch_a, batch_b = draw(mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=2, min_side=1, max_side=3)).input_shapes
    a = (k,) if draw(st.booleans()) else batch_a + (m, k)
    b = (k,) if draw(st.booleans()) else batch_b + (k, n)
    return a, b


def _check_matmul(shape_a, shape_b, const, seed):
    rng = np.random.default_rng(seed)
    a, b = randn(rng, shape_a), randn(rng, shape_b)
    (got,) = run_op("MatMul", [a, b], const=const)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert_close(got, want, atol=sum_atol(shape_a[-1]))


@settings(max_examples=100, deadline=None)
@given(ab=matmul_shapes(), const=MATMUL_CONST, seed=seeds)
def test_matmul(ab, const, seed):
    _check_matmul(*ab, const, seed)


@settings(max_examples=10, deadline=None)
@given(ab=matmul_shapes(min_dim=32, max_dim=40), const=MATMUL_CONST, seed=seeds)
def test_matmul_blas_sized(ab, const, seed):
    # every dim >= 32 routes the matmul to OpenBLAS instead of ggml's own kernels
    _check_matmul(*ab, const, seed)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 30), k=st.sampled_from([383, 384, 385, 1000, 5000]), n=st.integers(1, 70),
       batch=st.sampled_from([(), (2,), (2, 3)]), seed=seeds)
def test_matmul_constant_weight_deep(m, k, n, batch, seed):
    # a constant weight runs on the packed GEMM, whose depth runs in cache-sized chunks
    _check_matmul(batch + (m, k), (k, n), (1,), seed)


@st.composite
def gemm_cases(draw, min_dim: int = 1, max_dim: int = 6):
    m, k, n = (draw(st.integers(min_dim, max_dim)) for _ in range(3))
    trans_a, trans_b = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    c_shape = draw(st.sampled_from([None, (n,), (m, n), (1, n), (), (m, 1), (1, 1)]))
    n_inputs = 2 if c_shape is None else 3
    const = draw(st.sets(st.integers(0, n_inputs - 1), max_size=n_inputs - 1))
    return dict(m=m, k=k, n=n, trans_a=trans_a, trans_b=trans_b, c_shape=c_shape, const=tuple(const),
                alpha=draw(st.sampled_from([1.0, 0.5, -1.25, 2.0, 0.0])),
                beta=draw(st.sampled_from([1.0, 0.0, 0.5, -2.0])),
                opset=draw(st.sampled_from([11, 13])))


def _check_gemm(case, seed):
    rng = np.random.default_rng(seed)
    m, k, n = case["m"], case["k"], case["n"]
    a = randn(rng, (k, m) if case["trans_a"] else (m, k))
    b = randn(rng, (n, k) if case["trans_b"] else (k, n))
    c = None if case["c_shape"] is None else randn(rng, case["c_shape"])
    inputs = [a, b] + ([] if c is None else [c])
    (got,) = run_op("Gemm", inputs, const=case["const"], opset=case["opset"], alpha=case["alpha"],
                    beta=case["beta"], transA=case["trans_a"], transB=case["trans_b"])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = case["alpha"] * ((a64.T if case["trans_a"] else a64) @ (b64.T if case["trans_b"] else b64))
    if c is not None:
        want = want + case["beta"] * c.astype(np.float64)
    assert_close(got, want, atol=sum_atol(k))


@settings(max_examples=100, deadline=None)
@given(case=gemm_cases(), seed=seeds)
def test_gemm(case, seed):
    _check_gemm(case, seed)


@settings(max_examples=10, deadline=None)
@given(case=gemm_cases(min_dim=32, max_dim=40), seed=seeds)
def test_gemm_blas_sized(case, seed):
    _check_gemm(case, seed)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 6), n=st.integers(1, 6), rank=st.integers(1, 4),
       rows=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5)), min_size=3, max_size=3),
       b_vector=st.booleans(), seed=seeds)
def test_matmul_constant_b_one_session_many_shapes(k, n, rank, rows, b_vector, seed):
    # the stored (transposed) B serves every plan while A's batch and row dims change
    rng = np.random.default_rng(seed)
    b = randn(rng, (k,) if b_vector else (k, n))
    a_shapes = [(d0, d1, m)[3 - (rank - 1):] + (k,) if rank > 1 else (k,) for d0, d1, m in rows]
    a_shapes.append(a_shapes[0])
    node, _, consts = op_node("MatMul", [None, b], const=(1,))
    node.input[0] = "a"
    feeds = [{"a": randn(rng, s)} for s in a_shapes]
    for f, (got,) in zip(feeds, run_graph_shapes([node], feeds, consts)):
        assert_close(got, np.matmul(f["a"].astype(np.float64), b), atol=sum_atol(k))


@settings(max_examples=25, deadline=None)
@given(case=gemm_cases(), ms=st.lists(st.integers(1, 6), min_size=2, max_size=2), seed=seeds)
def test_gemm_constant_weights_one_session_many_shapes(case, ms, seed):
    # B and a C that does not depend on M are initializers; M changes between runs
    c_shape = case["c_shape"] if case["c_shape"] in (None, (), (case["n"],), (1, case["n"]), (1, 1)) else None
    rng = np.random.default_rng(seed)
    k, n, trans_a, trans_b = case["k"], case["n"], case["trans_a"], case["trans_b"]
    b = randn(rng, (n, k) if trans_b else (k, n))
    c = None if c_shape is None else randn(rng, c_shape)
    node, _, consts = op_node("Gemm", [None, b, c], const=(1, 2), alpha=case["alpha"], beta=case["beta"],
                              transA=trans_a, transB=trans_b)
    node.input[0] = "a"
    feeds = [{"a": randn(rng, (k, m) if trans_a else (m, k))} for m in [case["m"], *ms, case["m"]]]
    for f, (got,) in zip(feeds, run_graph_shapes([node], feeds, consts)):
        a64 = f["a"].astype(np.float64)
        want = case["alpha"] * ((a64.T if trans_a else a64) @ (b.T if trans_b else b).astype(np.float64))
        if c is not None:
            want = want + case["beta"] * c.astype(np.float64)
        assert_close(got, want, atol=sum_atol(k))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(16, 70), n=st.integers(16, 50),
       batch=st.sampled_from([(), (3,), (2, 3)]), b_batch=st.sampled_from(["same", "shared", "ones", "a_broadcast"]),
       after=st.sampled_from(["none", "residual", "bias_relu"]), transposed=st.booleans(), seed=seeds)
def test_matmul_activation_b_packed_at_run_time(m, k, n, batch, b_batch, after, transposed, seed):
    # attention's Q.K^T and P.V: B computed in the graph, packed into GEMM panels per batch entry
    # (or once, shared) at run time; an Add after it may fold into the GEMM's epilogue per entry.
    # ``transposed``: B is a Transpose (K^T), packed from its strided view without a copy first
    from onnx import helper
    rng = np.random.default_rng(seed)
    a_shape = batch + (m, k)
    b_shape = {"same": batch + (k, n), "shared": (k, n), "ones": (1,) * len(batch) + (k, n),
               "a_broadcast": batch + (k, n)}[b_batch]
    if b_batch == "a_broadcast" and batch:
        a_shape = (1,) * len(batch) + (m, k)
    a, b = randn(rng, a_shape), randn(rng, b_shape)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    feeds, consts = {"a": a, "b": b}, {}
    if transposed:
        perm = list(range(b.ndim - 2)) + [b.ndim - 1, b.ndim - 2]
        feeds["b"] = np.ascontiguousarray(np.transpose(b, perm))
        nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=perm),
                 helper.make_node("MatMul", ["a", "bt"], ["y"])]
    if after == "residual":
        feeds["r"] = randn(rng, want.shape)   # computed before the GEMM, so it can fold into it
        nodes = [helper.make_node("Tanh", ["r"], ["t"])] + nodes + [helper.make_node("Add", ["y", "t"], ["z"])]
        want = want + np.tanh(feeds["r"].astype(np.float64))
    elif after == "bias_relu":
        consts["c"] = randn(rng, (n,))
        nodes += [helper.make_node("Add", ["y", "c"], ["s"]), helper.make_node("Relu", ["s"], ["z"])]
        want = np.maximum(want + consts["c"], 0)
    (got,) = run_graph_shapes(nodes, [feeds], consts)[0]
    assert_close(got, want, atol=sum_atol(k))


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 70), n=st.integers(1, 70), batch=st.sampled_from([(), (1,), (3,), (2, 3), (3, 1)]),
       b_batch=st.sampled_from(["same", "shared", "ones", "a_broadcast"]), a_vector=st.booleans(),
       transposed=st.booleans(), seed=seeds)
def test_matmul_one_row_times_activation_b(k, n, batch, b_batch, a_vector, transposed, seed):
    # decode's attention: one query row per head times K^T (read as K's rows, ggml_mul_mat) or
    # times V (ggml_out_prod over V's rows), neither packed nor transposed first
    from onnx import helper
    rng = np.random.default_rng(seed)
    a_shape = (k,) if a_vector else batch + (1, k)
    b_shape = {"same": batch + (k, n), "shared": (k, n), "ones": (1,) * len(batch) + (k, n),
               "a_broadcast": batch + (k, n)}[b_batch]
    if b_batch == "a_broadcast" and batch and not a_vector:
        a_shape = (1,) * len(batch) + (1, k)
    a, b = randn(rng, a_shape), randn(rng, b_shape)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    feeds = {"a": a, "b": b}
    if transposed:
        perm = list(range(b.ndim - 2)) + [b.ndim - 1, b.ndim - 2]
        feeds["b"] = np.ascontiguousarray(np.transpose(b, perm))
        nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=perm),
                 helper.make_node("MatMul", ["a", "bt"], ["y"])]
    (got,) = run_graph_shapes(nodes, [feeds], {})[0]
    assert got.shape == want.shape
    assert_close(got, want, atol=sum_atol(k))


@given(k=st.integers(1, 40), n=st.integers(1, 70), seed=seeds)
def test_packed_weight_layout(k, n, seed):
    # panel j holds outputs 16j..16j+15: element [j][kk][i] is B[kk, 16j + i], zero past N
    # (kernels.h); packed_weight takes the same weight as W = B^T [N, K]
    from ggonnx import _core
    from ggonnx.ops.matmul import packed_weight, packed_weight_from_kn
    b = randn(np.random.default_rng(seed), (k, n))
    panel = _core.GEMM_PANEL
    panels = -(-n // panel)
    want = np.zeros((panels, k, panel), np.float32)
    for j in range(panels):
        for i in range(panel):
            if j * panel + i < n:
                want[j, :, i] = b[:, j * panel + i]
    np.testing.assert_array_equal(packed_weight_from_kn(b), want.reshape(-1))
    np.testing.assert_array_equal(packed_weight(np.ascontiguousarray(b.T)), want.reshape(-1))
