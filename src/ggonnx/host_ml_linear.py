"""Host kernels for ONNX-ML's linear and support-vector models (LinearClassifier,
LinearRegressor, SVMClassifier, SVMRegressor), vectorized over samples; onnx.reference scores
an SVM one row and one support vector at a time (an RBF SVC at batch 1,000: about a second).

onnxruntime's CPU kernels are the spec (ONNX-ML leaves the binary layouts, the vote and the
probability coupling open): float32 GEMMs, per-pair SVC scores summed in double, libsvm's
pairwise coupling in float32. Where its post transform is skipped for a layout we skip it too,
and say so. GEMMs run in a different summation order than MLAS's, so scores agree to float32
rounding and a label can differ only where its score ties to within that rounding.
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.errors import InvalidGraph, ShapeError
from ggonnx.host_ml import _F32, _TRANSFORMS, _cached, _logistic, _probit, _rows, _transform

_F64 = np.float64


def _floats(node, name, required=False) -> np.ndarray:
    if required and name not in node.attrs:
        raise InvalidGraph(f"{node.describe()}: attribute '{name}' is required")
    return np.asarray(node.attrs.get(name, []), np.float64).astype(_F32).reshape(-1)


def _class_labels(node):
    """classlabels_strings (object array) or classlabels_ints (int64), and whether strings."""
    strings = node.attrs.get("classlabels_strings")
    if strings and node.attrs.get("classlabels_ints"):
        raise InvalidGraph(f"{node.describe()}: only one of classlabels_strings or classlabels_ints may be given")
    if strings:
        return np.array(list(strings), dtype=object), True
    return np.asarray(node.attrs.get("classlabels_ints", []), np.int64), False


def _features(node, x, n_features: int):
    x = _rows(node, x, _F32)  # onnxruntime casts double / int inputs to float32 first
    if x.shape[1] != n_features:
        raise ShapeError(f"{node.describe()}: input {list(x.shape)} has {x.shape[1]} features, the model "
                         f"{n_features}")
    return x


def _first_max(s):
    """The index of each row's largest score, the first one on ties, as onnxruntime's strict
    ``>`` scan takes it: a NaN never wins, and a NaN first score keeps class 0."""
    if not np.count_nonzero(np.isnan(s)):
        return s.argmax(axis=1)
    best = np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)
    return np.where(np.isnan(s[:, 0]), 0, best)


def _scores_transform(s, post):
    """onnxruntime's batched_update_scores_inplace without a second class: a single score
    per row takes PROBIT only (other transforms are skipped there)."""
    if s.shape[1] == 1:
        return _probit(s) if post == "PROBIT" else s
    return s if post == "NONE" else _TRANSFORMS[post](s)


# -- linear models ---------------------------------------------------------------------------

class _LinearModel:
    """scores = x @ coefficients[:rows * F].reshape(rows, F).T + intercepts, F being the input's
    feature count: onnxruntime 1.32 takes the leading rows * F coefficients and ignores the rest
    (refusing fewer), where the spec would have exactly rows * F."""

    def __init__(self, node, n_out: int, coef, intercepts, exact_features: bool = False, whole_rows: bool = True):
        if n_out < 1 or not len(coef) or (whole_rows and len(coef) % n_out):
            raise InvalidGraph(f"{node.describe()}: {len(coef)} coefficients do not split into {n_out} rows")
        self.n_out, self.coef, self.intercepts, self.by_width = n_out, coef, intercepts, {}
        self.exact = len(coef) // n_out if exact_features else None

    def scores(self, node, x):
        x = _rows(node, x, _F32)  # onnxruntime casts double / int inputs to float32 first
        f = x.shape[1]
        coef_t = self.by_width.get(f)
        if coef_t is None:
            if (self.exact is not None and f != self.exact) or self.n_out * f > len(self.coef):
                raise ShapeError(f"{node.describe()}: input {list(x.shape)} has {f} features; {len(self.coef)} "
                                 f"coefficients over {self.n_out} rows need {len(self.coef) // self.n_out}")
            coef_t = self.by_width[f] = np.ascontiguousarray(self.coef[:self.n_out * f].reshape(self.n_out, f).T)
        s = x @ coef_t
        if self.intercepts is not None:
            s += self.intercepts
        return s


def _linear_classifier_model(node):
    intercepts = _floats(node, "intercepts")
    model = _LinearModel(node, len(intercepts), _floats(node, "coefficients", True), intercepts)
    model.labels, model.strings = _class_labels(node)
    model.post = _transform(node)
    c = len(intercepts)
    # onnxruntime 1.32 refuses a binary model (one score) without exactly two labels, and fewer
    # labels than classes
    if len(model.labels) < c if c > 1 else len(model.labels) not in (0, 2):
        raise InvalidGraph(f"{node.describe()}: {len(model.labels)} class labels for "
                           f"{'a binary model (2 needed)' if c == 1 else f'{c} classes'}")
    return model


def linear_classifier(node, x):
    m = _cached(node, "linear_classifier", lambda: _linear_classifier_model(node))
    s = m.scores(node, x)
    if s.shape[1] > 1:
        return [m.labels[_first_max(s)], _scores_transform(s, m.post)]
    s = s[:, 0]
    if not len(m.labels):  # one score column, labels 1 / 0; only PROBIT transforms it (onnxruntime)
        return [(s > 0).astype(np.int64), _scores_transform(s[:, None], m.post)]
    label = m.labels[(s > 0).view(np.int8)]  # labels[1] on a positive score
    # two labels: [1 - p, p] with p = logistic(s) under LOGISTIC, else the raw score (onnxruntime
    # 1.32 skips SOFTMAX / SOFTMAX_ZERO here). Under PROBIT it writes the N probits packed into
    # the first half of the [N, 2] buffer and leaves the rest unwritten: zeros here.
    if m.post == "PROBIT":
        z = np.zeros((len(s), 2), _F32)
        z.reshape(-1)[:len(s)] = _probit(s)
        return [label, z]
    if m.post == "LOGISTIC":
        s = _logistic(s)
    return [label, np.stack([_F32(1) - s, s], axis=1)]


def _linear_regressor_model(node):
    targets = int(node.attrs.get("targets", 1))
    intercepts = _floats(node, "intercepts")
    # intercepts are used only when there is one per target (onnxruntime ignores other counts)
    model = _LinearModel(node, targets, _floats(node, "coefficients", True),
                         intercepts if len(intercepts) == targets else None, whole_rows=False)
    model.post = _transform(node)
    return model


def linear_regressor(node, x):
    m = _cached(node, "linear_regressor", lambda: _linear_regressor_model(node))
    return [_scores_transform(m.scores(node, x), m.post)]


# -- support vector machines -----------------------------------------------------------------

class _Kernel:
    """kernel_type and kernel_params (gamma, coef0, degree) against support vectors [V, F]."""

    def __init__(self, node, sv, kind=None):
        if "kernel_params" not in node.attrs:  # onnxruntime requires it (the spec has it optional)
            raise InvalidGraph(f"{node.describe()}: kernel_params is required")
        params = _floats(node, "kernel_params")
        if len(params) not in (0, 3):
            raise InvalidGraph(f"{node.describe()}: kernel_params must be empty or (gamma, coef0, degree)")
        self.gamma, self.coef0, self.degree = (params[:3] if len(params) else np.zeros(3, _F32))
        self.kind = kind or node.attrs.get("kernel_type", "LINEAR")
        if self.kind not in ("LINEAR", "POLY", "RBF", "SIGMOID"):
            self.kind = "SIGMOID"  # onnxruntime reads any other name as SIGMOID
        self.sv_t = np.ascontiguousarray(sv.T)
        if self.kind == "RBF":
            # |x - sv|^2 as |x - c|^2 + |sv - c|^2 - 2 (x - c).(sv - c), c the support vectors'
            # mean: one float32 GEMM, its cancellation relative to the data's spread around c
            # (as accurate as onnxruntime's direct float32 sum, measured: 1.1e-6 vs 1.5e-6
            # relative, also with features offset by 1,000; double took twice as long)
            sv64 = sv.astype(_F64)
            center = sv64.mean(axis=0)
            self.center = center.astype(_F32)
            svc = sv64 - self.center
            self.svc_t = np.ascontiguousarray(-2.0 * svc.T).astype(_F32)
            self.svc_sq = (svc * svc).sum(axis=1).astype(_F32)
            self.neg_gamma = -self.gamma

    def __call__(self, x):
        """[N, V] kernel values in float32, as onnxruntime's batched_kernel_dot."""
        if self.kind == "RBF":
            xc = x - self.center
            d = xc @ self.svc_t
            d += np.einsum("ij,ij->i", xc, xc)[:, None]
            d += self.svc_sq
            np.maximum(d, _F32(0), out=d)
            d *= self.neg_gamma
            return np.exp(d, out=d)
        k = x @ self.sv_t
        if self.kind == "LINEAR":
            return k
        k *= self.gamma
        k += self.coef0
        if self.kind == "SIGMOID":
            return np.tanh(k, out=k)
        if self.degree == 2:
            return k * k
        if self.degree == 3:
            return k * k * k
        return np.power(k, self.degree)


