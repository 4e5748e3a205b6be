"""Host kernels for ONNX-ML's feature-preparation operators (Scaler, Normalizer, Binarizer,
Imputer, OneHotEncoder, ArrayFeatureExtractor, LabelEncoder, CategoryMapper, CastMap,
DictVectorizer, FeatureVectorizer), vectorized with numpy; onnx.reference loops over elements
in Python for several (OneHotEncoder: 5 ms for 6 one-column encoders at batch 1,000) and has
no CastMap or CategoryMapper.

onnxruntime's CPU kernels are the spec: their dtypes, defaults, errors and layouts (flat
``i % stride`` indexing for per-feature attributes, a 1-D input as one row).
"""
from __future__ import annotations

import re

import numpy as np

from ggonnx.errors import InvalidGraph, InvalidInputError, ShapeError
from ggonnx.host_ml import _F32, _cached, _row_reduce

_OBJ = np.dtype(object)
_LOWEST = np.finfo(_F32).min


def _per_feature(node, x, values, what: str):
    """``values`` broadcast along the feature axis (x.shape[1], x.shape[0] for 1-D) the way
    onnxruntime indexes them (flat index modulo that length), or its single value."""
    if x.ndim == 0:
        raise ShapeError(f"{node.describe()}: input must have at least one dimension")
    stride = x.shape[0] if x.ndim == 1 else x.shape[1]
    if len(values) == stride:
        return values, stride
    if len(values) == 1 or what == "imputed":  # the Imputer uses the first value unless one per feature
        return values[:1], 1
    raise ShapeError(f"{node.describe()}: {what} has {len(values)} values; the input {list(x.shape)} needs "
                     f"{stride} (one per feature) or 1")


def _by_feature(x, stride):
    return x.reshape(-1, stride) if stride > 1 and x.size else x.reshape(-1, 1)


def scaler(node, x):
    """(x - offset) * scale as float32; a double input is computed in double and rounded once."""
    def build():
        scale = np.asarray(node.attrs.get("scale", []), np.float64).astype(_F32)
        offset = np.asarray(node.attrs.get("offset", []), np.float64).astype(_F32)
        if not len(scale) or len(scale) != len(offset):
            raise InvalidGraph(f"{node.describe()}: scale ({len(scale)}) and offset ({len(offset)}) must be non-empty "
                               f"and of one length")
        return scale, offset
    scale, offset = _cached(node, "scaler", build)
    x = np.asarray(x)
    _, stride = _per_feature(node, x, scale, "scale")
    if x.dtype == np.float64:
        scale, offset = scale.astype(np.float64), offset.astype(np.float64)
    else:
        x = x.astype(_F32, copy=False)
    y = x - offset[0] if stride == 1 else _by_feature(x, stride) - offset
    y *= scale[0] if stride == 1 else scale
    return [y.astype(_F32, copy=False).reshape(x.shape)]


def normalizer(node, x):
    """Rows scaled by their MAX, L1 or L2 norm in float32 (a zero norm leaves the row as is).
    MAX is the largest value, as onnxruntime reads the spec's max(x_i); onnx.reference (and
    scikit-learn's Normalizer('max')) divide by the largest magnitude instead."""
    norm = node.attrs.get("norm", "MAX")
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ShapeError(f"{node.describe()}: input must be 1-D or 2-D, got shape {list(x.shape)}")
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    xf = rows.astype(_F32, copy=False)
    if norm == "MAX":  # std::max from the lowest float: NaNs are passed over
        d = np.fmax(_row_reduce(np.fmax, xf), _LOWEST) if xf.size else np.full((len(xf), 1), _LOWEST)
        num = xf
    elif norm == "L1":
        num = xf
        d = _row_reduce(np.add, np.abs(rows).astype(_F32, copy=False))
    elif norm == "L2":
        num = (rows * rows).astype(_F32, copy=False)  # squared in the input's type, as onnxruntime
        d = _row_reduce(np.add, num)
    else:
        raise InvalidGraph(f"{node.describe()}: unknown norm '{norm}'")
    zero = np.count_nonzero(d) < d.size
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is replaced below, inf / inf is NaN
        y = num / d
    if norm == "L2":
        np.sqrt(y, out=y)
        y = np.where(rows < 0, -y, y)
    if zero:  # a zero norm: the row as it came (as float32)
        y = np.where(d != 0, y, xf)
    return [y.reshape(x.shape)]


