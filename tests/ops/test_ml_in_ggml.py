"""scikit-learn's pipelines as one ggml graph (ggonnx.ops.ml): a classifier's label step (ArgMax /
ArgMin along any axis, NaN and ties as NumPy; ArrayFeatureExtractor of a constant class table at
those indices, cast to int64) and Scaler -> LinearClassifier -> Normalizer, checked against NumPy
and onnxruntime with every node placed in ggml. The host kernels' own tests (test_host_ml*.py)
cover the forms that stay on the host."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

from ._helpers import THREADS, randn, run_graph_placed, seeds, shapes


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 4, max_side=6), op=st.sampled_from(["ArgMax", "ArgMin"]), keepdims=st.integers(0, 1),
       last=st.integers(0, 1), special=st.sampled_from(["none", "ties", "nan"]), axis_pick=st.integers(0, 3),
       seed=seeds)
def test_arg_extreme_in_ggml_matches_numpy(shape, op, keepdims, last, special, axis_pick, seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, shape)
    if special == "ties":   # few distinct values: first / last among equals matters
        x = np.round(x).astype(np.float32)
    elif special == "nan":
        x.reshape(-1)[rng.integers(0, x.size, 1 + x.size // 5)] = np.nan
    axis = axis_pick % len(shape) - (len(shape) if axis_pick >= 2 else 0)   # negative axes too
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=last)
    (got,), where = run_graph_placed([node], {"x": x}, opset=13, out_types={"y": TensorProto.INT64})
    fn = np.argmax if op == "ArgMax" else np.argmin
    want = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis) if last else fn(x, axis=axis)
    if keepdims:
        want = np.expand_dims(want, axis)
    assert where == ["ggml"] and got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def _classifier(classes: np.ndarray) -> bytes:
    """skl2onnx's MLP tail: Softmax, ArgMax, ArrayFeatureExtractor of the classes, Reshape, Cast."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=1),
             helper.make_node("ArgMax", ["p"], ["i"], axis=1),
             helper.make_node("ArrayFeatureExtractor", ["classes", "i"], ["c"], domain="ai.onnx.ml"),
             helper.make_node("Reshape", ["c", "flat"], ["r"]), helper.make_node("Cast", ["r"], ["label"], to=7)]
    w = np.random.default_rng(1).standard_normal((5, len(classes))).astype(np.float32)
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, None),
                               helper.make_tensor_value_info("p", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(classes, "classes"),
                               numpy_helper.from_array(np.array([-1], np.int64), "flat")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()


@settings(max_examples=20, deadline=None)
@given(classes=st.sampled_from([np.arange(3, dtype=np.int32), np.arange(4), np.array([7, 3, 11], np.int64),
                                np.array([2.5, -1.0, 4.0], np.float32)]), batch=st.sampled_from([1, 3, 40]),
       seed=seeds)
def test_classifier_label_step_runs_in_one_ggml_graph(classes, batch, seed):
    if classes.dtype == np.float32:   # a float table: the label output is float
        model = onnx.load_from_string(_classifier(classes))
        model.graph.node[-1].attribute[0].i = TensorProto.FLOAT
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
        data = model.SerializeToString()
    else:
        data = _classifier(classes)
    x = randn(np.random.default_rng(seed), (batch, 5))
    sess = ggonnx.Session(data, threads=THREADS)
    got = sess.run(None, {"x": x})
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert [p.where for p in sess.placement()] == ["ggml"] * 6
    assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_a_class_table_shorter_than_the_indices_runs_on_the_host():
    """Indices proven in [0, 4) never read a table of 3 in ggml: that lookup is the host's, which
    raises the out-of-range index rather than reading past the table."""
    data = onnx.load_from_string(_classifier(np.arange(4)))
    for t in data.graph.initializer:
        if t.name == "classes":
            t.CopyFrom(numpy_helper.from_array(np.array([5, 6, 7], np.int64), "classes"))
    sess = ggonnx.Session(data.SerializeToString(), threads=THREADS)
    x = np.zeros((1, 5), np.float32)
    x[0, 0] = 1.0
    try:
        sess.run(None, {"x": x})
    except ggonnx.GgonnxError:
        pass
    where = {p.op_type: p.where for p in sess.placement()}
    assert where["ArgMax"] == "ggml" and where["ArrayFeatureExtractor"] == "host"


@settings(max_examples=25, deadline=None)
@given(classes=st.integers(2, 5), features=st.integers(1, 6), batch=st.sampled_from([1, 2, 30]),
       post=st.sampled_from(["NONE", "SOFTMAX", "LOGISTIC"]), norm=st.sampled_from(["L1", "L2"]),
       arange_labels=st.booleans(), per_feature=st.booleans(), seed=seeds)
def test_scaler_linear_classifier_normalizer_in_one_ggml_graph(classes, features, batch, post, norm, arange_labels,
                                                               per_feature, seed):
    """skl2onnx's StandardScaler + LogisticRegression: labels equal, scores within float32 rounding
    of onnxruntime's (a GEMM in another summation order)."""
    rng = np.random.default_rng(seed)
    width = features if per_feature else 1
    labels = list(range(classes)) if arange_labels else rng.choice(50, classes, replace=False).tolist()
    scale, offset = rng.uniform(0.5, 2, width).astype(np.float32), rng.uniform(-1, 1, width).astype(np.float32)
    coef, bias = rng.standard_normal((classes, features)).astype(np.float32), rng.standard_normal(classes).astype(np.float32)
    nodes = [helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", scale=scale.tolist(), offset=offset.tolist()),
             helper.make_node("LinearClassifier", ["s"], ["label", "p"], domain="ai.onnx.ml", post_transform=post,
                              coefficients=coef.reshape(-1).tolist(), intercepts=bias.tolist(), classlabels_ints=labels),
             helper.make_node("Normalizer", ["p"], ["probabilities"], domain="ai.onnx.ml", norm=norm)]
    graph = helper.make_graph(nodes, "pipe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, features])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, None),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()
    x = randn(rng, (batch, features))
    if batch > 1:
        x[1] = 0.0   # a row the scaler maps to -offset * scale
    sess = ggonnx.Session(data, threads=THREADS)
    got = sess.run(None, {"x": x})
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert [p.where for p in sess.placement()] == ["ggml"] * 3
    scores = ((x - offset) * scale).astype(np.float64) @ coef.T.astype(np.float64) + bias
    top2 = np.sort(scores, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4   # labels compared where no two scores tie within rounding
    assert got[0].dtype == want[0].dtype == np.int64
    np.testing.assert_array_equal(got[0][clear], want[0][clear])
    # LOGISTIC: onnxruntime's MLAS logistic is ~1 ulp off expf, and its 1 - v for negative scores
    # turns that ulp of v into up to 5e-4 of a small probability (then of the L1-normalized row)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5 if post == "LOGISTIC" else 1e-6)


def test_big_batches_of_few_features_stay_on_the_host_kernels():
    """Above ops.ml.MAX_ROWS rows the host kernels are faster: the plan of that signature places
    the pipeline there, a small batch of the same session in ggml."""
    from ggonnx.ops.ml import MAX_ROWS
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", scale=[2.0], offset=[0.5])
    graph = helper.make_graph([node], "s", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ggonnx.Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("ai.onnx.ml", 1)]))
    for rows, where in ((MAX_ROWS + 1, "host"), (2, "ggml")):
        x = randn(np.random.default_rng(rows), (rows, 3))
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], (x - np.float32(0.5)) * np.float32(2.0))
        assert [p.where for p in sess.placement()] == [where]


