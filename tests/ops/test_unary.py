"""Unary math functions and parametric activations: Exp ... HardSwish, Elu, Gelu, LeakyRelu,
HardSigmoid, Clip, Pow with a constant exponent, PRelu.

Where an attribute value has no ggml kernel (Elu alpha != 1, ...) the node
falls back to the host: the result must still be right, and only the common case is
required to run in ggml. Pow with any constant scalar exponent runs in ggml.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ._helpers import assert_close, floats32, given_attrs, randn, run_op_placed, seeds, shapes

SCALES = st.sampled_from([0.5, 1.0, 4.0])


def sample(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Normal values with some exact zeros and half-integers: the edges of Sign, Floor, Ceil."""
    x = randn(rng, shape, scale)
    pick = rng.random(x.shape)
    x = np.where(pick < 0.15, np.round(x * 2) / 2, x)
    return np.where(pick > 0.9, 0.0, x).astype(np.float32)


def _positive(rng, shape, scale):
    # spans several decades on both sides of 1
    return np.exp(randn(rng, shape, scale)).astype(np.float32)


def _nonnegative(rng, shape, scale):
    return np.abs(sample(rng, shape, scale))


_erf = np.vectorize(math.erf, otypes=[np.float64])

# op -> (float64 reference, input generator)
FUNCTIONS = {
    "Exp": (np.exp, sample),
    "Log": (np.log, _positive),
    "Abs": (np.abs, sample),
    "Neg": (np.negative, sample),
    "Sqrt": (np.sqrt, _nonnegative),
    "Sin": (np.sin, sample),
    "Cos": (np.cos, sample),
    "Floor": (np.floor, sample),
    "Ceil": (np.ceil, sample),
    "Sign": (np.sign, sample),
    "Softplus": (lambda x: np.logaddexp(0.0, x), sample),
    "HardSwish": (lambda x: x * np.clip(x / 6 + 0.5, 0.0, 1.0), sample),
}
FUNCTIONS_OPSET = 14  # HardSwish's first opset


@pytest.mark.parametrize("op", sorted(FUNCTIONS))
@settings(max_examples=25, deadline=None)
@given(shape=shapes(0, 4), scale=SCALES, seed=seeds)
def test_function(op, shape, scale, seed):
    reference, make = FUNCTIONS[op]
    x = make(np.random.default_rng(seed), shape, scale)
    (got,), where = run_op_placed(op, [x], opset=FUNCTIONS_OPSET)
    assert_close(got, reference(x.astype(np.float64)))
    assert where == "ggml"


def _run_activation(op, x, opset, **attrs):
    (got,), where = run_op_placed(op, [x], opset=opset, **given_attrs(**attrs))
    return got, where


# attribute values: None leaves the attribute out
ALPHAS = st.none() | floats32(-2.0, 2.0)


@settings(max_examples=40, deadline=None)
@given(shape=shapes(0, 4), alpha=st.none() | st.just(1.0) | floats32(0.1, 3.0), scale=SCALES,
       seed=seeds)
def test_elu(shape, alpha, scale, seed):
    x = sample(np.random.default_rng(seed), shape, scale)
    got, where = _run_activation("Elu", x, 6, alpha=alpha)
    a = 1.0 if alpha is None else alpha
    x64 = x.astype(np.float64)
    assert_close(got, np.where(x64 > 0, x64, a * np.expm1(x64)))
    if a == 1.0:  # ggml's elu has alpha 1; other alphas run on the host
        assert where == "ggml"


@settings(max_examples=40, deadline=None)
@given(shape=shapes(0, 4), approximate=st.sampled_from([None, "none", "tanh"]), scale=SCALES, seed=seeds)
def test_gelu(shape, approximate, scale, seed):
    x = sample(np.random.default_rng(seed), shape, scale)
    got, where = _run_activation("Gelu", x, 20, approximate=approximate)
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        want = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        want = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))
    assert_close(got, want)
    assert where == "ggml"   # the tanh form on a kernel of ours (ggml's reads an fp16 table)