def binarizer(node, x):
    """1 where x > threshold, else 0, in x's dtype; a NaN is an error, as in onnxruntime."""
    x = np.asarray(x)
    threshold = _F32(node.attrs.get("threshold", 0.0))
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise InvalidInputError(f"{node.describe()}: input {list(x.shape)} has a NaN at flat index "
                                f"{int(np.flatnonzero(np.isnan(x))[0])}")
    return [(x > threshold).astype(x.dtype)]


def imputer(node, x):
    """Values equal to the replaced value (NaN matching NaN) become the imputed ones, per
    feature when there is one per feature, else the first."""
    floats, ints = node.attrs.get("imputed_value_floats", []), node.attrs.get("imputed_value_int64s", [])
    if bool(len(floats)) == bool(len(ints)):
        raise InvalidGraph(f"{node.describe()}: needs imputed_value_floats or imputed_value_int64s, not both")
    x = np.asarray(x)
    if x.dtype.kind == "f":
        values, replaced = np.asarray(floats, np.float64).astype(_F32), _F32(node.attrs.get("replaced_value_float", 0))
    elif x.dtype.kind in "iu":
        values, replaced = np.asarray(ints, np.int64), np.int64(node.attrs.get("replaced_value_int64", 0))
    else:
        raise InvalidInputError(f"{node.describe()}: input of dtype {x.dtype} (float or int64 expected)")
    if not len(values):
        raise InvalidInputError(f"{node.describe()}: no imputed values for a {x.dtype} input")
    values, stride = _per_feature(node, x, values, "imputed")
    values = values.astype(x.dtype)
    rows = _by_feature(x, stride)
    hit = rows == replaced
    if x.dtype.kind == "f" and np.isnan(replaced):
        hit = np.isnan(rows)
    return [np.where(hit, values, rows).reshape(x.shape)]


# -- lookups -----------------------------------------------------------------------------------

class _Lookup:
    """keys -> values, numbers through a sorted search, strings through a dict."""

    def __init__(self, keys, values, first_wins: bool, nan_key: bool = False):
        keys, values = list(keys), list(values)
        if first_wins:  # onnxruntime's emplace keeps a repeated key's first value
            keys, values = keys[::-1], values[::-1]
        self.strings = bool(keys) and isinstance(keys[0], str)
        self.values = np.array(values, dtype=object) if values and isinstance(values[0], str) else np.asarray(values)
        if self.strings:
            self.table = {k: i for i, k in enumerate(keys)}  # the last assignment wins
            return
        k = np.asarray(keys)
        self.nan_at = -1
        if k.dtype.kind == "f":
            nan = np.flatnonzero(np.isnan(k))
            if nan_key and len(nan):
                self.nan_at = int(nan[-1])
            keep = ~np.isnan(k)
            k, idx = k[keep], np.flatnonzero(keep)
        else:
            idx = np.arange(len(k))
        rev = np.arange(len(k))[::-1]  # the last of each run of equal keys: its latest assignment
        _, first = np.unique(k[rev], return_index=True)
        last = rev[first]
        self.sorted_keys, self.at = k[last], idx[last]
        self.dense = None
        if k.dtype.kind in "iu" and len(k) and -2**62 < k.min() and k.max() < 2**62 and \
                k.max() - k.min() < max(64, 4 * len(k)):
            # integers over a short range: one table read, -1 on both sides for misses
            self.lo = int(k.min()) - 1
            self.dense = np.full(int(k.max()) - self.lo + 2, -1, np.intp)
            self.dense[self.sorted_keys - self.lo] = self.at

    def index(self, x):
        """The position in ``values`` of each element of ``x``, -1 where absent."""
        if self.strings:
            get = self.table.get
            flat = [get(v, -1) if isinstance(v, str) else -1 for v in x.reshape(-1).tolist()]
            return np.asarray(flat, np.intp).reshape(x.shape)
        if self.dense is not None and x.dtype.kind == "i":
            at = np.maximum(x.astype(np.int64, copy=False), self.lo)  # (np.clip's wrapper costs more)
            np.minimum(at, self.lo + len(self.dense) - 1, out=at)
            at -= self.lo
            return self.dense.take(at)
        if not len(self.sorted_keys):
            pos = np.full(x.shape, -1, np.intp)
        else:
            if x.dtype.kind in "OUS":
                x = x.astype(self.sorted_keys.dtype)
            j = np.minimum(np.searchsorted(self.sorted_keys, x), len(self.sorted_keys) - 1)
            pos = np.where(self.sorted_keys[j] == x, self.at[j], -1)
        if self.nan_at >= 0 and x.dtype.kind == "f":
            pos = np.where(np.isnan(x), self.nan_at, pos)
        return pos

    def map(self, x, default, dtype):
        pos = self.index(x)
        table = np.append(self.values.astype(dtype), np.array([default], dtype))
        return table[pos]  # -1 reads the default appended last


