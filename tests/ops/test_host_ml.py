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
FAST = dict(max_examples=150, deadline=None)  # the one-node linear / SVM / preparation models run in ~3 ms
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


def _run_or_refuse(model: bytes, feeds: dict):
    """Both runtimes' outputs, or None when onnxruntime refuses the model or the feeds (then
    ggonnx must refuse them too)."""
    try:
        theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception:  # onnxruntime's exception types are its own
        with pytest.raises(ggonnx.errors.GgonnxError):
            ggonnx.Session(model, threads=2).run(None, feeds)
        return None
    return ggonnx.Session(model, threads=2).run(None, feeds), theirs


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


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_GT"])
def test_tree_ensemble_big_batch_splits_trees_between_threads(mode):
    # 40 trees x 3,000 samples: the C walk gives trees to two threads (host_trees.c)
    rng = np.random.default_rng(7)
    attrs, leaves = _random_trees(rng, 40, 8, 5, mode, 0.0)
    t = dict(target_treeids=[a for a, _ in leaves], target_nodeids=[b for _, b in leaves],
             target_ids=[0] * len(leaves), target_weights=[float(w) for w in rng.uniform(-1, 1, len(leaves))],
             n_targets=1)
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, **attrs, **t)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 5])],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    x = _inputs(rng, 3000, 5, False)
    (ours,), (theirs,) = _run_both(model, {"X": x})
    assert_close(ours, theirs, atol=1e-5)
    np.testing.assert_array_equal(ggonnx.Session(model, threads=1).run(None, {"X": x})[0], ours)


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


def test_one_class_tree_ensemble_classifier_is_refused_clearly():
    """A classifier of one class is left to onnx.reference (onnxruntime has a path of its own
    for it, which our kernel does not copy), and onnx.reference has none: the run raises naming
    the node and the reason, not an error from inside our kernel."""
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "scores"], domain=ML, classlabels_int64s=[7],
                            nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
                            nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_values=[0.5, 0.0, 0.0],
                            nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0], class_treeids=[0, 0],
                            class_nodeids=[1, 2], class_ids=[0, 0], class_weights=[0.2, 0.8], name="the_node")
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
                   [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                    helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None])])
    with pytest.raises(ggonnx.errors.UnsupportedOpError, match=r"the_node.*classlabels_int64s=\[7\], not supported"):
        ggonnx.Session(model, threads=1).run(None, {"X": np.array([[0.0], [1.0]], np.float32)})


# -- scikit-learn estimators through skl2onnx ---------------------------------------------------

def _skl_data(n=300, features=8, classes=3, seed=0):
    pytest.importorskip("sklearn")
    from sklearn.datasets import make_classification
    x, y = make_classification(n, features, n_informative=5, n_classes=classes, random_state=seed)
    return x.astype(np.float32), y


def _skl_check(estimator, x, zipmap=False, atol=1e-6):
    """``atol``: onnxruntime scores an SVM's kernels in float32 (its sum over ~100 support
    vectors is ~1e-5 off; ours runs them in double)."""
    skl2onnx = pytest.importorskip("skl2onnx")
    options = {"zipmap": zipmap} if hasattr(estimator, "classes_") else None
    try:
        model = skl2onnx.to_onnx(estimator, x[:1], options=options, target_opset={"": 17, ML: 3})
    except NameError:  # a classifier without a zipmap option (LinearSVC)
        model = skl2onnx.to_onnx(estimator, x[:1], target_opset={"": 17, ML: 3})
    model = model.SerializeToString()
    for batch in (1, len(x)):
        feeds = {"X": x[:batch]}
        ours, theirs = _run_both(model, feeds)
        assert len(ours) == len(theirs)
        if len(theirs) == 2 and not zipmap:
            assert_close(ours[1], theirs[1], atol=atol)
            assert_labels(ours[0], theirs[0], theirs[1])
        else:
            for a, e in zip(ours, theirs):
                if isinstance(e, list):
                    assert len(a) == len(e) and all(set(p) == set(q) for p, q in zip(a, e))
                    for p, q in zip(a, e):
                        np.testing.assert_allclose([p[k] for k in q], [q[k] for k in q], rtol=RTOL, atol=1e-6)
                else:
                    assert_close(a, e, atol=atol)


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