@settings(max_examples=40, deadline=None)
@given(shape=shapes(1, 4, max_side=5), n_ids=st.integers(1, 6), seed=seeds)
def test_array_feature_extractor_columns_in_ggml(shape, n_ids, seed):
    """ArrayFeatureExtractor of run-time data at constant indices (skl2onnx's SVC tail picks pair
    scores so): views of consecutive runs, in ggml, as onnxruntime ([1, k] from 1-D data)."""
    rng = np.random.default_rng(seed)
    x = randn(rng, shape)
    ids = rng.integers(0, shape[-1], n_ids).astype(np.int64)
    if rng.integers(0, 2):
        ids = np.sort(ids)  # runs of consecutive columns
    node = helper.make_node("ArrayFeatureExtractor", ["x", "ids"], ["y"], domain="ai.onnx.ml")
    graph = helper.make_graph([node], "afe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(ids, "ids")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    sess = ggonnx.Session(model.SerializeToString(), threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert [p.where for p in sess.placement()] == ["ggml"]
    np.testing.assert_array_equal(got, want)


def _one_hot_model(cats, shape) -> bytes:
    """skl2onnx's integer one-hot encoding: a column Gathered from an int64 input, Cast, encoded."""
    nodes = [helper.make_node("Gather", ["x", "col"], ["c"], axis=1), helper.make_node("Cast", ["c"], ["ci"], to=7),
             helper.make_node("OneHotEncoder", ["ci"], ["y"], domain="ai.onnx.ml", cats_int64s=list(cats), zeros=1)]
    graph = helper.make_graph(nodes, "ohe", [helper.make_tensor_value_info("x", TensorProto.INT64, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([1], np.int64), "col")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()


@settings(max_examples=40, deadline=None)
@given(n_cats=st.integers(1, 6), batch=st.integers(1, 8), seed=seeds)
def test_one_hot_encoder_of_integer_columns_in_ggml(n_cats, batch, seed):
    """A Gathered int64 column one-hot encoded in ggml (the values enter as the floats equal to
    them): unknown values give zero rows, as onnxruntime."""
    rng = np.random.default_rng(seed)
    cats = rng.choice(np.arange(-20, 20), n_cats, replace=False)
    x = rng.integers(-25, 25, (batch, 3)).astype(np.int64)
    model = _one_hot_model(cats, [None, 3])
    sess = ggonnx.Session(model, threads=THREADS)
    got = sess.run(None, {"x": x})[0]
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert [p.where for p in sess.placement()] == ["ggml"] * 3
    np.testing.assert_array_equal(got, want)


def test_integers_float32_cannot_hold_plan_again_on_the_host():
    """A plan that holds an int64 input in ggml as floats meets values beyond 2**24 (where
    float32 would round 2**24 + 1 onto the category 2**24): that run plans again on the host and
    answers exactly; the signature keeps the host plan."""
    model = _one_hot_model([2**24, 5], [None, 3])
    sess = ggonnx.Session(model, threads=THREADS)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    small = np.array([[0, 5, 1]], np.int64)
    np.testing.assert_array_equal(sess.run(None, {"x": small})[0], [[[0, 1]]])
    assert [p.where for p in sess.placement()] == ["ggml"] * 3
    big = np.array([[0, 2**24 + 1, 1]], np.int64)   # the same signature as the plan's
    np.testing.assert_array_equal(sess.run(None, {"x": big})[0], ref.run(None, {"x": big})[0])
    assert ref.run(None, {"x": big})[0].tolist() == [[[0, 0]]]
    assert [p.where for p in sess.placement()] == ["host"] * 3
    again = np.array([[7, 2**40, 7]], np.int64)
    np.testing.assert_array_equal(sess.run(None, {"x": again})[0], [[[0, 0]]])
    np.testing.assert_array_equal(sess.run(None, {"x": small})[0], [[[0, 1]]])