def one_hot_encoder(node, x):
    """[..., categories] float32 with a one at each input's category; numbers are truncated to
    int64 first (onnxruntime's static_cast); an unknown value is all zeros, or an error with
    zeros=0."""
    def build():
        ints, strings = node.attrs.get("cats_int64s", []), node.attrs.get("cats_strings", [])
        if bool(len(ints)) == bool(len(strings)):
            raise InvalidGraph(f"{node.describe()}: needs cats_int64s or cats_strings, not both")
        cats = list(strings) if len(strings) else [int(v) for v in ints]
        # rows of the output by category, and a zero row last for unknown values (index -1)
        rows = np.concatenate([np.eye(len(cats), dtype=_F32), np.zeros((1, len(cats)), _F32)])
        return _Lookup(cats, range(len(cats)), first_wins=False), rows
    lookup, rows = _cached(node, "one_hot", build)
    x = np.asarray(x)
    if x.ndim > 2:
        raise ShapeError(f"{node.describe()}: input must have rank 2 or less, got shape {list(x.shape)}")
    if lookup.strings != (x.dtype == _OBJ or x.dtype.kind in "US"):
        raise InvalidInputError(f"{node.describe()}: a {x.dtype} input for {'string' if lookup.strings else 'int64'} "
                                f"categories")
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            x = x.astype(np.int64)  # truncation toward zero; NaN reads as INT64_MIN as on x86
    pos = lookup.index(x)
    if not int(node.attrs.get("zeros", 1)) and (pos < 0).any():
        raise InvalidInputError(f"{node.describe()}: unknown category and zeros = 0")
    return [rows.take(pos, axis=0)]


def array_feature_extractor(node, x, y):
    """x's last axis at indices y (flattened); a 1-D x gives [1, len(y)], as onnxruntime."""
    x, flat = np.asarray(x), np.asarray(y).reshape(-1)
    if x.ndim == 0 or flat.dtype.kind not in "iu":
        raise ShapeError(f"{node.describe()}: needs an input of rank 1 or more ({list(x.shape)}) and integer indices")
    # one index (skl2onnx's label and column picks) checked as a Python int: ~2 us less a call
    bad = not 0 <= int(flat[0]) < x.shape[-1] if flat.size == 1 else \
        not flat.size or flat.max() >= x.shape[-1] or flat.min() < 0
    if bad:
        raise InvalidInputError(f"{node.describe()}: indices {flat.tolist()[:8]} (none, or out of range) for the "
                                f"last axis of {list(x.shape)}")
    out = x.take(flat, axis=-1)
    return [out.reshape(1, -1) if x.ndim == 1 else out]


_STRING, _INT, _FLOAT, _DOUBLE = _OBJ, np.dtype(np.int64), np.dtype(_F32), np.dtype(np.float64)


def _tensor_attr(node, name):
    t = node.attrs.get(name)
    return None if t is None else np.asarray(t)


