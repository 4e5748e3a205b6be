"""ai.onnx.ml 5's TreeEnsemble on our tree kernels (host_ml.tree_ensemble, written as the v3
regressor's attributes) against onnxruntime: every comparison mode, the four aggregations,
float and double, leaves shared between trees; post_transform as the spec numbers it
(onnxruntime reads 1 as LOGISTIC and 2 as SOFTMAX, onnx.reference ignores it)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

from ._helpers import THREADS, seeds


def _forest(rng, n_trees, depth, n_features, n_targets, modes, agg, post, dtype, shared_leaf):
    feat, splits, node_modes, tnode, fnode, tleaf, fleaf, roots, leaf_t, leaf_w = ([] for _ in range(10))
    if shared_leaf:   # one leaf every tree may point at
        leaf_t.append(0)
        leaf_w.append(float(rng.standard_normal()))
    for _ in range(n_trees):
        base = len(feat)
        roots.append(base)
        inner = 2 ** depth - 1
        for i in range(inner):
            feat.append(int(rng.integers(n_features)))
            splits.append(float(np.round(rng.standard_normal(), 1)))
            node_modes.append(int(rng.choice(modes)))
            for side, child in ((0, 2 * i + 1), (1, 2 * i + 2)):
                if child < inner:
                    (tnode, fnode)[side].append(base + child)
                    (tleaf, fleaf)[side].append(0)
                    continue
                if shared_leaf and rng.random() < 0.2:
                    k = 0
                else:
                    k = len(leaf_t)
                    leaf_t.append(int(rng.integers(n_targets)))
                    leaf_w.append(float(rng.standard_normal()))
                (tnode, fnode)[side].append(k)
                (tleaf, fleaf)[side].append(1)
    attrs = dict(n_targets=n_targets, nodes_featureids=feat, nodes_splits=numpy_helper.from_array(np.array(splits, dtype)),
                 nodes_modes=numpy_helper.from_array(np.array(node_modes, np.uint8)), nodes_truenodeids=tnode,
                 nodes_falsenodeids=fnode, nodes_trueleafs=tleaf, nodes_falseleafs=fleaf, leaf_targetids=leaf_t,
                 leaf_weights=numpy_helper.from_array(np.array(leaf_w, dtype)), tree_roots=roots,
                 aggregate_function=agg, post_transform=post)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph([helper.make_node("TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)], "te",
                              [helper.make_tensor_value_info("X", elem, [None, n_features])],
                              [helper.make_tensor_value_info("Y", elem, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", 5)]).SerializeToString()


@settings(max_examples=40, deadline=None)
@given(n_trees=st.integers(1, 6), depth=st.integers(1, 4), n_targets=st.integers(1, 3), agg=st.integers(0, 3),
       modes=st.sampled_from([[0], [1], [2], [3], [0, 1, 2, 3, 4, 5]]), dtype=st.sampled_from([np.float32, np.float64]),
       batch=st.sampled_from([1, 7, 300]), shared_leaf=st.booleans(), seed=seeds)
def test_tree_ensemble_matches_onnxruntime(n_trees, depth, n_targets, agg, modes, dtype, batch, shared_leaf, seed):
    rng = np.random.default_rng(seed)
    model = _forest(rng, n_trees, depth, 4, n_targets, modes, agg, 0, dtype, shared_leaf)
    x = np.round(rng.standard_normal((batch, 4)), 1).astype(dtype)   # values on the splits: equality modes
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"X": x})[0]
    assert [p.where for p in sess.placement()] == ["host"]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_post_transform_follows_the_spec_numbering():
    """1 is SOFTMAX and 2 LOGISTIC in the spec; checked against the untransformed scores."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    raw = ggonnx.Session(_forest(np.random.default_rng(1), 3, 3, 4, 3, [0], 1, 0, np.float32, False)).run(None, {"X": x})[0]
    softmax = ggonnx.Session(_forest(np.random.default_rng(1), 3, 3, 4, 3, [0], 1, 1, np.float32, False)).run(None, {"X": x})[0]
    logistic = ggonnx.Session(_forest(np.random.default_rng(1), 3, 3, 4, 3, [0], 1, 2, np.float32, False)).run(None, {"X": x})[0]
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logistic, 1 / (1 + np.exp(-raw)), rtol=1e-5, atol=1e-6)