# sklearn's ConvergenceWarning is a UserWarning: naming it here would import sklearn at collection
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
@pytest.mark.parametrize("classes", [2, 3])
def test_skl_linear_models_and_svms(classes):
    """skl2onnx's LinearClassifier / SVMClassifier graphs (and the Cast, ArrayFeatureExtractor
    and arithmetic around them) against onnxruntime."""
    pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC
    x, y = _skl_data(n=200, classes=classes)
    _skl_check(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y), x)
    _skl_check(LogisticRegression(max_iter=300).fit(x, y), x, zipmap=True)
    _skl_check(LinearSVC().fit(x, y), x)
    _skl_check(MLPClassifier((16,), max_iter=50, random_state=0).fit(x, y), x)
    for kernel in ("rbf", "poly", "linear", "sigmoid"):
        _skl_check(SVC(kernel=kernel).fit(x, y), x, atol=5e-5)
    _skl_check(SVC(probability=True, random_state=0).fit(x, y), x, atol=5e-5)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn's feature-name warnings
def test_skl_regressors_svms_and_preprocessing():
    pytest.importorskip("skl2onnx")
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Binarizer, MaxAbsScaler, MinMaxScaler, Normalizer, OneHotEncoder
    from sklearn.svm import SVR, LinearSVR, NuSVR, OneClassSVM
    x, y = _skl_data(n=200)
    target = x[:, 0] * 2 + x[:, 1]  # linear fits: outputs are sums that cancel, so absolute tolerances
    for est in (SVR(), NuSVR(kernel="poly"), LinearSVR(), OneClassSVM(gamma="scale")):
        _skl_check(est.fit(x, target), x, atol=5e-5)
    for norm in ("l1", "l2", "max"):
        _skl_check(make_pipeline(Normalizer(norm), LinearRegression()).fit(x, target), x, atol=1e-5)
    _skl_check(make_pipeline(Binarizer(threshold=0.3), MaxAbsScaler(), LinearRegression()).fit(x, target), x, atol=1e-5)
    holes = x.copy()
    holes[::7, 3] = np.nan
    _skl_check(make_pipeline(SimpleImputer(), MinMaxScaler(), LinearRegression()).fit(holes, target), holes, atol=1e-5)
    cats = np.random.default_rng(0).integers(0, 6, (200, 3)).astype(np.int64)
    _skl_check(make_pipeline(OneHotEncoder(handle_unknown="ignore"), LinearRegression()).fit(cats, target), cats, atol=1e-5)
    words = np.array([f"w{i}" for i in range(5)], dtype=object)[cats % 5]
    _skl_check(make_pipeline(OneHotEncoder(handle_unknown="ignore"), LinearRegression()).fit(words, target), words, atol=1e-5)


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


# -- linear models and SVMs (ggonnx.host_ml_linear) ---------------------------------------------

POSTS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
NP_TYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64,
            "int32": TensorProto.INT32}


def _features_in(rng, batch, features, dtype, nan=False, one_d=False):
    if dtype in ("int64", "int32"):
        x = rng.integers(-3, 4, (batch, features)).astype(dtype)
    else:
        x = rng.standard_normal((batch, features)).astype(dtype)
        if nan:  # NaNs, and infinities whose sums make NaN scores beside finite ones
            x[rng.random(x.shape) < 0.1] = np.nan
            x[rng.random(x.shape) < 0.1] = np.inf
            x[rng.random(x.shape) < 0.1] = -np.inf
    return x[0] if one_d else x


def _labels_attr(rng, n, strings):
    if not n:  # no labels at all: 1 / 0
        return {}, TensorProto.INT64
    if strings:
        return dict(classlabels_strings=[f"c{i}" for i in range(n)]), TensorProto.STRING
    return dict(classlabels_ints=[int(v) for v in rng.choice(100, n, replace=False)]), TensorProto.INT64


def _classifier(op, attrs, x, label_type):
    node = helper.make_node(op, ["X"], ["label", "scores"], domain=ML, **attrs)
    return _model([node], [helper.make_tensor_value_info("X", NP_TYPES[str(x.dtype)], [None] * x.ndim)],
                  [helper.make_tensor_value_info("label", label_type, [None]),
                   helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None])])


def _near_zero(raw, tol=1e-4):
    """Rows with a raw score within ``tol`` of 0 (where summation order can flip a sign)."""
    raw = np.asarray(raw, np.float64)
    scale = np.maximum(1.0, np.abs(raw).max(axis=1, keepdims=True, initial=0.0))
    return (np.abs(raw) < tol * scale).any(axis=1)