def _label_encoder_model(node):
    a = node.attrs
    if node.opset < 2:  # classes_strings: string -> its index, int64 -> its class
        classes = list(a.get("classes_strings", []))
        m = type("LabelEncoder1", (), {})()
        m.to_int = _Lookup(classes, range(len(classes)), first_wins=False)
        m.to_str = _Lookup(list(range(len(classes))), classes, first_wins=False)
        m.default_int, m.default_str = int(a.get("default_int64", -1)), a.get("default_string", "_Unused")
        return m
    keys = vals = None
    for name, dtype in (("keys_strings", _STRING), ("keys_int64s", _INT), ("keys_floats", _FLOAT)):
        if name in a:
            keys, key_type = list(a[name]), dtype
    for name, dtype in (("values_strings", _STRING), ("values_int64s", _INT), ("values_floats", _FLOAT)):
        if name in a:
            vals, val_type = list(a[name]), dtype
    if keys is None and _tensor_attr(node, "keys_tensor") is not None:
        t = _tensor_attr(node, "keys_tensor").reshape(-1)
        keys, key_type = t.tolist(), _STRING if t.dtype.kind in "OUS" else t.dtype
    if vals is None and _tensor_attr(node, "values_tensor") is not None:
        t = _tensor_attr(node, "values_tensor").reshape(-1)
        vals, val_type = t.tolist(), _STRING if t.dtype.kind in "OUS" else t.dtype
    if keys is None or vals is None or len(keys) != len(vals):
        raise InvalidGraph(f"{node.describe()}: needs keys and values of one length")
    if key_type.kind == "f":
        keys = [float(np.asarray(k, key_type)) for k in keys]
    m = type("LabelEncoder", (), {})()
    # opset 4 matches NaN keys (onnxruntime's NaNEqual); before that NaN never matches
    m.lookup = _Lookup(keys, vals, first_wins=True, nan_key=node.opset >= 4)
    m.key_type, m.val_type = key_type, val_type
    default_tensor = _tensor_attr(node, "default_tensor")
    if default_tensor is not None and node.opset >= 4:
        m.default = default_tensor.reshape(-1)[0]
    elif val_type == _STRING:
        m.default = a.get("default_string", "_Unused")
    elif val_type.kind in "iu":
        m.default = int(a.get("default_int64", -1))
    else:  # onnxruntime's opset-4 kernels default int64/string -> float to 0, float -> float to -0
        zero = 0.0 if node.opset >= 4 and key_type in (_INT, _STRING) else -0.0
        m.default = float(a.get("default_float", zero))
    return m


def label_encoder(node, x):
    m = _cached(node, "label_encoder", lambda: _label_encoder_model(node))
    x = np.asarray(x)
    if node.opset < 2:
        if x.dtype == _OBJ or x.dtype.kind in "US":
            return [m.to_int.map(x.astype(object), m.default_int, _INT)]
        return [m.to_str.map(x.astype(np.int64), m.default_str, _STRING)]
    if (x.dtype == _OBJ or x.dtype.kind in "US") != (m.key_type == _STRING):
        raise InvalidInputError(f"{node.describe()}: a {x.dtype} input for keys of type {m.key_type}")
    return [m.lookup.map(x if x.dtype.kind in "iuf" else x.astype(object), m.default, m.val_type)]


def category_mapper(node, x):
    """Strings to int64 and int64 to strings through cats_strings / cats_int64s (a repeated
    entry: its last pairing)."""
    def build():
        strings, ints = list(node.attrs.get("cats_strings", [])), [int(v) for v in node.attrs.get("cats_int64s", [])]
        if len(strings) != len(ints):
            raise InvalidGraph(f"{node.describe()}: cats_strings and cats_int64s must have one length")
        return _Lookup(strings, ints, first_wins=False), _Lookup(ints, strings, first_wins=False)
    to_int, to_str = _cached(node, "category_mapper", build)
    x = np.asarray(x)
    if x.dtype == _OBJ or x.dtype.kind in "US":
        return [to_int.map(x.astype(object), int(node.attrs.get("default_int64", -1)), _INT)]
    if x.dtype.kind not in "iu":
        raise InvalidInputError(f"{node.describe()}: input of dtype {x.dtype} (string or int64 expected)")
    return [to_str.map(x.astype(np.int64), node.attrs.get("default_string", "_Unused"), _STRING)]


# -- maps -------------------------------------------------------------------------------------

_STOF = re.compile(r"\s*[+-]?(?:inf(?:inity)?|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", re.IGNORECASE)
_STOLL = re.compile(r"\s*[+-]?\d+")


def _stof(node, s):
    m = _STOF.match(s)  # std::stof: the longest leading number
    if not m:
        raise InvalidInputError(f"{node.describe()}: cannot convert {s!r} to float")
    return float(m.group())


def _stoll(node, s):
    m = _STOLL.match(s)
    if not m or not -2**63 <= int(m.group()) < 2**63:
        raise InvalidInputError(f"{node.describe()}: cannot convert {s!r} to int64")
    return int(m.group())


