"""Shared pieces of the op property tests: tiny ONNX models, a ggonnx run, numpy comparisons.

Every test builds a one-node (or few-node) model, runs it through ggonnx.Session
and compares with a numpy reference written in the test module itself.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx

RTOL = 1e-4
ATOL = 1e-4
THREADS = 2

# Arrays come from a drawn seed rather than hypothesis' float arrays: much faster to
# generate, and a failing example still shrinks to a reproducible (shape, seed) pair.
seeds = st.integers(0, 2**32 - 1)


def floats32(lo: float, hi: float):
    """Floats in [lo, hi] rounded to float32, as ONNX float attributes store them: the reference
    then uses exactly the value the runtime reads."""
    return st.floats(lo, hi).map(lambda v: float(np.float32(v)))


def randn(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return np.asarray(rng.standard_normal(tuple(shape)) * scale, dtype=np.float32)


def away_from_zero(rng: np.random.Generator, shape) -> np.ndarray:
    """Values with |v| in [0.5, 2]: divisors that keep quotients well conditioned."""
    mag = rng.uniform(0.5, 2.0, tuple(shape))
    sign = np.where(rng.random(tuple(shape)) < 0.5, -1.0, 1.0)
    return np.asarray(mag * sign, dtype=np.float32)


def sum_atol(k: int) -> float:
    """Absolute tolerance for outputs that sum k products of O(1) terms.

    The magnitude of such a sum grows like sqrt(k), and float32 rounding in any
    summation order grows with it.
    """
    return ATOL * max(1.0, math.sqrt(k))


# how a Conv or pool test spells its padding; see resolve_pads
PAD_MODES = ["none", "symmetric", "asymmetric", "SAME_UPPER", "SAME_LOWER", "VALID"]


def set_pad_attrs(attrs: dict, case: dict) -> dict:
    """Explicit pads or auto_pad into ``attrs``, as ``case["mode"]`` (one of PAD_MODES) says."""
    if case["mode"] in ("symmetric", "asymmetric"):
        attrs["pads"] = case["pads"]
    elif case["mode"] != "none":
        attrs["auto_pad"] = case["mode"]
    return attrs


def resolve_pads(mode, pads, in_sizes, kernel, strides, dilations):
    """(begin, end) pads per spatial dim for Conv and pools, from the ONNX spec's auto_pad rules.

    mode is "none" (no pads attribute), "symmetric"/"asymmetric" (explicit ``pads``) or an auto_pad value.
    """
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
            out = math.ceil(size / s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            # the odd pad goes at the end for SAME_UPPER, at the beginning for SAME_LOWER
            small, big = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else big)
            end.append(big if mode == "SAME_UPPER" else small)
        return begin, end
    if mode in ("none", "VALID"):
        return [0] * len(in_sizes), [0] * len(in_sizes)
    half = len(pads) // 2
    return list(pads[:half]), list(pads[half:])


def _value_info(name: str, array: np.ndarray, dynamic: bool):
    elem = helper.np_dtype_to_tensor_dtype(array.dtype)
    shape = [f"{name}_d{i}" for i in range(array.ndim)] if dynamic else list(array.shape)
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, feeds: dict, consts: dict | None = None, outputs=None, opset: int = 13,
               dynamic: bool = False, out_types: dict | None = None) -> onnx.ModelProto:
    """A model over ``nodes``: ``feeds`` become graph inputs, ``consts`` initializers.

    Input shapes are those of ``feeds``, or symbolic dims of the same rank if ``dynamic``.
    ``outputs`` defaults to the outputs of the last node; they are float unless
    ``out_types`` {name: TensorProto element type} says otherwise.
    """
    consts = consts or {}
    out_types = out_types or {}
    if outputs is None:
        outputs = [o for o in nodes[-1].output if o]
    graph = helper.make_graph(
        list(nodes), "test",
        [_value_info(n, a, dynamic) for n, a in feeds.items()],
        [helper.make_tensor_value_info(o, out_types.get(o, TensorProto.FLOAT), None) for o in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_graph_placed(nodes, feeds: dict, consts: dict | None = None, outputs=None, opset: int = 13,
                     out_types: dict | None = None) -> tuple:
    """Run the model; returns (outputs, where each node ran: "ggml" or "host", in node order)."""
    model = make_model(nodes, feeds, consts, outputs, opset, out_types=out_types)
    sess = ggonnx.Session(model, threads=THREADS)
    before = {n: np.array(a, copy=True) for n, a in feeds.items()}
    outs = sess.run(None, feeds)
    # ggml reads inputs in place and computes outputs into their arrays: never a write into a
    # feed, and every output an array of its own
    for n, a in feeds.items():
        np.testing.assert_array_equal(np.asarray(a), before[n], err_msg=f"input {n!r} was written")
    arrays = [o for o in outs if isinstance(o, np.ndarray)] + [a for a in feeds.values() if isinstance(a, np.ndarray)]
    for i, o in enumerate(arrays[:len(outs)]):
        assert not any(np.shares_memory(o, other) for other in arrays[i + 1:]), "an output shares memory"
    # the inputs' shapes are static, so this is the plan the run used
    return outs, [p.where for p in sess.placement()]


def run_graph(nodes, feeds: dict, consts: dict | None = None, outputs=None, opset: int = 13) -> list:
    return run_graph_placed(nodes, feeds, consts, outputs, opset)[0]


def run_graph_shapes(nodes, feed_list: list, consts: dict | None = None, opset: int = 13) -> list:
    """Run every feed dict of ``feed_list`` through one session whose inputs have symbolic dims.

    Each new shape signature compiles its own plan while the session's weights are shared,
    so this checks that lowering reuses constants correctly across plans.
    """
    model = make_model(nodes, feed_list[0], consts, opset=opset, dynamic=True)
    sess = ggonnx.Session(model, threads=THREADS)
    return [sess.run(None, feeds) for feeds in feed_list]


def signed_axes(draw, axes, rank: int) -> list:
    """Inside an ``st.composite``: each axis either as is or counted from the end (negative)."""
    return [a - rank if draw(st.booleans()) else a for a in axes]


def given_attrs(**attrs) -> dict:
    """The attributes whose value is not None: a test draws None to leave one at its default."""
    return {k: v for k, v in attrs.items() if v is not None}


def op_node(op_type: str, inputs, *, const=(), n_outputs: int = 1, **attrs):
    """One ``op_type`` node over ``inputs`` (arrays, or None for an omitted optional input).

    Inputs whose index is in ``const`` become initializers, the others graph inputs.
    Returns (node, feeds, consts).
    """
    names, feeds, consts = [], {}, {}
    for i, a in enumerate(inputs):
        if a is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        (consts if i in const else feeds)[name] = a
    node = helper.make_node(op_type, names, [f"out{j}" for j in range(n_outputs)], **attrs)
    return node, feeds, consts


def run_op_placed(op_type: str, inputs, *, const=(), opset: int = 13, n_outputs: int = 1,
                  out_types: dict | None = None, **attrs) -> tuple:
    """Run one ``op_type`` node; returns (outputs, "ggml" or "host": where the node ran).

    See ``op_node`` for the arguments; ``out_types`` as for ``make_model`` (outputs are out0, out1, ...).
    """
    node, feeds, consts = op_node(op_type, inputs, const=const, n_outputs=n_outputs, **attrs)
    outs, (where,) = run_graph_placed([node], feeds, consts, opset=opset, out_types=out_types)
    return outs, where


def run_op(op_type: str, inputs, *, const=(), opset: int = 13, n_outputs: int = 1, **attrs) -> list:
    """Run one ``op_type`` node; see ``op_node`` for the arguments."""
    return run_op_placed(op_type, inputs, const=const, opset=opset, n_outputs=n_outputs, **attrs)[0]


def assert_close(got, want, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Same shape, float32, and values within tolerance of the (float64) reference."""
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got).__name__}"
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    assert got.dtype == np.float32, f"dtype {got.dtype} != float32"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@st.composite
def shapes(draw, min_rank: int = 0, max_rank: int = 4, min_side: int = 1, max_side: int = 5) -> tuple:
    rank = draw(st.integers(min_rank, max_rank))
    return tuple(draw(st.integers(min_side, max_side)) for _ in range(rank))