def _near_tie(raw, tol=1e-4):
    raw = np.asarray(raw, np.float64)
    if raw.shape[1] < 2:
        return np.zeros(len(raw), bool)
    top = np.sort(np.where(np.isnan(raw), -np.inf, raw), axis=1)
    with np.errstate(invalid="ignore"):
        return top[:, -1] - top[:, -2] <= tol * np.maximum(1.0, np.abs(top[:, -1]))  # all-NaN rows: checked


def _tolerance(post):
    """Scores agree to float32 rounding; PROBIT less: onnxruntime's approximate inverse erf takes
    log((1 - x)(1 + x)) in float32, so near p = 0.5 one ulp of p moves it by up to ~1e-3."""
    return dict(rtol=1e-3, atol=1e-3) if post == "PROBIT" else dict(rtol=1e-4, atol=1e-5)


def _labels_match(a, e, skip):
    a, e = np.asarray(a), np.asarray(e)
    assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, e.shape, a.dtype, e.dtype)
    np.testing.assert_array_equal(a[~skip], e[~skip])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf in the GEMMs
@settings(**FAST)
@given(seed=st.integers(0, 2**32 - 1), classes=st.sampled_from([1, 1, 2, 3, 5]), n_labels=st.sampled_from([0, 1, 2, 2, 3]),
       features=st.integers(1, 6), batch=st.sampled_from([0, 1, 3, 40]), post=st.sampled_from(POSTS),
       dtype=st.sampled_from(list(NP_TYPES)), strings=st.booleans(), one_d=st.booleans(), nan=st.booleans())
def test_linear_classifier(seed, classes, n_labels, features, batch, post, dtype, strings, one_d, nan):
    rng = np.random.default_rng(seed)
    n_labels = n_labels if classes == 1 else classes
    labels, label_type = _labels_attr(rng, n_labels, strings and n_labels > 0)
    coef = rng.standard_normal((classes, features)).astype(np.float32)
    bias = rng.standard_normal(classes).astype(np.float32)
    attrs = dict(coefficients=coef.reshape(-1).tolist(), intercepts=bias.tolist(), post_transform=post, **labels)
    x = _features_in(rng, batch, features, dtype, nan, one_d and batch == 1)
    both = _run_or_refuse(_classifier("LinearClassifier", attrs, x, label_type), {"X": x})
    if both is None:  # a binary model with labels, but not two
        assert classes == 1 and n_labels not in (0, 2)
        return
    (label, scores), (e_label, e_scores) = both
    raw = x.reshape(-1, features).astype(np.float64) @ coef.T.astype(np.float64) + bias
    assert scores.shape == e_scores.shape and scores.dtype == e_scores.dtype
    if classes == 1 and n_labels and post == "PROBIT":  # onnxruntime writes the first half only
        scores, e_scores = scores.reshape(-1)[:len(raw)], e_scores.reshape(-1)[:len(raw)]
    assert_close(scores, e_scores, **_tolerance(post))
    _labels_match(label, e_label, _near_zero(raw) if classes == 1 else _near_tie(raw))


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("n_labels", [0, 2])
def test_linear_classifier_binary_layouts(post, n_labels):
    """One score column: [1 - s, s] (LOGISTIC: of logistic(s)) with two labels, the score alone
    without; each post transform against onnxruntime."""
    x = np.linspace(-2, 2, 9, dtype=np.float32).reshape(-1, 1)
    labels, label_type = _labels_attr(np.random.default_rng(0), n_labels, False)
    attrs = dict(coefficients=[0.7], intercepts=[0.1], post_transform=post, **labels)
    (label, scores), (e_label, e_scores) = _run_both(_classifier("LinearClassifier", attrs, x, label_type), {"X": x})
    if post == "PROBIT" and n_labels:  # onnxruntime writes the first half only
        scores, e_scores = scores.reshape(-1)[:len(x)], e_scores.reshape(-1)[:len(x)]
    assert_close(scores, e_scores, **_tolerance(post))
    np.testing.assert_array_equal(label, e_label)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_linear_classifier_nan_scores():
    """A NaN first score keeps class 0 and a NaN elsewhere never wins, as onnxruntime's strict
    ``>`` scan decides (np.argmax would pick the first NaN)."""
    coef = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 0.5, 0.25]  # inf - inf = NaN where the signs differ
    # scores [inf, NaN, -inf, inf], [NaN, inf, NaN, NaN], [-inf, NaN, inf, -inf], finite
    x = np.array([[np.inf, np.inf], [np.inf, -np.inf], [-np.inf, -np.inf], [0.5, 0.25]], np.float32)
    attrs = dict(coefficients=coef, intercepts=[0.0] * 4, classlabels_ints=[7, 8, 9, 10])
    (label, scores), (e_label, e_scores) = _run_both(_classifier("LinearClassifier", attrs, x, TensorProto.INT64),
                                                     {"X": x})
    assert_close(scores, e_scores)
    np.testing.assert_array_equal(label, e_label)
    np.testing.assert_array_equal(label[:3], [7, 7, 9])