def cast_map(node, x):
    """A map {int64: string or float} to a [1, n] tensor: DENSE in key order, or SPARSE over
    keys 0 .. max_map-1 with a pad value (0, or "0.f" for strings, as onnxruntime)."""
    if not isinstance(x, dict):
        raise InvalidInputError(f"{node.describe()}: expects a map, got {type(x).__name__}")
    to = node.attrs.get("cast_to", "TO_FLOAT")
    form = node.attrs.get("map_form", "DENSE")
    max_map = int(node.attrs.get("max_map", 1))
    if to not in ("TO_FLOAT", "TO_STRING", "TO_INT64") or form not in ("DENSE", "SPARSE") or \
            (form == "SPARSE" and max_map <= 0):
        raise InvalidGraph(f"{node.describe()}: cast_to '{to}', map_form '{form}', max_map {max_map}")
    items = sorted(x.items())
    if form == "SPARSE":
        if items and items[0][0] < 0:
            raise InvalidInputError(f"{node.describe()}: negative key {items[0][0]} in a SPARSE map")
        items = [kv for kv in items if kv[0] < max_map]
    keys, values = [k for k, _ in items], [v for _, v in items]
    if values and isinstance(values[0], str):
        if to == "TO_FLOAT":
            values = np.array([_stof(node, v) for v in values], _F32)
        elif to == "TO_INT64":
            values = np.array([_stoll(node, v) for v in values], np.int64)
        else:
            values = np.array(values, _OBJ)
    else:
        values = np.array(values, np.float64).astype(_F32)
        if to == "TO_INT64":
            with np.errstate(invalid="ignore"):
                values = values.astype(np.int64)  # static_cast: truncation, NaN as INT64_MIN
        elif to == "TO_STRING":
            values = np.array(["%f" % v for v in values.tolist()], _OBJ)  # std::to_string
    if form == "DENSE":
        return [values.reshape(1, -1)]
    dtype = {"TO_FLOAT": _F32, "TO_INT64": np.int64, "TO_STRING": _OBJ}[to]
    out = np.full(max_map, "0.f" if to == "TO_STRING" else 0, dtype)
    out[np.asarray(keys, np.int64)] = values
    return [out.reshape(1, -1)]


def _map_value_dtype(values):
    """A map's value type from its Python values (the kernel never sees the declared type):
    strings, integers as int64, np.float64 as double, other floats as float32 (skl2onnx's
    map(string, float))."""
    if not values:
        return _F32
    v = values[0]
    if isinstance(v, str):
        return _OBJ
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return np.int64
    return np.float64 if isinstance(v, np.float64) else _F32


def dict_vectorizer(node, x):
    """A map to [1, vocabulary] in vocabulary order, a missing key as 0 (or "")."""
    if not isinstance(x, dict):
        return None  # a sequence of maps: onnxruntime takes one map; left to onnx.reference
    vocab = node.attrs.get("string_vocabulary") or [int(v) for v in node.attrs.get("int64_vocabulary", [])]
    if not vocab:
        raise InvalidGraph(f"{node.describe()}: needs string_vocabulary or int64_vocabulary")
    dtype = _map_value_dtype(list(x.values()))
    zero = "" if dtype == _OBJ else 0
    return [np.array([x.get(k, zero) for k in vocab], dtype=dtype).reshape(1, -1)]


def feature_vectorizer(node, *xs):
    """Inputs side by side as float32 [N, sum(inputdimensions)]: each input's row cut or
    zero-padded to its dimension."""
    dims = [int(d) for d in node.attrs.get("inputdimensions", [])]
    if len(dims) != len(xs) or any(d < 0 for d in dims):
        raise InvalidGraph(f"{node.describe()}: inputdimensions {dims} for {len(xs)} inputs")
    xs = [np.asarray(x) for x in xs]
    if any(x.ndim == 0 for x in xs):
        raise ShapeError(f"{node.describe()}: inputs must have at least one dimension")
    n = 1 if xs[0].ndim == 1 else xs[0].shape[0]
    out = np.zeros((n, sum(dims)), _F32)
    at = 0
    for x, d in zip(xs, dims):
        rows = x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)
        if len(rows) != n:
            raise ShapeError(f"{node.describe()}: inputs of {n} and {len(rows)} rows")
        w = min(d, rows.shape[1])
        out[:, at:at + w] = rows[:, :w]
        at += d
    return [out]


KERNELS = {("ai.onnx.ml", "Scaler"): scaler, ("ai.onnx.ml", "Normalizer"): normalizer,
           ("ai.onnx.ml", "Binarizer"): binarizer, ("ai.onnx.ml", "Imputer"): imputer,
           ("ai.onnx.ml", "OneHotEncoder"): one_hot_encoder,
           ("ai.onnx.ml", "ArrayFeatureExtractor"): array_feature_extractor,
           ("ai.onnx.ml", "LabelEncoder"): label_encoder, ("ai.onnx.ml", "CategoryMapper"): category_mapper,
           ("ai.onnx.ml", "CastMap"): cast_map, ("ai.onnx.ml", "DictVectorizer"): dict_vectorizer,
           ("ai.onnx.ml", "FeatureVectorizer"): feature_vectorizer}