# Up to this many rows an SVC decides row by row in C (_core.SvcRows); above, as GEMMs. An RBF
# SVC of 360 vectors x 20 features, 3 classes, us a call, C / GEMMs: 1 row 3.9 / 15.8, 4 rows
# 10.0 / 18.7, 16 rows 33.4 / 27.9, 64 rows 125 / 61 (with probabilities 16 rows 34.6 / 45.6,
# 32 rows 67.6 / 59.7)
SVC_ROW_LOOP_MAX = 12


def _svm_classifier_model(node):
    m = type("SVMClassifierModel", (), {})()
    m.labels, m.strings = _class_labels(node)
    c = m.c = len(m.labels)
    if not c:
        raise InvalidGraph(f"{node.describe()}: needs classlabels_strings or classlabels_ints")
    coef = _floats(node, "coefficients", True)
    rho = _floats(node, "rho", True)
    m.proba, m.probb = _floats(node, "prob_a"), _floats(node, "prob_b")
    if len(m.proba) != len(m.probb):
        raise InvalidGraph(f"{node.describe()}: prob_a and prob_b must have one length")
    m.post = _transform(node)
    per_class = np.asarray(node.attrs.get("vectors_per_class", []), np.int64)
    v = int(per_class.sum())
    m.svc = v > 0
    m.all_positive = bool((coef >= 0).all())
    if not m.svc:  # liblinear mode: coefficients [C, F], one bias rho[0]
        if not len(rho) or len(coef) % c:
            raise InvalidGraph(f"{node.describe()}: {len(coef)} coefficients for {c} classes, rho {len(rho)}")
        m.linear = _LinearModel(node, c, coef, rho[:1], exact_features=True)
        return m
    sv = _floats(node, "support_vectors")
    pairs = c * (c - 1) // 2
    if len(per_class) != c or (per_class < 0).any() or len(sv) % v or len(coef) < (c - 1) * v \
            or len(rho) < pairs or (len(m.proba) and len(m.proba) < pairs):
        raise InvalidGraph(f"{node.describe()}: vectors_per_class {per_class.tolist()}, {len(sv)} support vector "
                           f"values, {len(coef)} coefficients, rho {len(rho)}, prob_a {len(m.proba)} do not fit "
                           f"{c} classes")
    m.n_features = len(sv) // v
    m.kernel = _Kernel(node, sv.reshape(v, m.n_features))
    # pair (i, j) sums coef[j-1] over class i's vectors and coef[i] over class j's, plus rho:
    # one column of a [V, pairs] matrix each; onnxruntime sums it in double
    start = np.concatenate([[0], np.cumsum(per_class)])
    coef = coef[:(c - 1) * v].reshape(c - 1, v).astype(_F64)
    w = np.zeros((v, pairs))
    m.pair_i, m.pair_j = np.triu_indices(c, 1)
    for p, (i, j) in enumerate(zip(m.pair_i.tolist(), m.pair_j.tolist())):
        w[start[i]:start[i + 1], p] = coef[j - 1, start[i]:start[i + 1]]
        w[start[j]:start[j + 1], p] = coef[i, start[j]:start[j + 1]]
    m.w, m.rho = w, rho[:pairs].astype(_F64)
    # votes = [score > 0] @ (Ei - Ej) + sum(Ej): class i wins a pair on a positive score, else j
    ei, ej = np.zeros((pairs, c), _F32), np.zeros((pairs, c), _F32)
    ei[np.arange(pairs), m.pair_i] = 1
    ej[np.arange(pairs), m.pair_j] = 1
    m.vote_w, m.vote_b = ei - ej, ej.sum(axis=0)
    kern = m.kernel
    m.rows = _core.SvcRows(sv.reshape(v, m.n_features), kern.kind, kern.gamma, kern.coef0, kern.degree, w, m.rho,
                           m.pair_i, m.pair_j, c, m.proba[:pairs] if len(m.proba) else None,
                           m.probb[:pairs] if len(m.proba) else None)
    return m