@settings(**FAST)
@given(seed=st.integers(0, 2**32 - 1), targets=st.integers(1, 4), n_bias=st.sampled_from(["all", "none", "one"]),
       features=st.integers(1, 6), batch=st.sampled_from([1, 3, 40]), post=st.sampled_from(POSTS),
       one_d=st.booleans(), extra=st.sampled_from([0, 0, 1, -1]))
def test_linear_regressor(seed, targets, n_bias, features, batch, post, one_d, extra):
    """``extra`` coefficients beyond targets * features (onnxruntime ignores them; one short is refused)."""
    rng = np.random.default_rng(seed)
    extra = max(extra, 1 - targets * features)  # never none at all
    attrs = dict(coefficients=rng.standard_normal(targets * features + extra).astype(np.float32).tolist(),
                 targets=targets, post_transform=post)
    if n_bias != "none":  # a count other than targets is ignored (no intercepts at all)
        attrs["intercepts"] = rng.standard_normal(targets if n_bias == "all" else targets + 1).tolist()
    x = _features_in(rng, batch, features, "float32", one_d=one_d and batch == 1)
    node = helper.make_node("LinearRegressor", ["X"], ["Y"], domain=ML, **attrs)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None] * x.ndim)],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, targets])])
    both = _run_or_refuse(model, {"X": x})
    assert (both is None) == (extra < 0)
    if both:
        assert_close(both[0][0], both[1][0], **_tolerance(post))


