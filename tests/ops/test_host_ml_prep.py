"""Our feature-preparation ONNX-ML kernels (ggonnx.host_ml_prep) against onnxruntime: random
one-node models built with onnx.helper (hypothesis). Where onnxruntime refuses a model or an
input, ggonnx must refuse it too."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

from .test_host_ml import FAST, ML, _model, _run_or_refuse, assert_close

TYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64,
         "int32": TensorProto.INT32, "str": TensorProto.STRING}
GRID = np.arange(-4, 5) * 0.5  # shared by inputs and attributes: equal values, exact hits


def _one(op, x, out_type, attrs, out_rank=None, extra_inputs=(), ml_opset=3, opset=17):
    """A one-node model reading X (and extra (name, array) inputs) and writing Y."""
    ins = [("X", x), *extra_inputs]
    node = helper.make_node(op, [n for n, _ in ins], ["Y"], domain=ML, **attrs)
    return _model([node], [helper.make_tensor_value_info(n, TYPES[_kind(a)], [None] * a.ndim) for n, a in ins],
                  [helper.make_tensor_value_info("Y", out_type, [None] * (x.ndim if out_rank is None else out_rank))],
                  ml_opset=ml_opset, opset=opset)


def _kind(a):
    return "str" if a.dtype == object else str(a.dtype)


def _check(model, feeds, **tol):
    """Same outputs (dtype, shape, values) or both refused; returns whether it ran."""
    both = _run_or_refuse(model, feeds)
    if both is None:
        return False
    for a, e in zip(*both):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype, (a.dtype, e.dtype)
        assert_close(a, e, **tol)
    return True


def _grid_array(rng, shape, dtype, nan=0.0):
    if dtype == "str":
        return rng.choice(np.array([f"s{i}" for i in range(6)], dtype=object), shape)
    if dtype in ("int64", "int32"):
        return rng.integers(-4, 5, shape).astype(dtype)
    x = rng.choice(GRID, shape).astype(dtype)
    x += np.where(rng.random(shape) < 0.5, 0, rng.standard_normal(shape) * 0.1).astype(dtype)
    x[rng.random(shape) < nan] = np.nan
    return x


shapes_1_2 = st.sampled_from([(1,), (5,), (1, 4), (7, 3), (20, 1)])
seeds = st.integers(0, 2**32 - 1)


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(5,), (1, 4), (7, 3), (3, 2, 4)]), n=st.sampled_from(["feature", "one", "bad"]),
       dtype=st.sampled_from(["float32", "float64", "int64", "int32"]))
def test_scaler(seed, shape, n, dtype):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, dtype, nan=0.1)
    width = {"feature": shape[0] if len(shape) == 1 else shape[1], "one": 1, "bad": 7}[n]
    attrs = dict(scale=rng.uniform(-2, 2, width).tolist(), offset=rng.uniform(-1, 1, width).tolist())
    assert _check(_one("Scaler", x, TensorProto.FLOAT, attrs), {"X": x}) or n == "bad"


@settings(**FAST)
@given(seed=seeds, shape=shapes_1_2, norm=st.sampled_from(["MAX", "L1", "L2"]),
       dtype=st.sampled_from(["float32", "float64", "int64", "int32"]), zero_rows=st.booleans())
def test_normalizer(seed, shape, norm, dtype, zero_rows):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, dtype, nan=0.05)
    if zero_rows and x.ndim == 2:
        x[::2] = 0
    assert _check(_one("Normalizer", x, TensorProto.FLOAT, dict(norm=norm)), {"X": x}, rtol=1e-5, atol=1e-6)


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(5,), (7, 3), (2, 3, 2)]), threshold=st.sampled_from(list(GRID) + [None]),
       nan=st.sampled_from([0.0, 0.0, 0.2]))
def test_binarizer(seed, shape, threshold, nan):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, "float32", nan=nan)
    attrs = {} if threshold is None else dict(threshold=float(threshold))
    ran = _check(_one("Binarizer", x, TensorProto.FLOAT, attrs), {"X": x})
    assert ran == (not np.isnan(x).any())  # a NaN is an error in both


@settings(**FAST)
@given(seed=seeds, shape=shapes_1_2, dtype=st.sampled_from(["float32", "int64"]),
       n=st.sampled_from(["feature", "one", "other"]), replaced=st.sampled_from(["nan", "grid", "absent"]))
def test_imputer(seed, shape, dtype, n, replaced):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, dtype, nan=0.2)
    width = {"feature": shape[0] if len(shape) == 1 else shape[1], "one": 1, "other": 2}[n]
    if dtype == "float32":
        attrs = dict(imputed_value_floats=rng.uniform(-9, 9, width).tolist())
        if replaced != "absent":  # absent: the default 0
            attrs["replaced_value_float"] = float("nan") if replaced == "nan" else float(rng.choice(GRID))
    else:
        attrs = dict(imputed_value_int64s=[int(v) for v in rng.integers(-99, 99, width)])
        if replaced != "absent":
            attrs["replaced_value_int64"] = int(rng.integers(-4, 5))
    _check(_one("Imputer", x, TYPES[dtype], attrs), {"X": x})


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(1,), (6,), (5, 1), (4, 3)]),
       dtype=st.sampled_from(["int64", "float32", "float64", "str"]), zeros=st.sampled_from([1, 1, 0]),
       known=st.booleans())
def test_one_hot_encoder(seed, shape, dtype, zeros, known):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, dtype) * (3 if dtype[0] == "f" else 1) if dtype != "str" else _grid_array(rng, shape, "str")
    if dtype == "str":
        cats = dict(cats_strings=[f"s{i}" for i in rng.choice(6, 4 if not known else 6)] + ["s2"])
    else:
        cats = dict(cats_int64s=[int(v) for v in rng.choice(np.arange(-12, 13), 10 if not known else 25, replace=known)])
    if known and dtype != "str":
        cats = dict(cats_int64s=list(range(-12, 13)) + [0])  # every value known (a repeated category too)
    _check(_one("OneHotEncoder", x, TensorProto.FLOAT, dict(zeros=zeros, **cats), out_rank=x.ndim + 1), {"X": x})


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(5,), (1, 4), (6, 3), (2, 3, 4)]),
       dtype=st.sampled_from(["float32", "float64", "int64", "int32", "str"]), k=st.integers(1, 4),
       index_shape=st.sampled_from(["flat", "row"]), bad=st.sampled_from([False, False, False, True]))
def test_array_feature_extractor(seed, shape, dtype, k, index_shape, bad):
    rng = np.random.default_rng(seed)
    x = _grid_array(rng, shape, dtype)
    idx = rng.integers(0, shape[-1] + (2 if bad else 0), k).astype(np.int64)
    idx = idx.reshape(1, -1) if index_shape == "row" else idx
    out_rank = 2 if x.ndim == 1 else x.ndim
    ran = _check(_one("ArrayFeatureExtractor", x, TYPES[dtype], {}, out_rank=out_rank, extra_inputs=[("I", idx)]),
                 {"X": x, "I": idx})
    assert ran == (idx.max() < shape[-1])


# -- LabelEncoder and CategoryMapper --------------------------------------------------------

_KEYS = {"str": lambda rng, n: [f"s{i}" for i in rng.integers(0, 6, n)],
         "int64": lambda rng, n: [int(v) for v in rng.integers(-4, 5, n)],
         "float32": lambda rng, n: [float(v) for v in rng.choice(np.append(GRID, np.nan), n)]}
_FIELD = {"str": "strings", "int64": "int64s", "float32": "floats"}
_DEFAULT = {"str": ("default_string", "zz"), "int64": ("default_int64", 77), "float32": ("default_float", 2.5)}


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(1,), (7,), (3, 4)]), key=st.sampled_from(list(_KEYS)),
       value=st.sampled_from(list(_KEYS)), n=st.integers(1, 8), default=st.booleans(), ml_opset=st.sampled_from([2, 4]))
def test_label_encoder(seed, shape, key, value, n, default, ml_opset):
    rng = np.random.default_rng(seed)
    attrs = {f"keys_{_FIELD[key]}": _KEYS[key](rng, n), f"values_{_FIELD[value]}": _KEYS[value](rng, n)}
    if value == "float32":
        attrs["values_floats"] = [v if v == v else 1.25 for v in attrs["values_floats"]]
    if default:
        attrs[_DEFAULT[value][0]] = _DEFAULT[value][1]
    x = _grid_array(rng, shape, key, nan=0.1 if key == "float32" else 0)
    _check(_one("LabelEncoder", x, TYPES[value], attrs, ml_opset=ml_opset, opset=21 if ml_opset == 4 else 17), {"X": x})


@settings(**FAST)
@given(seed=seeds, shape=st.sampled_from([(1,), (7,), (3, 4)]), to_int=st.booleans(), n=st.integers(1, 6),
       defaults=st.booleans())
def test_label_encoder_v1_and_category_mapper(seed, shape, to_int, n, defaults):
    rng = np.random.default_rng(seed)
    classes = _KEYS["str"](rng, n)
    x = _grid_array(rng, shape, "str") if to_int else rng.integers(-1, 7, shape).astype(np.int64)
    out = TensorProto.INT64 if to_int else TensorProto.STRING
    extra = dict(default_string="zz", default_int64=42) if defaults else {}
    _check(_one("LabelEncoder", x, out, dict(classes_strings=classes, **extra), ml_opset=1), {"X": x})
    ints = [int(v) for v in rng.integers(-1, 7, n)]
    _check(_one("CategoryMapper", x, out, dict(cats_strings=classes, cats_int64s=ints, **extra)), {"X": x})


# -- maps -------------------------------------------------------------------------------------

def _map_model(op, key, value, attrs, out_type):
    mt = helper.make_map_type_proto(key, helper.make_tensor_type_proto(value, []))
    node = helper.make_node(op, ["X"], ["Y"], domain=ML, **attrs)
    return _model([node], [helper.make_value_info("X", mt)], [helper.make_tensor_value_info("Y", out_type, [1, None])])


@settings(**FAST)
@given(seed=seeds, n=st.integers(1, 6), to=st.sampled_from(["TO_FLOAT", "TO_INT64", "TO_STRING"]),
       form=st.sampled_from(["DENSE", "SPARSE"]), max_map=st.integers(1, 9))
def test_cast_map(seed, n, to, form, max_map):
    rng = np.random.default_rng(seed)
    x = {int(k): float(np.float32(v)) for k, v in zip(rng.choice(12, n, replace=False), rng.uniform(-50, 50, n))}
    out = {"TO_FLOAT": TensorProto.FLOAT, "TO_INT64": TensorProto.INT64, "TO_STRING": TensorProto.STRING}[to]
    attrs = dict(cast_to=to, map_form=form, max_map=max_map)  # onnxruntime's Python API feeds no empty map
    assert _check(_map_model("CastMap", TensorProto.INT64, TensorProto.FLOAT, attrs, out), {"X": x})


@settings(**FAST)
@given(seed=seeds, n=st.integers(1, 6), strings=st.booleans())
def test_dict_vectorizer(seed, n, strings):
    """map(string, float) and map(int64, float): the maps onnxruntime's Python API can feed."""
    rng = np.random.default_rng(seed)
    pool = [f"k{i}" for i in range(8)] if strings else list(range(-3, 5))
    keys = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
    values = [float(np.float32(v)) for v in rng.uniform(-5, 5, n)]
    vocab = [pool[i] for i in rng.choice(len(pool), 5, replace=False)]
    attrs = dict(string_vocabulary=vocab) if strings else dict(int64_vocabulary=vocab)
    key_type = TensorProto.STRING if strings else TensorProto.INT64
    assert _check(_map_model("DictVectorizer", key_type, TensorProto.FLOAT, attrs, TensorProto.FLOAT),
                  {"X": dict(zip(keys, values))})


@settings(**FAST)
@given(seed=seeds, batch=st.sampled_from([1, 4]), dtype=st.sampled_from(["float32", "float64", "int64", "int32"]),
       parts=st.lists(st.tuples(st.integers(1, 4), st.integers(-2, 2)), min_size=1, max_size=3), one_d=st.booleans())
def test_feature_vectorizer(seed, batch, dtype, parts, one_d):
    rng = np.random.default_rng(seed)
    xs = [_grid_array(rng, (batch, w), dtype) for w, _ in parts]  # the op takes one input type
    if one_d and batch == 1:
        xs = [x[0] for x in xs]
    dims = [max(1, w + d) for w, d in parts]  # cut, exact or zero-padded
    names = [f"X{i}" for i in range(len(xs))]
    node = helper.make_node("FeatureVectorizer", names, ["Y"], domain=ML, inputdimensions=dims)
    model = _model([node], [helper.make_tensor_value_info(n, TYPES[str(x.dtype)], [None] * x.ndim)
                            for n, x in zip(names, xs)],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, sum(dims)])])
    assert _check(model, dict(zip(names, xs)))
