"""ONNX-ML ops in ggml where they fit, so a scikit-learn pipeline is one ggml graph (at batch 1 a
graph costs a few microseconds; each host step as much again): Scaler, LinearClassifier (several
classes, integer labels), LinearRegressor, Normalizer (L1, L2), OneHotEncoder of integers, and
ArrayFeatureExtractor picking columns, or class labels by an in-island ArgMax. The numbers follow
the host kernels (ggonnx.host_ml*), which follow onnxruntime; other forms, types and transforms
run there."""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx._core import Unary
from ggonnx.emitter import Op, onnx_to_ne
from ggonnx.ops.registry import register

# post transforms ggml computes as the host kernels do (SOFTMAX_ZERO and PROBIT stay there)
_POSTS = ("NONE", "SOFTMAX", "LOGISTIC")
# Above this many rows the host kernels win: ggml's elementwise ops walk rows of a few features
# one by one, while at a few rows one graph saves the host steps' fixed costs. Scaler + logistic
# regression (20 features, 3 classes), us a run, ggml / host: 8 rows 7.4 / 23.5, 64 rows
# 17.8 / 29.0, 128 rows 30.1 / 31.6, 256 rows 52.2 / 38.3, 512 rows 100.5 / 52.5
MAX_ROWS = 128


def _float_rows(ctx, x):
    """A float32 input of rank 1 (one row) or 2 as a ggml tensor [C, N]."""
    if x.dtype != np.float32 or x.rank not in (1, 2):
        ctx.unsupported(f"a {x.dtype} input of rank {x.rank}")
    c, n = (x.shape[-1], 1 if x.rank == 1 else x.shape[0])
    if n > MAX_ROWS:
        ctx.unsupported(f"{n} rows: the host kernels are faster above {MAX_ROWS}")
    return ctx.e.reshape(ctx.tensor(x), (c, n)), n, c


def _attr_vector(ctx, name) -> np.ndarray:
    return np.asarray(ctx.attr(name, []), np.float64).astype(np.float32).reshape(-1)


def _looked_up(ctx, table: np.ndarray, ids, bound: int, shape):
    """table[ids] as a value of ``shape`` in the table's dtype, ``ids`` a ggml tensor of integers
    held as floats in [0, bound), bound <= len(table): the indices themselves where the table starts
    0..bound-1 (class labels), else a LOOKUP. Its own bound where the entries are non-negative."""
    if np.array_equal(table[:bound], np.arange(bound)):
        out = ctx.output(ids, shape)
        out.bound = bound
    else:
        out = ctx.output(ctx.e.lookup(ctx.e.const(table.astype(np.float32)), ids), shape)
        if table.dtype.kind in "iu" and table.min() >= 0:
            out.bound = int(table.max()) + 1
    out.dtype = table.dtype
    return out


def _labels_from(ctx, scores, labels: np.ndarray, n: int):
    """int64 labels [n] of ggml scores [K, n]: labels[first max], the scan onnxruntime's linear
    classifier runs (a NaN never wins)."""
    e = ctx.e
    k = scores.ne[0]
    best = e.reshape(e.arg_extreme(scores, is_min=False, last=False, nan_wins=False), (n,))
    return _looked_up(ctx, labels[:k], best, k, (n,))


def _transformed(ctx, scores, post: str):
    if post == "SOFTMAX":
        return ctx.e.soft_max(scores)
    if post == "LOGISTIC":
        return _logistic(ctx.e, scores)
    return scores


def _logistic(e, x):
    """onnxruntime's logistic, bit for bit: v = 1 / (1 + expf(-|x|)), then 1 - v where x < 0 (tiny
    probabilities come out 0 as there, which a Normalizer after it turns into exact 0 / 1 rows;
    the direct 1 / (1 + expf(-x)) gives 1e-8 there, and ACT_SIGMOID's approximation 2e-4 errors)."""
    v = e.unary_kind(Unary.SIGMOID, e.unary_kind(Unary.ABS, x))
    neg = e.unary_kind(Unary.STEP, e.unary_kind(Unary.NEG, x))      # 1 where x < 0
    # v * (1 - neg) + (1 - v) * neg: each term exactly v or 1 - v, the other 0
    return e.binary(Op.ADD, e.binary(Op.MUL, v, e.scale_bias(neg, -1.0, 1.0)),
                    e.binary(Op.MUL, e.scale_bias(v, -1.0, 1.0), neg))