def _coupled_probabilities(m, scores):
    """libsvm's pairwise coupling as onnxruntime's multiclass_probability runs it, in float32
    (host_svm.c, a row at a time: in numpy, per-call costs made batch 1 take ~40 us)."""
    val = _F32(1) - _logistic(scores * m.proba + m.probb)
    val = np.minimum(np.maximum(val, _F32(1e-7)), _F32(1) - _F32(1e-7))
    return _core.svm_coupling(val, m.pair_i, m.pair_j, m.c)


def _svm_linear_mode(m, node, x):
    """liblinear-style SVMClassifier: one score per class, labels from the best score."""
    s = m.linear.scores(node, x)
    best = _first_max(s)
    if m.c == 2 and not len(m.proba):  # onnxruntime's ChooseClass on the best score's value
        top = s[np.arange(len(s)), best]
        one = (top >= 0.5) if m.all_positive else (top > 0)
        best = np.where(one, 1, best)
    return [m.labels[best], _scores_transform(s, m.post)]


def svm_classifier(node, x):
    m = _cached(node, "svm_classifier", lambda: _svm_classifier_model(node))
    if not m.svc:
        return _svm_linear_mode(m, node, x)
    x = _features(node, x, m.n_features)
    if m.c < 2:  # one class, no pairs: onnxruntime 1.32 answers it with [N, 2] zeros
        return [m.labels[np.zeros(len(x), np.intp)], np.zeros((len(x), 2), _F32)]
    if len(x) <= SVC_ROW_LOOP_MAX:
        best, s, proba = m.rows.run(x)
        label = m.labels[best]
    else:
        s = m.kernel(x).astype(_F64) @ m.w
        s += m.rho
        votes = (s > 0).astype(_F32) @ m.vote_w + m.vote_b
        label = m.labels[np.argmax(votes, axis=1)]
        s = s.astype(_F32)
        proba = _coupled_probabilities(m, s) if len(m.proba) else None
    if proba is not None:
        return [label, _scores_transform(proba, m.post)]
    if m.c > 2:
        return [label, _scores_transform(s, m.post)]
    # two classes, no probabilities (onnxruntime 1.32's add_second_class path): [-s, s] under
    # NONE, [1 - p, p] with p = logistic(s) under LOGISTIC, [1 - s, s] on the raw score under
    # SOFTMAX / SOFTMAX_ZERO, [probit(s), 0] under PROBIT
    s = s[:, 0]
    if m.post == "NONE":
        return [label, np.stack([-s, s], axis=1)]
    if m.post == "PROBIT":
        return [label, np.stack([_probit(s), np.zeros_like(s)], axis=1)]
    if m.post == "LOGISTIC":
        s = _logistic(s)
    return [label, np.stack([_F32(1) - s, s], axis=1)]