@settings(max_examples=40, deadline=None)
@given(shape=shapes(0, 4), alpha=st.none() | st.just(1.0) | floats32(0.1, 3.0) | floats32(-3.0, -0.1),
       scale=SCALES, seed=seeds)
def test_swish(shape, alpha, scale, seed):
    x = sample(np.random.default_rng(seed), shape, scale)
    got, where = _run_activation("Swish", x, 24, alpha=alpha)
    x64 = x.astype(np.float64)
    a = 1.0 if alpha is None else alpha
    assert_close(got, x64 / (1 + np.exp(-a * x64)))
    assert where == "ggml"


@settings(max_examples=40, deadline=None)
@given(shape=shapes(0, 4), alpha=ALPHAS, scale=SCALES, seed=seeds)
def test_leaky_relu(shape, alpha, scale, seed):
    x = sample(np.random.default_rng(seed), shape, scale)
    got, where = _run_activation("LeakyRelu", x, 16, alpha=alpha)
    x64 = x.astype(np.float64)
    assert_close(got, np.where(x64 >= 0, x64, (0.01 if alpha is None else alpha) * x64))
    assert where == "ggml"


@settings(max_examples=40, deadline=None)
@given(shape=shapes(0, 4), alpha=ALPHAS, beta=st.none() | floats32(-1.0, 2.0), scale=SCALES,
       seed=seeds)
def test_hard_sigmoid(shape, alpha, beta, scale, seed):
    x = sample(np.random.default_rng(seed), shape, scale)
    got, where = _run_activation("HardSigmoid", x, 6, alpha=alpha, beta=beta)
    a, b = 0.2 if alpha is None else alpha, 0.5 if beta is None else beta
    assert_close(got, np.clip(a * x.astype(np.float64) + b, 0.0, 1.0))
    assert where == "ggml"


BOUNDS = st.none() | floats32(-3.0, 3.0)


@st.composite
def clip_cases(draw, crossed: bool):
    """(opset, min, max), None for an absent bound; ``crossed``: both given with min > max.

    Clip-6 leaves min > max undefined (onnxruntime rejects it); the spec spells out from
    Clip-13 on, and onnxruntime and onnx's reference do for Clip-11 too, that every value
    then becomes max.
    """
    if crossed:
        hi, lo = sorted(draw(st.lists(floats32(-3.0, 3.0), min_size=2, max_size=2, unique=True)))
        return draw(st.sampled_from([11, 13])), lo, hi
    lo, hi = draw(BOUNDS), draw(BOUNDS)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return draw(st.sampled_from([6, 11, 13])), lo, hi


@pytest.mark.parametrize("crossed", [False, True], ids=["min<=max", "min>max"])
@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=shapes(0, 4), const=st.booleans(), scale=SCALES, seed=seeds)
def test_clip(crossed, data, shape, const, scale, seed):
    opset, lo, hi = data.draw(clip_cases(crossed))
    x = sample(np.random.default_rng(seed), shape, scale)
    if opset < 11:
        got, where = _run_activation("Clip", x, opset, min=lo, max=hi)
        in_ggml = True
    else:
        # min and max are optional scalar inputs; as graph inputs they are unknown at plan time
        bounds = [None if v is None else np.array(v, dtype=np.float32) for v in (lo, hi)]
        (got,), where = run_op_placed("Clip", [x, *bounds], const=(1, 2) if const else (), opset=opset)
        in_ggml = const or (lo is None and hi is None)
    want = x.astype(np.float64)
    if lo is not None:
        want = np.maximum(want, lo)
    if hi is not None:
        want = np.minimum(want, hi)
    assert_close(got, want, rtol=0, atol=0)
    if in_ggml:
        assert where == "ggml"