def _affine_scores(ctx, node, x, n_out: int, intercepts):
    """x @ coefficients[:n_out * F].reshape(n_out, F).T (+ intercepts) as ggml [n_out, N]: the
    leading coefficients, as onnxruntime reads them."""
    xt, n, f = _float_rows(ctx, x)
    coef = _attr_vector(ctx, "coefficients")
    if n_out < 1 or len(coef) < n_out * f:
        ctx.unsupported(f"{len(coef)} coefficients for {n_out} outputs of {f} features")
    w = ctx.derived_weight(f"{node.describe()}\0coefficients", f"rows{f}",
                           lambda: np.ascontiguousarray(coef[:n_out * f].reshape(n_out, f)), (n_out, f), static=True)
    s = ctx.e.mul_mat(w, xt)
    if intercepts is not None:
        s = ctx.e.binary(Op.ADD, s, ctx.e.const(intercepts))
    return s, n


@register("Scaler", domain="ai.onnx.ml")
def lower_scaler(ctx, node, inputs):
    """(x - offset) * scale in float32, per feature or by one value."""
    x = inputs[0]
    xt, n, c = _float_rows(ctx, x)
    scale, offset = _attr_vector(ctx, "scale"), _attr_vector(ctx, "offset")
    if not len(scale) or len(scale) != len(offset) or len(scale) not in (1, c):
        ctx.unsupported(f"scale ({len(scale)}) / offset ({len(offset)}) for {c} features")
    e = ctx.e
    y = e.binary(Op.MUL, e.binary(Op.SUB, xt, e.const(offset)), e.const(scale))
    return [ctx.output(e.reshape(y, onnx_to_ne(x.shape)), x.shape)]


@register("LinearClassifier", domain="ai.onnx.ml")
def lower_linear_classifier(ctx, node, inputs):
    """Several classes (one score column each) with integer labels: labels [N] and scores [N, K]."""
    intercepts = _attr_vector(ctx, "intercepts")
    labels = np.asarray(ctx.attr("classlabels_ints", []), np.int64)
    post = ctx.attr("post_transform", "NONE")
    k = len(intercepts)
    if k < 2 or len(labels) < k or ctx.attr("classlabels_strings") or post not in _POSTS or \
            np.abs(labels[:k]).max() >= 2**24:
        ctx.unsupported(f"{k} classes, {len(labels)} integer labels, post_transform {post}")
    s, n = _affine_scores(ctx, node, inputs[0], k, intercepts)
    label = _labels_from(ctx, s, labels, n)
    return [label, ctx.output(_transformed(ctx, s, post), (n, k), 1)]


@register("LinearRegressor", domain="ai.onnx.ml")
def lower_linear_regressor(ctx, node, inputs):
    """[N, targets]; intercepts count only when there is one per target (as onnxruntime)."""
    targets = int(ctx.attr("targets", 1))
    if ctx.attr("post_transform", "NONE") != "NONE":
        ctx.unsupported(f"post_transform {ctx.attr('post_transform')}")
    intercepts = _attr_vector(ctx, "intercepts")
    s, n = _affine_scores(ctx, node, inputs[0], targets, intercepts if len(intercepts) == targets else None)
    return [ctx.output(s, (n, targets))]


@register("Normalizer", domain="ai.onnx.ml")
def lower_normalizer(ctx, node, inputs):
    """Rows over their L1 or L2 norm; a zero norm leaves the row as it is (divided by 1)."""
    norm = ctx.attr("norm", "MAX")
    if norm not in ("L1", "L2"):
        ctx.unsupported(f"norm {norm}")
    x = inputs[0]
    xt, n, c = _float_rows(ctx, x)
    e = ctx.e
    num = e.unary_kind(Unary.ABS, xt) if norm == "L1" else e.unary_kind(Unary.SQR, xt)
    d = e.sum_rows(num)
    # d + (1 - sgn(d)): d where it is positive, 1 where it is 0, exactly (NaN stays NaN)
    d = e.binary(Op.ADD, d, e.scale_bias(e.unary_kind(Unary.SGN, d), -1.0, 1.0))
    if norm == "L1":
        y = e.binary(Op.DIV, xt, d)
    else:  # sqrt(x^2 / sum x^2) with x's sign, as onnxruntime
        y = e.binary(Op.MUL, e.unary_kind(Unary.SQRT, e.binary(Op.DIV, num, d)), e.unary_kind(Unary.SGN, xt))
    return [ctx.output(e.reshape(y, onnx_to_ne(x.shape)), x.shape)]


