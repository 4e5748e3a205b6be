"""Host kernels of ours for the ONNX-ML operators (domain ``ai.onnx.ml``) that scikit-learn's
converters (skl2onnx) emit, vectorized over samples; onnx.reference walks trees and rows in
Python loops (a 100-tree random forest: 36 ms a row).

The numbers follow onnxruntime's CPU kernels, which are the de facto spec where ONNX-ML is
vague: its binary-class score layouts, its base_values rules, its float32 post transforms
(PROBIT with its approximate inverse erf). Tree scores are summed in float64 (onnxruntime sums
in float32, in an order that depends on its thread count), so scores agree to float32 rounding;
a label can differ only where two classes tie to within that rounding.

Depends on nothing in ggonnx above numpy and errors, like host_kernels.
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.errors import InvalidGraph, InvalidInputError, ShapeError

_F32 = np.float32

# -- post transforms (onnxruntime ml_common.h, float32) --------------------------------------


def _logistic(x):
    x = x.astype(_F32, copy=False)
    v = _F32(1) / (_F32(1) + np.exp(-np.abs(x)))
    return np.where(x < 0, _F32(1) - v, v).astype(_F32)


def _erfinv(x):
    sgn = np.where(x < 0, _F32(-1), _F32(1))
    x = (_F32(1) - x) * (_F32(1) + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(x)
        v = _F32(2) / (_F32(np.pi) * _F32(0.147)) + _F32(0.5) * log
        v2 = _F32(1) / _F32(0.147) * log
        v3 = -v + np.sqrt(v * v - v2)
        return (sgn * np.sqrt(v3)).astype(_F32)


def _probit(x):
    return (_F32(np.sqrt(2)) * _erfinv(_F32(2) * x.astype(_F32, copy=False) - _F32(1))).astype(_F32)


def _row_reduce(op, x):
    """A binary ufunc (np.maximum, np.fmax, np.add) along each row of 2-D x, keepdims. Many short
    rows go column by column (numpy's reduce over a 3-wide axis costs ~30 us at 1,000 rows,
    columns ~3 us), which is also onnxruntime's left-to-right order for sums."""
    if x.ndim != 2 or x.shape[1] > 16 or not x.shape[1] or x.shape[0] < 32:
        return op.reduce(x, axis=-1, keepdims=True)
    acc = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        op(acc, x[:, j], out=acc)
    return acc[:, None]


def _softmax(x):
    # onnxruntime starts its max at -FLT_MAX and skips NaNs; that changes no result (a row of
    # -inf gives 0 / 0 either way, a NaN makes the whole row NaN either way)
    x = x.astype(_F32, copy=False)
    e = x - _row_reduce(np.maximum, x)
    np.exp(e, out=e)
    e /= _row_reduce(np.add, e)
    return e


def _softmax_zero(x):
    x = x.astype(_F32, copy=False)
    vmax = np.maximum(_row_reduce(np.maximum, x), _F32(-np.finfo(_F32).max))
    big = (x > _F32(1e-7)) | (x < _F32(-1e-7))
    with np.errstate(over="ignore", invalid="ignore"):  # exp(-vmax) overflows as onnxruntime's does
        e = np.where(big, np.exp(x - vmax), x * np.exp(-vmax))
        return (e / _row_reduce(np.add, np.where(big, e, _F32(0)))).astype(_F32)


_TRANSFORMS = {"NONE": lambda x: x.astype(_F32), "LOGISTIC": _logistic, "SOFTMAX": _softmax,
               "SOFTMAX_ZERO": _softmax_zero, "PROBIT": _probit}


def _transform(node, name=None):
    name = name if name is not None else node.attrs.get("post_transform", "NONE")
    if name not in _TRANSFORMS:
        raise InvalidGraph(f"{node.describe()}: unknown post_transform '{name}'")
    return name


def _cached(node, key, build):
    """A value built once per node from its attributes (kept on the node, rebuilt when a
    rewrite replaces its attribute dict)."""
    cache = node.__dict__.setdefault("_host_ml_cache", {})
    hit = cache.get(key)
    if hit is None or hit[0] is not node.attrs:
        hit = cache[key] = (node.attrs, build())
    return hit[1]