def _svm_attrs(rng, classes, per_class, features, kernel, degree, proba, positive=False):
    v = sum(per_class)
    low = 0.0 if positive else -1.0  # all weights >= 0 move liblinear mode's binary threshold to 0.5
    attrs = dict(kernel_type=kernel, kernel_params=[float(np.float32(rng.uniform(0.1, 0.8))),
                                                    float(np.float32(rng.uniform(-1, 1))), float(degree)])
    if per_class:
        attrs.update(vectors_per_class=list(per_class),
                     support_vectors=rng.standard_normal(v * features).astype(np.float32).tolist(),
                     coefficients=rng.uniform(low, 1, (classes - 1) * v).astype(np.float32).tolist(),
                     rho=rng.uniform(-0.5, 0.5, classes * (classes - 1) // 2).astype(np.float32).tolist())
    else:  # liblinear mode: one weight row per class, one bias
        attrs.update(coefficients=rng.uniform(low, 1, classes * features).astype(np.float32).tolist(),
                     rho=[float(np.float32(rng.uniform(-0.5, 0.5)))])
    if proba:
        pairs = classes * (classes - 1) // 2 if per_class else classes
        attrs.update(prob_a=rng.uniform(-3, -0.5, pairs).astype(np.float32).tolist(),
                     prob_b=rng.uniform(-0.5, 0.5, pairs).astype(np.float32).tolist())
    return attrs


@settings(**FAST)
@given(seed=st.integers(0, 2**32 - 1), classes=st.integers(2, 4), vectors=st.integers(0, 3),
       features=st.integers(1, 4), kernel=st.sampled_from(["LINEAR", "POLY", "RBF", "SIGMOID"]),
       degree=st.sampled_from([1, 2, 3]), proba=st.booleans(), post=st.sampled_from(POSTS),
       batch=st.sampled_from([0, 1, 2, 30]), strings=st.booleans(), dtype=st.sampled_from(["float32", "float64"]),
       positive=st.booleans())
def test_svm_classifier(seed, classes, vectors, features, kernel, degree, proba, post, batch, strings, dtype, positive):
    rng = np.random.default_rng(seed)
    per_class = [int(v) for v in rng.integers(1, vectors + 1, classes)] if vectors else []
    labels, label_type = _labels_attr(rng, classes, strings)
    attrs = _svm_attrs(rng, classes, per_class, features, kernel, degree, proba, positive)
    x = _features_in(rng, batch, features, dtype)
    (label, scores), (e_label, e_scores) = _run_both(
        _classifier("SVMClassifier", dict(attrs, post_transform=post, **labels), x, label_type), {"X": x})
    assert scores.shape == e_scores.shape and scores.dtype == e_scores.dtype
    if per_class and classes == 2 and not proba and post == "PROBIT":  # onnxruntime leaves column 1 unwritten
        scores, e_scores = scores[:, :1], e_scores[:, :1]
    assert_close(scores, e_scores, **_tolerance(post))
    # labels come from the signs of the raw pair scores (or the best raw score in liblinear mode):
    # those of the same model without probabilities or transform, from onnxruntime
    raw_attrs = {k: v for k, v in attrs.items() if k not in ("prob_a", "prob_b")}
    (_, raw), = [ort.InferenceSession(_classifier("SVMClassifier", dict(raw_attrs, **labels), x, label_type),
                                      providers=["CPUExecutionProvider"]).run(None, {"X": x})]
    skip = _near_zero(raw) if per_class else _near_tie(raw) | _near_zero(raw - 0.5) | _near_zero(raw)
    _labels_match(label, e_label, skip)


@pytest.mark.parametrize("coefs", [[1.0, 0.5], [1.0, -0.5], [0.2, 0.9], [0.0, 0.0]])
def test_svm_liblinear_binary_threshold(coefs):
    """liblinear mode, two classes: class 1 where the best score is >= 0.5 when every weight is
    >= 0, else > 0; otherwise the best score's class."""
    x = np.linspace(-1.5, 1.5, 31, dtype=np.float32).reshape(-1, 1)
    attrs = dict(coefficients=coefs, rho=[0.0], classlabels_ints=[5, 6], kernel_params=[0.1, 0.0, 3.0])
    (label, scores), (e_label, e_scores) = _run_both(_classifier("SVMClassifier", attrs, x, TensorProto.INT64),
                                                     {"X": x})
    assert_close(scores, e_scores)
    np.testing.assert_array_equal(label, e_label)


@settings(**FAST)
@given(seed=st.integers(0, 2**32 - 1), vectors=st.integers(0, 6), features=st.integers(1, 5),
       kernel=st.sampled_from(["LINEAR", "POLY", "RBF", "SIGMOID"]), degree=st.sampled_from([1, 2, 3]),
       one_class=st.booleans(), post=st.sampled_from(POSTS), batch=st.sampled_from([1, 3, 30]))
def test_svm_regressor(seed, vectors, features, kernel, degree, one_class, post, batch):
    rng = np.random.default_rng(seed)
    attrs = dict(kernel_type=kernel, kernel_params=[float(np.float32(rng.uniform(0.1, 0.8))),
                                                    float(np.float32(rng.uniform(-1, 1))), float(degree)],
                 n_supports=vectors, one_class=int(one_class), post_transform=post,
                 rho=[float(np.float32(rng.uniform(-0.5, 0.5)))])
    if vectors:
        attrs.update(support_vectors=rng.standard_normal(vectors * features).astype(np.float32).tolist(),
                     coefficients=rng.uniform(-1, 1, vectors).astype(np.float32).tolist())
    else:
        attrs["coefficients"] = rng.uniform(-1, 1, features).astype(np.float32).tolist()
    node = helper.make_node("SVMRegressor", ["X"], ["Y"], domain=ML, **attrs)
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, features])],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    x = _features_in(rng, batch, features, "float32")
    (ours,), (theirs,) = _run_both(model, {"X": x})
    if one_class:  # +-1 from the score's sign: compare where the score is not at zero
        raw = ort.InferenceSession(_model([helper.make_node("SVMRegressor", ["X"], ["Y"], domain=ML, **dict(
            attrs, one_class=0))], model and [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, features])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])]),
            providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        keep = ~_near_zero(raw)
        ours, theirs = ours[keep], theirs[keep]
    assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_tree_walk_checks_its_forest_once_and_each_input():
    """_core.TreeWalk: a malformed forest is refused when built, an input narrower than the
    features the trees read on each call; two stumps walked as by hand."""
    from ggonnx import _core
    # tree 0: node 0 tests x[:, 1] <= 0.5 -> leaves 1 / 2; tree 1: node 3 tests x[:, 0] <= 2 -> 4 / 5
    roots, left = np.array([0, 3]), np.array([1, 1, 2, 4, 4, 5])
    feat, thr = np.array([1, 0, 0, 0, 0, 0]), np.array([0.5, 0, 0, 2.0, 0, 0], np.float32)
    is_leaf = np.array([0, 1, 1, 0, 1, 1], np.uint8)
    walk = _core.TreeWalk(roots, left, feat, thr, is_leaf, 0, 2)
    x = np.array([[0.0, 0.0], [3.0, 1.0]], np.float32)
    np.testing.assert_array_equal(walk.leaves(x), [[1, 4], [2, 5]])
    with pytest.raises(ValueError, match="must be"):
        walk.leaves(np.zeros((2, 1), np.float32))
    for bad in (dict(roots=np.array([1, 3])), dict(left=np.array([1, 1, 2, 4, 4, 9])), dict(mode=7)):
        args = dict(roots=roots, left=left, feat=feat, thr=thr, is_leaf=is_leaf, mode=0)
        args.update(bad)
        with pytest.raises(ValueError, match="malformed"):
            _core.TreeWalk(args["roots"], args["left"], args["feat"], args["thr"], args["is_leaf"], args["mode"], 2)
    # sums: the leaves' weights added tree by tree, dense or one target per tree; a NaN input
    # answers None (the caller walks it in numpy)
    w = np.arange(12, dtype=np.float64).reshape(6, 2)
    walk.set_weights(w)
    np.testing.assert_array_equal(walk.sums(x), w[[1, 2]] + w[[4, 5]])
    walk.set_weights(np.arange(6, dtype=np.float64), np.array([1, 0]), 3)
    np.testing.assert_array_equal(walk.sums(x), [[4, 1, 0], [5, 2, 0]])
    assert walk.sums(np.array([[np.nan, 0]], np.float32)) is None
    assert walk.leaves(np.array([[0, np.nan]], np.float32)) is None
    with pytest.raises(ValueError, match="target"):
        walk.set_weights(np.zeros(6), np.array([0, 3]), 3)