def _columns(ctx, data, ids: np.ndarray):
    """data[..., ids] of run-time data (rank 1 to 4) at constant in-range indices ([1, k] for
    1-D data, as onnxruntime shapes it)."""
    width = data.shape[-1]
    rows = int(np.prod(data.shape[:-1]))
    shape = (1, len(ids)) if data.rank == 1 else data.shape[:-1] + (len(ids),)
    e = ctx.e
    y = e.take(e.reshape(ctx.tensor(data), (width, rows)), ids, 0)
    out = ctx.output(e.reshape(y, onnx_to_ne(shape)), shape)
    out.dtype, out.bound = data.dtype, data.bound  # values moved, not changed
    return out


@register("ArrayFeatureExtractor", domain="ai.onnx.ml", any_rank=True)
def lower_array_feature_extractor(ctx, node, inputs):
    """Columns of run-time data at constant indices (skl2onnx picks an SVC's pair scores so);
    or a constant 1-D table at integer indices held in this island with a proven bound (an
    ArgMax's): [1, n] as onnxruntime shapes a 1-D table's result. Other forms run on the host."""
    table, ids = inputs
    if table.const is None and ids.const is not None and ids.dtype.kind in "iu" and 0 < ids.const.size \
            and 1 <= table.rank <= 4 and (table.dtype == np.float32 or table.bound is not None):
        cols = np.asarray(ids.const).reshape(-1).astype(np.int64)
        if cols.min() < 0 or cols.max() >= table.shape[-1]:
            ctx.unsupported(f"indices {cols.tolist()} outside the {table.shape[-1]} columns")
        return [_columns(ctx, table, cols)]
    if table.const is None or table.rank != 1 or ids.bound is None or not ctx.in_island(ids):
        ctx.unsupported("only a constant 1-D table at bounded in-island indices")
    values = np.asarray(table.const)
    if values.dtype.kind not in "iuf" or ids.bound > len(values) or \
            not np.array_equal(values.astype(np.float32).astype(values.dtype), values):
        ctx.unsupported(f"a {values.dtype} table of {len(values)} the indices' bound {ids.bound} or float32 cannot hold")
    shape = (1, int(np.prod(ids.shape)))
    return [_looked_up(ctx, values, ctx.e.reshape(ctx.tensor(ids), onnx_to_ne(shape)), ids.bound, shape)]


@register("OneHotEncoder", domain="ai.onnx.ml", any_rank=True)
def lower_one_hot_encoder(ctx, node, inputs):
    """Integers against distinct integer categories float32 holds exactly: [..., K], 1 where a
    value equals a category (exact for such integers). Strings, numbers, repeated categories and
    zeros=0 (an unknown value is an error) run on the host."""
    x = inputs[0]
    cats = np.asarray(ctx.attr("cats_int64s", []), np.int64)
    if not len(cats) or ctx.attr("cats_strings") or x.dtype.kind not in "iu" or x.rank > 2 or \
            int(ctx.attr("zeros", 1)) != 1 or len(np.unique(cats)) != len(cats) or \
            np.abs(cats).max() > _core.EXACT_INT_F32:
        ctx.unsupported(f"{len(cats)} integer categories for a {x.dtype} input of rank {x.rank}")
    e = ctx.e
    shape = x.shape + (len(cats),)
    y = e.one_hot(e.reshape(ctx.exact_int_tensor(x), (int(np.prod(x.shape)),)), e.const(cats.astype(np.float32)))
    return [ctx.output(e.reshape(y, onnx_to_ne(shape)), shape)]