def _rows(node, x, dtype=None):
    """The input as a 2-D [N, C] array (a 1-D input is one row)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    elif x.ndim != 2:
        raise ShapeError(f"{node.describe()}: input must be 1-D or 2-D, got shape {list(x.shape)}")
    return x if dtype is None else x.astype(dtype, copy=False)


# -- tree ensembles ----------------------------------------------------------------------------

_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5,
          "LEAF": 6}
_TRUE_OPS = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)


def _attr_floats(node, name, dtype):
    """A float list attribute or its ``*_as_tensor`` twin (opset 3), as ``dtype``."""
    tensor = node.attrs.get(name + "_as_tensor")
    if tensor is not None:
        return np.asarray(tensor).reshape(-1).astype(dtype)
    return np.asarray(node.attrs.get(name, []), dtype=np.float64).astype(dtype)


class _Forest:
    """The trees of one TreeEnsemble* node, laid out for walking all samples at once.

    Nodes are renumbered tree by tree so that each branch's true child sits at ``left`` and its
    false child at ``left + 1``; a leaf points at itself and has a NaN threshold, so a step
    ``left[i] + complement(x[feat[i]], thr[i])`` leaves it in place.
    """

    def __init__(self, node, dtype, n_targets: int, prefix: str):
        a = node.attrs
        tree_ids = np.asarray(a.get("nodes_treeids", []), np.int64)
        node_ids = np.asarray(a.get("nodes_nodeids", []), np.int64)
        feats = np.asarray(a.get("nodes_featureids", []), np.int64)
        trues = np.asarray(a.get("nodes_truenodeids", []), np.int64)
        falses = np.asarray(a.get("nodes_falsenodeids", []), np.int64)
        modes = a.get("nodes_modes", [])
        values = _attr_floats(node, "nodes_values", dtype)
        n = len(tree_ids)
        mtt = np.asarray(a.get("nodes_missing_value_tracks_true", []), np.int64)
        mtt = np.concatenate([mtt[:n] == 1, np.zeros(max(0, n - len(mtt)), bool)])
        if not n or any(len(v) != n for v in (node_ids, feats, trues, falses, modes, values)):
            raise InvalidGraph(f"{node.describe()}: the nodes_* attributes must be non-empty and of one length")
        try:
            mode_codes = np.array([_MODES[m] for m in modes], np.int8)
        except KeyError as exc:
            raise InvalidGraph(f"{node.describe()}: unknown node mode {exc}") from None
        where = {}
        for i, key in enumerate(zip(tree_ids.tolist(), node_ids.tolist())):
            if key in where:
                raise InvalidGraph(f"{node.describe()}: node {key[1]} of tree {key[0]} is defined twice")
            where[key] = i
        # leaf weights: original node index -> [(target, weight)]
        t_ids = np.asarray(a.get(prefix + "_ids", []), np.int64)
        t_nodes = np.asarray(a.get(prefix + "_nodeids", []), np.int64)
        t_trees = np.asarray(a.get(prefix + "_treeids", []), np.int64)
        t_w = _attr_floats(node, prefix + "_weights", np.float64)
        if not len(t_ids) == len(t_nodes) == len(t_trees) == len(t_w):
            raise InvalidGraph(f"{node.describe()}: the {prefix}_* attributes must be of one length")
        if len(t_ids) and (t_ids.min() < 0 or t_ids.max() >= n_targets):
            raise InvalidGraph(f"{node.describe()}: {prefix}_ids must lie in [0, {n_targets})")
        self.class_ids = t_ids
        self.all_positive = bool((t_w >= 0).all())
        leaf_w: dict = {}
        for tr, nd, k, w in zip(t_trees.tolist(), t_nodes.tolist(), t_ids.tolist(), t_w.tolist()):
            i = where.get((tr, nd))
            if i is None:
                raise InvalidGraph(f"{node.describe()}: weight for unknown node {nd} of tree {tr}")
            if mode_codes[i] == 6:  # weights on a branch are ignored, as onnxruntime does
                leaf_w.setdefault(i, []).append((k, w))
        # roots: the first node listed for each tree, trees in order of first appearance
        _, first = np.unique(tree_ids, return_index=True)
        roots = np.sort(first)
        order, new_left, self.depth = [], [], 0
        limit = 4 * n + 16
        mode_l, trues_l, falses_l = mode_codes.tolist(), trues.tolist(), falses.tolist()
        tree_l = tree_ids.tolist()
        self.roots = []
        for r in roots.tolist():
            self.roots.append(len(order))
            level, depth = [r], 0
            while level:
                nxt = []
                for i in level:
                    order.append(i)
                    if mode_l[i] == 6:
                        new_left.append(-1)
                        continue
                    t, f = where.get((tree_l[i], trues_l[i])), where.get((tree_l[i], falses_l[i]))
                    if t is None or f is None:
                        raise InvalidGraph(f"{node.describe()}: node {node_ids[i]} of tree {tree_l[i]} points to a "
                                           f"missing node")
                    new_left.append(-2 - len(nxt))  # patched below to the child's new index
                    nxt.extend((t, f))
                if nxt:
                    depth += 1
                if len(order) + len(nxt) > limit:
                    raise InvalidGraph(f"{node.describe()}: tree {tree_l[r]} has a cycle or shared subtrees")
                base = len(order)
                # children of this level start at ``base``, in the order appended
                for k in range(len(order) - len(level), len(order)):
                    if new_left[k] <= -2:
                        new_left[k] = base + (-2 - new_left[k])
                level = nxt
            self.depth = max(self.depth, depth)
        order = np.asarray(order, np.intp)
        self.n_trees = len(self.roots)
        self.roots = np.asarray(self.roots, np.intp)
        left = np.asarray(new_left, np.intp)
        self.is_leaf = left == -1
        self.left = np.where(self.is_leaf, np.arange(len(order)), left).astype(np.intp)
        self.feat = np.where(self.is_leaf, 0, feats[order]).astype(np.intp)
        self.max_feature = int(self.feat.max()) if len(self.feat) else 0
        self.walk = None   # the C walk (_core.TreeWalk), made at the first NaN-free batch
        thr = values[order].astype(dtype)
        thr[self.is_leaf] = np.nan
        self.thr = thr
        self.mtt = mtt[order] & ~self.is_leaf
        self.has_mtt = bool(self.mtt.any())
        self.mode = mode_codes[order]
        branch_modes = set(self.mode[~self.is_leaf].tolist())
        self.same_mode = branch_modes.pop() if len(branch_modes) == 1 else (0 if not branch_modes else None)
        # dense leaf weights [nodes, targets] and which targets a leaf has a weight for
        self.w = np.zeros((len(order), n_targets), np.float64)
        self.has = np.zeros((len(order), n_targets), bool)
        self.n_weights = np.zeros(len(order), np.int64)
        new_of = np.empty(n, np.intp)
        new_of[order] = np.arange(len(order))  # for shared nodes the last copy; weights go on every copy
        copies: dict = {}
        for j, i in enumerate(order.tolist()):
            if mode_l[i] == 6:
                copies.setdefault(i, []).append(j)
        for i, js in copies.items():
            ws = leaf_w.get(i)
            if not ws:
                raise InvalidGraph(f"{node.describe()}: leaf {node_ids[i]} of tree {tree_l[i]} has no weight")
            for j in js:
                for k, w in ws:
                    self.w[j, k] += w
                    self.has[j, k] = True
        self.all_have = bool(self.has[self.is_leaf].all())
        # which targets had a weight, where that is the same for every sample (else None)
        self.fixed_has = np.ones(n_targets, bool) if self.all_have else None
        # trees whose leaves all weigh one and the same target (gradient boosting, one tree per
        # class and round): one add per tree in the C sum, [N, trees] @ [trees, targets] in numpy
        tree_of = np.repeat(np.arange(self.n_trees), np.diff(np.append(self.roots, len(order))))
        counts = self.has.sum(axis=1)
        leaf_target = np.where(self.is_leaf, self.has.argmax(axis=1), -1)
        self.tree_target = None
        if (counts[self.is_leaf] == 1).all():
            first = np.full(self.n_trees, -1)
            first[tree_of[self.is_leaf][::-1]] = leaf_target[self.is_leaf][::-1]
            if (first[tree_of[self.is_leaf]] == leaf_target[self.is_leaf]).all():
                self.tree_target = first
                self.w1 = self.w.sum(axis=1)
                self.onehot = np.zeros((self.n_trees, n_targets))
                self.onehot[np.arange(self.n_trees), first] = 1.0
                self.has_row = self.onehot.any(axis=0)
                self.fixed_has = self.has_row

    def _c_walk(self, node, x):
        """The C walk (host_trees.c) where it can take samples x [N, C], else None (mixed tests
        or nothing to walk). It answers None itself where x holds a NaN."""
        n, c = x.shape
        if self.max_feature >= c:
            raise InvalidInputError(f"{node.describe()}: a tree reads feature {self.max_feature} but the input has "
                                    f"{c} features")
        if not (self.depth and n and self.same_mode is not None and self.same_mode < 4):
            return None
        if self.walk is None:
            walk = _core.TreeWalk(self.roots, self.left, self.feat, self.thr, self.is_leaf, self.same_mode,
                                  self.depth + 1)
            if self.tree_target is not None:  # one add per tree rather than one per target
                walk.set_weights(self.w1, self.tree_target, self.w.shape[1])
            else:
                walk.set_weights(self.w)
            self.walk = walk
        return self.walk

    def summed(self, node, x, threads: int = 1):
        """SUM scores [N, K] (float64) of samples x, and which targets had a weight: [K] where
        that is the same for every sample, else [N, K]. Walked and summed in one C call where
        the walk allows (a 100-tree forest at batch 1: 3 us where leaves + aggregate took 8)."""
        walk = self._c_walk(node, x) if self.fixed_has is not None else None
        s = walk.sums(x, threads) if walk is not None else None
        if s is not None:
            return s, self.fixed_has
        return self.aggregate(node, self.leaves(node, x, threads), "SUM")

    def leaves(self, node, x, threads: int = 1):
        """[N, n_trees] indices of the leaf each sample reaches in each tree."""
        walk = self._c_walk(node, x)
        out = walk.leaves(x, threads) if walk is not None else None
        if out is not None:  # one tight walk per sample and tree in C
            return out
        n, c = x.shape
        xf = np.ascontiguousarray(x).reshape(-1)
        out = np.broadcast_to(self.roots, (n, self.n_trees)).reshape(-1).copy()
        if not self.depth or not n:
            return out.reshape(n, self.n_trees)
        # mixed tests or NaN inputs: all walks a level at a time, NaN and missing-value tracks per mode
        cur, pos = out, None
        off = np.repeat(np.arange(n, dtype=np.intp) * c, self.n_trees)
        left, feat, thr, is_leaf = self.left, self.feat, self.thr, self.is_leaf
        for level in range(self.depth):
            v = xf.take(off + feat.take(cur))
            t = thr.take(cur)
            step = ~self._true(v, t, cur)
            step &= ~is_leaf.take(cur)
            cur = left.take(cur) + step
            if level + 1 < self.depth and level % 2 == 1:
                done = is_leaf.take(cur)
                nd = np.count_nonzero(done)
                if nd * 4 >= len(cur):  # compact once a quarter of the walks have ended
                    if pos is None:
                        pos = np.arange(len(cur), dtype=np.intp)
                    out[pos[done]] = cur[done]
                    keep = ~done
                    cur, pos, off = cur[keep], pos[keep], off[keep]
                    if not len(cur):
                        break
        if pos is None:
            out = cur
        else:
            out[pos] = cur
        return out.reshape(n, self.n_trees)

    def _true(self, v, t, cur):
        if self.same_mode is not None:
            res = _TRUE_OPS[self.same_mode](v, t)
        else:
            mode = self.mode.take(cur)
            res = np.zeros(len(cur), bool)
            for m in set(mode.tolist()) - {6}:
                sel = mode == m
                res[sel] = _TRUE_OPS[m](v[sel], t[sel])
        if self.has_mtt:
            res |= self.mtt.take(cur) & np.isnan(v)
        return res

    def aggregate(self, node, leaves, how: str):
        """Per-sample scores [N, K] (float64) and which targets had a weight, per
        aggregate_function."""
        if how in ("SUM", "AVERAGE") and self.tree_target is not None:
            s = self.w1.take(leaves) @ self.onehot
            if how == "AVERAGE":
                s /= self.n_trees
            return s, np.broadcast_to(self.has_row, s.shape).copy()
        if how in ("SUM", "AVERAGE"):
            s = _core.tree_sum(self.w, leaves)  # in tree order, as the numpy sum over axis 1
            if how == "AVERAGE":
                s /= self.n_trees
        elif how in ("MIN", "MAX"):
            fill = np.inf if how == "MIN" else -np.inf
            w = np.where(self.has, self.w, fill).take(leaves, axis=0)
            s = w.min(axis=1) if how == "MIN" else w.max(axis=1)
        else:
            raise InvalidGraph(f"{node.describe()}: unknown aggregate_function '{how}'")
        has = np.ones(s.shape, bool) if self.all_have else self.has.take(leaves, axis=0).any(axis=1)
        if how in ("MIN", "MAX"):
            s = np.where(has, s, 0.0)
        return s, has


def _dtype_for(x):
    return np.float64 if np.asarray(x).dtype == np.float64 else np.float32


def tree_ensemble_regressor(node, x, threads: int = 1):
    dtype = _dtype_for(x)
    n_targets = int(node.attrs.get("n_targets", 1))
    if n_targets < 1:
        raise InvalidGraph(f"{node.describe()}: n_targets must be positive")
    forest = _cached(node, ("reg", dtype), lambda: _Forest(node, dtype, n_targets, "target"))
    x = _rows(node, x, dtype)
    how = node.attrs.get("aggregate_function", "SUM")
    if how in ("SUM", "AVERAGE"):
        s, has = forest.summed(node, x, threads)
        if how == "AVERAGE":
            s /= forest.n_trees
    else:
        s, has = forest.aggregate(node, forest.leaves(node, x, threads), how)
    base = _cached(node, "base_values", lambda: _attr_floats(node, "base_values", np.float64))
    if len(base) not in (0, n_targets):  # as onnxruntime refuses it
        raise InvalidGraph(f"{node.describe()}: base_values must have 0 or n_targets ({n_targets}) values")
    post = _transform(node)
    if n_targets == 1:
        s = s + (base[0] if len(base) == 1 else 0.0)
        return [_probit(s.astype(dtype)) if post == "PROBIT" else s.astype(_F32)]
    if len(base) == n_targets:
        s = s + base
    s = np.where(has, s, 0.0)  # a target no leaf weighs is 0, base value or not (onnxruntime 1.32)
    return [_TRANSFORMS[post](s.astype(dtype))]


def _labels(node):
    strings = node.attrs.get("classlabels_strings")
    if strings:
        return np.array(list(strings), dtype=object)
    return np.asarray(node.attrs.get("classlabels_int64s", []), np.int64)


class _ClassifierSetup:
    """What a TreeEnsembleClassifier node needs each run, built and checked once: its labels,
    forest (None for one class), base values and post transform."""

    def __init__(self, node, dtype):
        self.labels = labels = _labels(node)
        k = len(labels)
        self.forest = None
        if k < 2:
            return
        self.forest = _Forest(node, dtype, k, "class")
        self.base = base = _attr_floats(node, "base_values", np.float64)
        if len(base) not in ((0, 1, 2) if k == 2 else (0, k)):  # as onnxruntime refuses it
            raise InvalidGraph(f"{node.describe()}: base_values must have 0 or {k if k > 2 else '1 or 2'} values")
        self.post = _transform(node)
        # several classes: base values count for their classes whether or not a leaf weighs them
        self.m = min(len(base), k)
        self.base_k = np.ascontiguousarray(base[:self.m]) if self.m else None
        self.post_code = _core.SCORE_POSTS.get(self.post) if k > 2 else None
        self.fixed_has = None
        if self.forest.fixed_has is not None:
            has = self.forest.fixed_has.copy()
            has[:self.m] = True
            self.fixed_has = None if has.all() else has.astype(np.uint8)


def tree_ensemble_classifier(node, x, threads: int = 1):
    dtype = _dtype_for(x)
    setup = _cached(node, ("cls", dtype), lambda: _ClassifierSetup(node, dtype))
    if setup.forest is None:
        return None  # onnxruntime's one-class path: left to onnx.reference
    forest, labels, base, post = setup.forest, setup.labels, setup.base, setup.post
    x = _rows(node, x, dtype)
    # always summed: onnxruntime's classifier aggregator is a sum (the op has no aggregate_function)
    s, has = forest.summed(node, x, threads)
    n, k = s.shape
    if k > 2:
        if setup.post_code is not None and has.ndim == 1:  # base, labels and transform in one C pass
            best, probs = _core.scores_classify(s, setup.base_k, setup.fixed_has, dtype == np.float32,
                                                setup.post_code)
            return [labels[best], probs]
        if setup.m:
            s[:, :setup.m] += base[:setup.m]
        has = np.broadcast_to(has, s.shape).copy()
        has[:, :setup.m] = True
        masked = np.where(has, s.astype(dtype), -np.inf)
        best = np.argmax(masked, axis=1)
        return [labels[best], _TRANSFORMS[post](s.astype(dtype))]
    return _binary(node, forest, labels, s.astype(dtype).astype(np.float64), np.broadcast_to(has, s.shape), base,
                   post, n)


def _binary(node, forest, labels, s, has, base, post, n):
    """onnxruntime 1.32's two-class layouts, as measured against it: a base value is added to a
    class only where some leaf weighed it; with base_values of two, class 1's score is
    base[1] + class 0's and class 0's its negative; a class no leaf weighed reads 0; a row where
    no leaf weighed class 1 (and fewer than two base values) has one score s, written
    [logistic(-s), logistic(s)] under LOGISTIC, else [1 - s, s] when all weights are >= 0,
    else [-s, s]."""
    s0, s1 = s[:, 0].copy(), s[:, 1].copy()
    h0, h1 = has[:, 0].copy(), has[:, 1]
    two = np.ones(n, bool)  # rows that keep two scores
    if len(base) == 2:
        s1 = np.where(h1, base[1] + s[:, 0], s1)
        s0 = np.where(h1, -(base[1] + s[:, 0]), np.where(h0, s0 + base[0], s0))
    else:
        if len(base) == 1:
            s0 = np.where(h0, s0 + base[0], s0)
        two = h1.copy()
    s0, s1 = np.where(h0, s0, 0.0), np.where(h1, s1, 0.0)
    pos_w = np.where(two & h1, s1, np.where(h0, s0, 0.0))
    binary = len(set(forest.class_ids.tolist())) == 1
    if binary:
        positive = pos_w > 0.5 if forest.all_positive else pos_w > 0
        label = labels[positive.astype(np.intp)]
    elif labels.dtype == object:
        label = labels[(pos_w > 0).astype(np.intp)]
    else:
        label = (pos_w > 0).astype(np.int64)  # onnxruntime's positive_label_ / negative_label_ (1 / 0)
    z = np.zeros((n, 2), _F32)
    if two.any():
        z[two] = _TRANSFORMS[post](np.stack([s0[two], s1[two]], axis=1))
    one = ~two
    if one.any():
        v = s0[one].astype(_F32)
        if post == "PROBIT":
            z[one, 0] = _probit(v)
        elif post == "LOGISTIC":
            z[one, 0], z[one, 1] = _logistic(-v), _logistic(v)
        elif forest.all_positive:
            z[one, 0], z[one, 1] = _F32(1) - v, v
        else:
            z[one, 0], z[one, 1] = -v, v
    return [label, z]


def zip_map(node, x):
    """[N, C] scores -> a list of N {class label: score} dicts (skl2onnx's default classifier
    output; onnx.reference has no kernel for it). A 1-D input is one row, as in onnxruntime."""
    x = np.asarray(x)
    labels = node.attrs.get("classlabels_int64s")
    if labels is None:
        labels = node.attrs.get("classlabels_strings")
    if labels is None:
        raise ShapeError(f"{node.describe()}: needs classlabels_int64s or classlabels_strings")
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2 or rows.shape[1] != len(labels):
        raise ShapeError(f"{node.describe()}: input {list(x.shape)} does not have one column per class "
                         f"({len(labels)} labels)")
    keys = [int(k) for k in labels] if isinstance(labels[0], (int, np.integer)) else list(labels)
    return [[dict(zip(keys, map(float, row))) for row in rows.tolist()]]


tree_ensemble_regressor.takes_threads = tree_ensemble_classifier.takes_threads = True
KERNELS = {("ai.onnx.ml", "TreeEnsembleRegressor"): tree_ensemble_regressor,
           ("ai.onnx.ml", "TreeEnsembleClassifier"): tree_ensemble_classifier,
           ("ai.onnx.ml", "ZipMap"): zip_map}