_POST_CODES = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2}


@given(rows=st.integers(1, 5), k=st.integers(1, 9), n_base=st.integers(0, 9), post=st.sampled_from(list(_POST_CODES)),
       masked=st.booleans(), f32=st.booleans(), seed=st.integers(0, 2**16), special=st.booleans())
@settings(**FAST)
def test_scores_classify_matches_the_numpy_post_transforms(rows, k, n_base, post, masked, f32, seed, special):
    """_core.scores_classify (host_scores.c) against host_ml's numpy transforms and masked
    argmax, ties, NaN and infinities included."""
    from ggonnx import _core, host_ml
    rng = np.random.default_rng(seed)
    s = rng.integers(-3, 4, (rows, k)).astype(np.float64) * rng.choice([1.0, 0.37, 1e-9], (rows, k))
    if special:
        s.reshape(-1)[rng.integers(0, s.size, 2)] = rng.choice([np.nan, np.inf, -np.inf], 2)
    base = rng.normal(size=min(n_base, k))
    has = rng.integers(0, 2, k).astype(np.uint8) if masked else None
    expected_s = s.copy()
    expected_s[:, :len(base)] += base
    dtype = np.float32 if f32 else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        expected_best = np.argmax(np.where(has if masked else True, expected_s.astype(dtype), -np.inf), axis=1)
        expected = host_ml._TRANSFORMS[post](expected_s.astype(dtype))
    best, probs = _core.scores_classify(s, base if len(base) else None, has, f32, _POST_CODES[post])
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(probs, expected, rtol=2e-6, atol=1e-7)
    assert probs.dtype == np.float32


def test_svc_rows_checks_its_model_once_and_each_input():
    """_core.SvcRows: pairs outside the classes, weights of another shape or an unknown kernel are
    refused when built, an input of another width on each call; a two-vector SVC by hand."""
    from ggonnx import _core
    sv, w = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([[1.0], [-1.0]])
    rows = _core.SvcRows(sv, "LINEAR", 1.0, 0.0, 1.0, w, [0.0], [0], [1], 2)
    best, scores, proba = rows.run(np.array([[2.0, 1.0], [0.0, 3.0]], np.float32))
    np.testing.assert_array_equal(best, [0, 1])     # scores 2 - 1 = 1 > 0: class 0; 0 - 3 < 0: class 1
    np.testing.assert_array_equal(scores, [[1.0], [-3.0]])
    assert proba is None
    with pytest.raises(ValueError, match="must be"):
        rows.run(np.zeros((1, 3), np.float32))
    for bad in (dict(pair_j=[2]), dict(w=np.zeros((3, 1))), dict(kind="CUBIC")):
        args = dict(kind="LINEAR", w=w, pair_j=[1])
        args.update(bad)
        with pytest.raises(ValueError, match="malformed"):
            _core.SvcRows(sv, args["kind"], 1.0, 0.0, 1.0, args["w"], [0.0], [0], args["pair_j"], 2)