def _check_pow(x, p):
    (got,), where = run_op_placed("Pow", [x, p], const=(1,))
    # the output has the broadcast shape of base and exponent
    assert_close(got, x.astype(np.float64) ** p.astype(np.float64))
    return where


def _pow_base(rng, shape, exponent, scale):
    """Non-negative bases for fractional exponents half the time (negative ones give NaN)."""
    fractional = not float(exponent).is_integer()
    return (_nonnegative if fractional and rng.random() < 0.5 else sample)(rng, shape, scale)


EXPONENTS = st.sampled_from([2.0, 0.5, 1.0, 3.0, 4.0, 0.0, -1.0, -2.0, -0.5, 1.5, -2.7])


@settings(max_examples=60, deadline=None)
@given(shape=shapes(0, 4), exponent=EXPONENTS, data=st.data(), int_exponent=st.booleans(), scale=SCALES,
       seed=seeds)
def test_pow_constant_exponent(shape, exponent, data, int_exponent, scale, seed):
    x = _pow_base(np.random.default_rng(seed), shape, exponent, scale)
    # a scalar, or a single-element exponent of no higher rank than the base
    exp_rank = data.draw(st.integers(0, len(shape)))
    # from opset 12 the exponent may have its own type: an int64 2 is still a square
    dtype = np.int64 if int_exponent and exponent.is_integer() else np.float32
    where = _check_pow(x, np.full((1,) * exp_rank, exponent, dtype=dtype))
    if exponent not in (1.0, 0.0):  # 1 is an alias, 0 a constant
        assert where == "ggml"


@settings(max_examples=20, deadline=None)
@given(shape=shapes(0, 3), exponent=EXPONENTS, extra_rank=st.integers(1, 2), seed=seeds)
def test_pow_exponent_of_higher_rank(shape, exponent, extra_rank, seed):
    # a [1, 1] exponent makes a [3] base's result [1, 3]
    x = _pow_base(np.random.default_rng(seed), shape, exponent, 1.0)
    _check_pow(x, np.full((1,) * (len(shape) + extra_rank), exponent, dtype=np.float32))


@st.composite
def prelu_cases(draw):
    shape = draw(shapes(2, 4, max_side=4))
    kind = draw(st.sampled_from(["channel", "scalar", "one", "same"]))
    slope = {"channel": (shape[1],) + (1,) * (len(shape) - 2), "scalar": (), "one": (1,), "same": shape}[kind]
    return shape, slope


@settings(max_examples=50, deadline=None)
@given(case=prelu_cases(), const=st.sampled_from([(), (1,)]), seed=seeds)
def test_prelu(case, const, seed):
    shape, slope_shape = case
    rng = np.random.default_rng(seed)
    x, slope = sample(rng, shape, 1.0), randn(rng, slope_shape)
    (got,), where = run_op_placed("PRelu", [x, slope], const=const)
    x64 = x.astype(np.float64)
    assert_close(got, np.where(x64 >= 0, x64, slope * x64))
    assert where == "ggml"


def test_relu_keeps_nan_and_infinities():
    # ggml's relu (x > 0 ? x : 0) made NaN 0, and a clamp to the largest float made inf finite;
    # 37 values: whole 8- and 16-lane vectors and a tail
    x = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 2.5, 3e38] * 5 + [np.nan, 1.0], np.float32)
    (got,), where = run_op_placed("Relu", [x])
    assert where == "ggml"
    np.testing.assert_array_equal(got, np.where(np.isnan(x), x, np.maximum(x, 0)))


def test_prelu_keeps_nan_and_infinities():
    # relu(x) + slope * (x - relu(x)) made inf NaN (inf - inf)
    x = np.array([np.nan, np.inf, -np.inf, -2.0, 0.0, 3.0] * 3, np.float32)
    slope = np.full(x.shape, 0.25, np.float32)
    (got,), where = run_op_placed("PRelu", [x, slope], const=(1,))
    assert where == "ggml"
    np.testing.assert_array_equal(got, np.where(x < 0, 0.25 * x, x))