def _svm_regressor_model(node):
    m = type("SVMRegressorModel", (), {})()
    coef = _floats(node, "coefficients", True)
    rho = _floats(node, "rho", True)
    if not len(coef) or not len(rho):
        raise InvalidGraph(f"{node.describe()}: coefficients and rho must not be empty")
    v = int(node.attrs.get("n_supports", 0))
    m.one_class = bool(node.attrs.get("one_class", 0))
    m.rho = _F64(rho[0])
    if v > 0:
        sv = _floats(node, "support_vectors")
        if len(sv) % v or len(coef) < v:
            raise InvalidGraph(f"{node.describe()}: {len(sv)} support vector values and {len(coef)} coefficients "
                               f"for n_supports {v}")
        m.n_features = len(sv) // v
        m.kernel = _Kernel(node, sv.reshape(v, m.n_features))
        m.coef = coef[:v].astype(_F64)
    else:  # linear: coefficients weigh the features (kernel_type ignored), float32 as onnxruntime
        m.n_features, m.kernel, m.coef = len(coef), None, coef
    return m


def svm_regressor(node, x):
    """[N, 1] = kernel(x, support vectors) @ coefficients + rho[0]; onnxruntime ignores
    post_transform here (the spec lists it), so do we; one_class writes the sign as +-1."""
    m = _cached(node, "svm_regressor", lambda: _svm_regressor_model(node))
    x = _features(node, x, m.n_features)
    if m.kernel is None:
        y = x @ m.coef + _F32(m.rho)
    else:
        y = (m.kernel(x).astype(_F64) @ m.coef + m.rho).astype(_F32)
    if m.one_class:
        y = np.where(y > 0, _F32(1), _F32(-1))
    return [y.reshape(-1, 1)]


KERNELS = {("ai.onnx.ml", "LinearClassifier"): linear_classifier,
           ("ai.onnx.ml", "LinearRegressor"): linear_regressor,
           ("ai.onnx.ml", "SVMClassifier"): svm_classifier,
           ("ai.onnx.ml", "SVMRegressor"): svm_regressor}
