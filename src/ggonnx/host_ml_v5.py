"""ai.onnx.ml 5's TreeEnsemble on the tree kernels of host_ml: the node's attributes written
once as TreeEnsembleRegressor's, then walked and aggregated as that op is.

Depends on nothing in ggonnx above numpy, errors and host_ml, like host_kernels.
"""
from __future__ import annotations

import numpy as np

from ggonnx.errors import InvalidGraph
from ggonnx.host_ml import _TRANSFORMS, _Forest, _cached, _probit, _rows

_V5_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
_V5_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
_V5_POSTS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")
_V3_NODE_KEYS = ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                 "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")
_V3_TARGET_KEYS = ("target_treeids", "target_nodeids", "target_ids", "target_weights")


class _V5AsV3:
    """ai.onnx.ml 5's TreeEnsemble written in TreeEnsembleRegressor's attributes, as onnxruntime
    also runs it: trees walked from tree_roots, each leaf (an index into the leaf arrays, wherever
    a node's *leafs flag says so) a LEAF node of its tree numbered after all nodes."""

    def __init__(self, node):
        self.name, self.op_type = node.name, node.op_type
        a = node.attrs
        feats = np.asarray(a.get("nodes_featureids", []), np.int64)
        n = len(feats)
        splits = np.asarray(a.get("nodes_splits", []), np.float64).reshape(-1)
        modes = np.asarray(a.get("nodes_modes", []), np.int64).reshape(-1)
        trues, falses = (np.asarray(a.get(k, []), np.int64) for k in ("nodes_truenodeids", "nodes_falsenodeids"))
        t_leaf, f_leaf = (np.asarray(a.get(k, [0] * n), np.int64) for k in ("nodes_trueleafs", "nodes_falseleafs"))
        mtt = np.asarray(a.get("nodes_missing_value_tracks_true", [0] * n), np.int64)
        leaf_t = np.asarray(a.get("leaf_targetids", []), np.int64)
        leaf_w = np.asarray(a.get("leaf_weights", []), np.float64).reshape(-1)
        roots = np.asarray(a.get("tree_roots", []), np.int64)
        if not n or any(len(v) != n for v in (splits, modes, trues, falses, t_leaf, f_leaf, mtt)) or \
                len(leaf_t) != len(leaf_w) or not len(roots):
            raise InvalidGraph(f"{node.describe()}: the nodes_* (and leaf_*) attributes must be non-empty and of one "
                               f"length, with tree_roots")
        if modes.min() < 0 or modes.max() > 6 or roots.min() < 0 or roots.max() >= n:
            raise InvalidGraph(f"{node.describe()}: nodes_modes must lie in [0, 6] and tree_roots index the nodes")
        self.member = bool((modes == 6).any())   # set membership: left to onnx.reference
        v3 = {k: [] for k in _V3_NODE_KEYS + _V3_TARGET_KEYS}

        def add(keys, *values):
            for k, v in zip(keys, values):
                v3[k].append(v)

        for tree, root in enumerate(roots.tolist()):
            seen, leaves, stack = set(), set(), [root]   # the root first: _Forest roots a tree at its first node
            while stack:
                i = stack.pop()
                if i in seen:
                    raise InvalidGraph(f"{node.describe()}: tree {tree} reaches node {i} twice (a cycle or a shared "
                                       f"subtree)")
                seen.add(i)
                children = []
                for child, is_leaf in ((int(trues[i]), int(t_leaf[i])), (int(falses[i]), int(f_leaf[i]))):
                    if not 0 <= child < (len(leaf_t) if is_leaf else n):
                        raise InvalidGraph(f"{node.describe()}: node {i} points to {'leaf' if is_leaf else 'node'} "
                                           f"{child} of {len(leaf_t) if is_leaf else n}")
                    children.append(n + child if is_leaf else child)
                add(_V3_NODE_KEYS, tree, i, int(feats[i]), float(splits[i]),
                    _V5_MODES[modes[i]] if modes[i] < 6 else "BRANCH_LEQ", children[0], children[1], int(mtt[i]))
                for child, is_leaf in ((int(falses[i]), int(f_leaf[i])), (int(trues[i]), int(t_leaf[i]))):
                    if not is_leaf:
                        stack.append(child)
                    elif child not in leaves:   # a leaf two branches share is one node of the tree
                        leaves.add(child)
                        add(_V3_NODE_KEYS, tree, n + child, 0, 0.0, "LEAF", 0, 0, 0)
                        add(_V3_TARGET_KEYS, tree, n + child, int(leaf_t[child]), float(leaf_w[child]))
        self.attrs = v3

    def describe(self) -> str:
        return f"node '{self.name}' ({self.op_type})"


def tree_ensemble(node, x, threads: int = 1):
    """ai.onnx.ml 5's TreeEnsemble (onnx.reference walked it in Python: 0.32 s for 100 trees at
    batch 1, onnxruntime 7 us): [N, n_targets] in the input's type. Set membership (mode 6) and
    float16 stay with onnx.reference."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        return None
    n_targets = int(node.attrs.get("n_targets", 0))
    if n_targets < 1:
        raise InvalidGraph(f"{node.describe()}: n_targets must be positive")
    v3 = _cached(node, "v5", lambda: _V5AsV3(node))
    if v3.member:
        return None
    agg, post = int(node.attrs.get("aggregate_function", 1)), int(node.attrs.get("post_transform", 0))
    if not 0 <= agg < len(_V5_AGGREGATES) or not 0 <= post < len(_V5_POSTS):
        raise InvalidGraph(f"{node.describe()}: aggregate_function {agg} / post_transform {post} out of range")
    dtype = x.dtype.type
    forest = _cached(node, ("v5", dtype), lambda: _Forest(v3, dtype, n_targets, "target"))
    s, has = forest.aggregate(node, forest.leaves(node, _rows(node, x, dtype), threads), _V5_AGGREGATES[agg])
    s = np.where(has, s, 0.0)   # a target no leaf weighs is 0
    name = _V5_POSTS[post]
    if n_targets == 1:   # one score column: only PROBIT transforms it (as the regressor)
        return [(_probit(s.astype(dtype)) if name == "PROBIT" else s).astype(dtype)]
    return [_TRANSFORMS[name](s.astype(dtype)).astype(dtype)]


tree_ensemble.takes_threads = True
KERNELS = {("ai.onnx.ml", "TreeEnsemble"): tree_ensemble}
