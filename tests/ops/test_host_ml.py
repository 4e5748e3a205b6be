"""Our ONNX-ML host kernels (ggonnx.host_ml) against onnxruntime: random models built with
onnx.helper (hypothesis), and scikit-learn estimators converted by skl2onnx where installed."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import ggonnx

SETTINGS = dict(max_examples=40, deadline=None)
RTOL = 1e-5
ML = "ai.onnx.ml"


def _model(nodes, inputs, outputs, ml_opset=3, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(ML, ml_opset)])
    model.ir_version = 8
    return model.SerializeToString()


def _run_both(model: bytes, feeds: dict):
    ours = ggonnx.Session(model, threads=2).run(None, feeds)
    theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    return ours, theirs


def assert_close(a, e, rtol=RTOL, atol=1e-6):
    a, e = np.asarray(a), np.asarray(e)
    assert a.shape == e.shape, (a.shape, e.shape)
    if e.dtype == object or e.dtype.kind in "iubU":
        np.testing.assert_array_equal(a, e)
    else:
        np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol)


def assert_labels(a, e, scores):
    """Labels equal, except on rows whose two best scores tie to within float32 rounding
    (onnxruntime sums tree scores in float32 in a thread-dependent order)."""
    a, e, scores = np.asarray(a), np.asarray(e), np.asarray(scores, np.float64)
    assert a.shape == e.shape
    if scores.ndim == 2 and scores.shape[1] > 1:
        top = np.sort(scores, axis=1)
        tie = top[:, -1] - top[:, -2] <= 1e-5 * np.maximum(1.0, np.abs(top[:, -1]))
    else:
        tie = np.zeros(len(a), bool)
    np.testing.assert_array_equal(a[~tie], e[~tie])


# -- random tree ensembles --------------------------------------------------------------------

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
GRID = np.arange(-4, 5, dtype=np.float32) * 0.5  # inputs and thresholds share it: ties and EQ hits


def _random_trees(rng, n_trees, max_depth, n_features, mode, mtt_p):
    """nodes_* attribute lists and the leaves as (tree, node) pairs."""
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                             "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")}
    leaves = []
    for t in range(n_trees):
        rows = []

        def grow(depth):
            i = len(rows)
            rows.append(None)
            if depth >= max_depth or (depth > 0 and rng.random() < 0.3):
                rows[i] = (0, "LEAF", 0.0, 0, 0, 0)
                leaves.append((t, i))
                return i
            m = mode if mode != "mixed" else MODES[rng.integers(len(MODES))]
            f, thr = int(rng.integers(n_features)), float(rng.choice(GRID))
            a = grow(depth + 1)
            b = grow(depth + 1)
            rows[i] = (f, m, thr, a, b, int(rng.random() < mtt_p))
            return i

        grow(0)
        ids = rng.permutation(len(rows))  # node ids need not follow the listing order
        for i in range(len(rows)):
            f, m, thr, a, b, mtt = rows[i]
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(int(ids[i]))
            attrs["nodes_featureids"].append(f)
            attrs["nodes_modes"].append(m)
            attrs["nodes_values"].append(thr)
            attrs["nodes_truenodeids"].append(int(ids[a]) if m != "LEAF" else 0)
            attrs["nodes_falsenodeids"].append(int(ids[b]) if m != "LEAF" else 0)
            attrs["nodes_missing_value_tracks_true"].append(mtt)
        leaves[-sum(1 for tt, _ in leaves if tt == t):] = [(t, int(ids[i])) for tt, i in leaves if tt == t]
    return attrs, leaves


def _inputs(rng, n, n_features, nan):
    x = rng.choice(GRID, size=(n, n_features)).astype(np.float32)
    x += np.where(rng.random(x.shape) < 0.5, 0, rng.standard_normal(x.shape).astype(np.float32) * 0.1)
    if nan:
        x[rng.random(x.shape) < 0.15] = np.nan
    return x


tree_cases = st.fixed_dictionaries(dict(
    seed=st.integers(0, 2**32 - 1), n_trees=st.integers(1, 12), depth=st.integers(0, 6),
    features=st.integers(1, 5), batch=st.sampled_from([1, 2, 7, 64]), nan=st.booleans(),
    mode=st.sampled_from(MODES + ["mixed", "BRANCH_LEQ", "BRANCH_LEQ"]), mtt=st.sampled_from([0.0, 0.5, 1.0])))


@settings(**SETTINGS)
@given(case=tree_cases, n_targets=st.integers(1, 3), agg=st.sampled_from(["SUM", "AVERAGE", "MIN", "MAX"]),
       post=st.sampled_from(["NONE", "PROBIT", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]), n_base=st.integers(0, 3),
       sparse=st.booleans())
def test_tree_ensemble_regressor(case, n_targets, agg, post, n_base, sparse):
    rng = np.random.default_rng(case["seed"])
    attrs, leaves = _random_trees(rng, case["n_trees"], case["depth"], case["features"], case["mode"], case["mtt"])
    t_tree, t_node, t_id, t_w = [], [], [], []
    for t, nd in leaves:
        ks = range(n_targets) if not sparse else [int(rng.integers(n_targets))]
        for k in ks:
            t_tree.append(t), t_node.append(nd), t_id.append(k), t_w.append(float(rng.uniform(-0.4, 0.4)))
    extra = dict(target_treeids=t_tree, target_nodeids=t_node, target_ids=t_id, target_weights=t_w,
                 n_targets=n_targets, aggregate_function=agg, post_transform=post)
    n_base = n_targets if n_base else 0  # onnxruntime refuses other counts
    if n_base:
        extra["base_values"] = [float(v) for v in rng.uniform(-0.3, 0.3, n_base)]
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, **attrs, **extra)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, case["features"]])],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])])
    x = _inputs(rng, case["batch"], case["features"], case["nan"])
    (ours,), (theirs,) = _run_both(model, {"X": x})
    assert_close(ours, theirs, atol=1e-5)


@settings(**SETTINGS)
@given(case=tree_cases, n_classes=st.integers(2, 4), layout=st.sampled_from(["all", "single", "sparse"]),
       post=st.sampled_from(["NONE", "PROBIT", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]), n_base=st.integers(0, 3),
       strings=st.booleans(), positive=st.booleans())
def test_tree_ensemble_classifier(case, n_classes, layout, post, n_base, strings, positive):
    rng = np.random.default_rng(case["seed"])
    if n_classes == 2 and layout == "sparse":
        layout = "all"  # two classes with some leaves lacking class 1: onnxruntime leaves a score unwritten
    if n_classes == 2 and post == "PROBIT" and (layout == "single" or n_base < 2):
        post = "NONE"  # one score under PROBIT: onnxruntime writes the first of two columns only
    attrs, leaves = _random_trees(rng, case["n_trees"], case["depth"], case["features"], case["mode"], case["mtt"])
    single = int(rng.integers(n_classes)) if n_classes == 2 else 0
    c_tree, c_node, c_id, c_w = [], [], [], []
    for t, nd in leaves:
        ks = {"all": range(n_classes), "single": [single], "sparse": [int(rng.integers(n_classes))]}[layout]
        for k in ks:
            w = float(rng.uniform(0, 1) if positive else rng.uniform(-1, 1))
            c_tree.append(t), c_node.append(nd), c_id.append(k), c_w.append(w)
    labels = dict(classlabels_strings=[f"c{i}" for i in range(n_classes)]) if strings else \
        dict(classlabels_int64s=[int(v) for v in rng.choice(50, n_classes, replace=False)])
    extra = dict(class_treeids=c_tree, class_nodeids=c_node, class_ids=c_id, class_weights=c_w, post_transform=post,
                 **labels)
    if n_classes > 2:
        n_base = n_classes if n_base else 0  # onnxruntime refuses other counts
    else:
        n_base = min(n_base, 2)
    if n_base:
        extra["base_values"] = [float(v) for v in rng.uniform(-0.3, 0.3, n_base)]
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probs"], domain=ML, **attrs, **extra)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, case["features"]])],
                   [helper.make_tensor_value_info("label", TensorProto.STRING if strings else TensorProto.INT64,
                                                  [None]),
                    helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, n_classes])])
    x = _inputs(rng, case["batch"], case["features"], case["nan"])
    (label, probs), (e_label, e_probs) = _run_both(model, {"X": x})
    assert_close(probs, e_probs, atol=1e-5)
    assert_labels(label, e_label, e_probs)


def test_tree_ensemble_double_input_and_bad_feature():
    attrs, leaves = _random_trees(np.random.default_rng(0), 3, 3, 4, "BRANCH_LEQ", 0.5)
    t = dict(target_treeids=[a for a, _ in leaves], target_nodeids=[b for _, b in leaves],
             target_ids=[0] * len(leaves), target_weights=[0.25] * len(leaves), n_targets=1)
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, **attrs, **t)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, 4])],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    x = _inputs(np.random.default_rng(1), 20, 4, True).astype(np.float64)
    (ours,), (theirs,) = _run_both(model, {"X": x})
    assert_close(ours, theirs)
    with pytest.raises(ggonnx.errors.GgonnxError):
        ggonnx.Session(model).run(None, {"X": x[:, :1].copy()})


# -- scikit-learn estimators through skl2onnx ---------------------------------------------------

def _skl_data(n=300, features=8, classes=3, seed=0):
    pytest.importorskip("sklearn")
    from sklearn.datasets import make_classification
    x, y = make_classification(n, features, n_informative=5, n_classes=classes, random_state=seed)
    return x.astype(np.float32), y


def _skl_check(estimator, x, zipmap=False):
    skl2onnx = pytest.importorskip("skl2onnx")
    options = {"zipmap": zipmap} if hasattr(estimator, "classes_") else None
    model = skl2onnx.to_onnx(estimator, x[:1], options=options, target_opset={"": 17, ML: 3}).SerializeToString()
    for batch in (1, len(x)):
        feeds = {"X": x[:batch]}
        ours, theirs = _run_both(model, feeds)
        assert len(ours) == len(theirs)
        if len(theirs) == 2 and not zipmap:
            assert_close(ours[1], theirs[1])
            assert_labels(ours[0], theirs[0], theirs[1])
        else:
            for a, e in zip(ours, theirs):
                if isinstance(e, list):
                    assert len(a) == len(e) and all(set(p) == set(q) for p, q in zip(a, e))
                    for p, q in zip(a, e):
                        np.testing.assert_allclose([p[k] for k in q], [q[k] for k in q], rtol=RTOL, atol=1e-6)
                else:
                    assert_close(a, e)


@pytest.mark.parametrize("classes", [2, 3])
def test_skl_forests_and_boosting(classes):
    pytest.importorskip("skl2onnx")
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    x, y = _skl_data(classes=classes)
    x[::11, 2] = np.nan
    _skl_check(RandomForestClassifier(20, max_depth=8, random_state=0).fit(np.nan_to_num(x), y), x)
    _skl_check(GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(np.nan_to_num(x), y), x)


def test_skl_regressors():
    pytest.importorskip("skl2onnx")
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    x, y = _skl_data()
    target = x[:, 0] * 2 + x[:, 1]
    _skl_check(RandomForestRegressor(15, max_depth=8, random_state=0).fit(x, target), x)
    _skl_check(GradientBoostingRegressor(n_estimators=20, random_state=0).fit(x, target), x)


@pytest.mark.parametrize("labels", [{"classlabels_int64s": [3, 5, 7]}, {"classlabels_strings": ["a", "b", "c"]}])
@pytest.mark.parametrize("rows", [1, 4])
def test_zipmap_matches_onnxruntime(labels, rows):
    """ZipMap, skl2onnx's default classifier output: the same list of dicts as onnxruntime."""
    key = TensorProto.INT64 if "classlabels_int64s" in labels else TensorProto.STRING
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(key, helper.make_tensor_type_proto(
        TensorProto.FLOAT, [])))
    g = helper.make_graph([helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", **labels)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_value_info("z", seq)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    x = np.random.default_rng(rows).random((rows, 3)).astype(np.float32)
    (got,) = ggonnx.Session(model).run(None, {"x": x})
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert got == want and all(type(k) is type(w) for g_, w_ in zip(got, want) for k, w in zip(g_, w_))
