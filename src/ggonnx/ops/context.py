"""Values and the context a lowering function works in."""
from __future__ import annotations

import math

import numpy as np

from ggonnx import _core
from ggonnx.emitter import F32, GT, Emitter, onnx_to_ne
from ggonnx.errors import GraphBuildError, InvalidInputError, PlanOutgrown, UnsupportedOpError
from ggonnx.ir import Node


# Layouts of a 4-D value's ggml tensor. PLAIN: row-major ONNX (NCHW: ne [W, H, C, N]).
# NHWC: channels-last, ne [C, W, H, N]: convolutions, pools and the elementwise ops between
# them run on it (channels contiguous: GEMMs with the weight as src0, SIMD over channels),
# and any other lowering gets the plain form through ``LoweringContext.tensor``.
PLAIN = None
NHWC = "nhwc"
# A 5-D [N, A, B, H, W] split from an NHWC [N, A*B, H, W] by a Reshape (a detection head's
# anchors x outputs), kept as that memory: the plain tensor of [N, H, W, A, B]. A Transpose
# then reads it directly (YOLO's permute to [N, A, H, W, B] is one copy of B-float rows, not an
# NHWC -> NCHW transpose and an elementwise-strided permute); any other reader converts it.
NHWC_SPLIT = "nhwc_split"
SPLIT_STORED_PERM = (0, 3, 4, 1, 2)   # value = stored.transpose(this)


def nhwc_ne(shape) -> tuple:
    n, c, h, w = shape
    return (c, w, h, n)


def split_stored_shape(shape) -> tuple:
    """The plain shape an NHWC_SPLIT value [N, A, B, H, W] is stored as: [N, H, W, A, B]."""
    n, a, b, h, w = shape
    return (n, h, w, a, b)


class Value:
    """One ONNX value during planning: its concrete shape and dtype, and where it lives.

    ``const`` is set when the value is known at plan time (initializers,
    Constant nodes, folded shape arithmetic); ``gt`` while it is a tensor of
    ggml island ``island``, stored in ``layout``; ``rid`` once it is a runtime numpy
    array (a graph input, a host node's output, or an island output) in the plan's
    environment, always plain.
    """
    __slots__ = ("name", "shape", "dtype", "gt", "island", "const", "static", "rid", "layout", "bound")

    def __init__(self, name: str, shape: tuple, dtype=np.float32, gt: GT | None = None, island: int | None = None,
                 const: np.ndarray | None = None, static: bool = False, rid: int | None = None, layout=PLAIN):
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.gt = gt
        self.island = island
        self.const = const
        # static: the same data for every input signature (initializers, Constant nodes), so it
        # may be stored once per session; folded values can depend on input shapes.
        self.static = static
        self.rid = rid
        self.layout = layout
        # integers held in ggml as floats: every element lies in [0, bound) where a lowering proved
        # it (an ArgMax's indices), so a lookup by them never leaves its table; None: unknown
        self.bound = None

    @classmethod
    def constant(cls, name: str, array, static: bool) -> "Value":
        array = np.asarray(array)
        return cls(name, array.shape, array.dtype, const=array, static=static)

    def alias(self, name: str) -> "Value":
        v = Value(name, self.shape, self.dtype, self.gt, self.island, self.const, self.static, self.rid,
                  self.layout)
        v.bound = self.bound
        return v

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __repr__(self):
        where = "const" if self.const is not None else f"island {self.island}" if self.gt else f"env {self.rid}"
        return f"Value({self.name!r}, {self.shape}, {self.dtype}, {where})"


def as_float32(a: np.ndarray) -> np.ndarray:
    """ggml islands compute float32; float16 converts exactly."""
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _index_converter(bound: int, where: str):
    def convert(a: np.ndarray) -> np.ndarray:
        flat = np.asarray(a).reshape(-1)
        if flat.size and (flat.min() < -bound or flat.max() >= bound):
            raise InvalidInputError(f"{where}: indices must lie in [-{bound}, {bound}), "
                                    f"got values from {flat.min()} to {flat.max()}")
        return np.where(flat < 0, flat + bound, flat).astype(np.int32)
    convert.bound = bound  # plan families compare it: a converter is part of a plan's structure
    return convert


def exact_ints(a: np.ndarray) -> np.ndarray:
    """Run-time integers into ggml as the float32 values equal to them; a run whose integers
    float32 cannot hold exactly outgrows the plan (the runner plans again, on the host)."""
    out = _core.ints_as_exact_f32(a)
    if out is None:
        raise PlanOutgrown(f"integers beyond +-{_core.EXACT_INT_F32}")
    return out


exact_ints.bound = "exact"  # plan families compare converters by this


class Island:
    """One ggml graph being built: its emitter and the runtime values it takes as inputs."""

    def __init__(self, index: int, emitter: Emitter):
        self.index = index
        self.e = emitter
        # (runtime id, input slot, converter applied to the run-time array, shape after it)
        self.inputs: list[tuple] = []
        self.input_gts: dict[str, GT] = {}
        self.produced: list[Value] = []

    def mark(self):
        return self.e.mark(), len(self.inputs), dict(self.input_gts)

    def rollback(self, mark) -> None:
        """Forget what a lowering emitted before it found it cannot run in ggml."""
        emitter_mark, n_inputs, input_gts = mark
        self.e.rollback(emitter_mark)
        del self.inputs[n_inputs:]
        self.input_gts = input_gts

    def plain(self, v: Value) -> GT:
        """``v``'s tensor of this island in the plain layout, converted once if it is NHWC."""
        if v.layout == PLAIN:
            return v.gt
        key = f"{v.name}\0plain"
        gt = self.input_gts.get(key)
        if gt is None:  # NHWC_SPLIT converts as the NHWC value it was split from
            n, c, h, w = (v.shape[0], v.shape[1] * v.shape[2]) + v.shape[3:] if v.layout == NHWC_SPLIT else v.shape
            if h == w == 1:  # the same memory in both layouts
                gt = self.e.reshape(v.gt, onnx_to_ne(v.shape))
            else:   # [C, W*H] -> [W*H, C] per image
                gt = self.e.reshape(self.e.transpose2d(self.e.reshape(v.gt, (c, w * h, n))), onnx_to_ne(v.shape))
            self.input_gts[key] = gt
        return gt


# ops that may read integer values held in ggml as floats: dequantization, ops that only move
# them (an ArgMax's label indices reshaped, or looked up in a class table; columns picked) and
# exact comparisons with integer categories
INTEGER_READERS = ("DequantizeLinear", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                   "ArrayFeatureExtractor", "Gather", "Concat", "OneHotEncoder")


class LoweringContext:
    def __init__(self, uses: dict | None = None, env: list | None = None, input_rids: frozenset = frozenset()):
        self.island: Island | None = None
        self.node: Node | None = None
        # value name -> how many node inputs and graph outputs read it
        self.uses = uses or {}
        # the tracer's run-time arrays by runtime id, and the ids of the graph's inputs
        self.env = env
        self.input_rids = input_rids

    def sole_reader(self, v: Value) -> bool:
        """Whether the node being lowered is the only reader of ``v`` (no other node, no graph
        output), so a fusion may change ``v``'s tensor in place."""
        return self.uses.get(v.name) == 1

    @property
    def e(self) -> Emitter:
        return self.island.e

    # -- attributes ------------------------------------------------------------
    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def unsupported(self, what: str):
        raise UnsupportedOpError(f"{self.node.describe()}: {what}")

    # -- values ----------------------------------------------------------------
    def in_island(self, v: Value) -> bool:
        return v.gt is not None and v.island == self.island.index

    def _check_float_held(self, v: Value) -> None:
        # integers a QuantizeLinear left in ggml (as exact floats) are only dequantized there;
        # anything else that reads them (integer arithmetic wraps) runs on the host
        if v.dtype.kind in "iu" and self.node.op_type not in INTEGER_READERS:
            self.unsupported(f"value '{v.name}' holds {v.dtype} integers in ggml")

    def tensor(self, v: Value) -> GT:
        """The value as a tensor of the current ggml island, in the plain layout."""
        if self.in_island(v):
            self._check_float_held(v)
            return self.island.plain(v)
        if 0 in v.shape:  # ggml has no empty tensors: empty data runs on the host
            self.unsupported(f"value '{v.name}' is empty {v.shape}")
        if v.const is not None:
            return self.weight(v, "raw", lambda c: c, v.shape)
        gt = self.island.input_gts.get(v.name)
        if gt is None:
            if v.rid is None:
                raise GraphBuildError(f"{self.node.describe()}: value '{v.name}' has no data yet")
            if v.dtype not in (np.float32, np.float16):
                self.unsupported(f"input '{v.name}' is {v.dtype}; ggml islands compute float32 "
                                 f"(float16 converted exactly)")
            gt = self.e.input(v.shape)
            self.island.inputs.append((v.rid, gt.slot, as_float32, v.shape))
            self.island.input_gts[v.name] = gt
        return gt

    def exact_int_tensor(self, v: Value) -> GT:
        """An integer value as a tensor of the float32 values equal to it: held in this island,
        constant, or a graph input whose values at this trace float32 holds exactly (a later run
        whose values it cannot plans again). Integers a host step made stay on the host."""
        if v.dtype.kind not in "iu":
            self.unsupported(f"value '{v.name}' is {v.dtype}, not integers")
        if self.in_island(v):
            return self.tensor(v)
        if 0 in v.shape:
            self.unsupported(f"value '{v.name}' is empty {v.shape}")
        if v.const is not None:
            if _core.ints_as_exact_f32(np.asarray(v.const, np.int64)) is None:
                self.unsupported(f"constant '{v.name}' holds integers float32 cannot")
            return self.weight(v, "raw", lambda c: c, v.shape)
        if v.rid not in self.input_rids or v.dtype not in (np.int64, np.int32) or \
                _core.ints_as_exact_f32(self.env[v.rid]) is None:
            self.unsupported(f"integers '{v.name}' are not a graph input float32 holds exactly")
        key = f"{v.name}\0exact"
        gt = self.island.input_gts.get(key)
        if gt is None:
            gt = self.e.input(v.shape)
            self.island.inputs.append((v.rid, gt.slot, exact_ints, v.shape))
            self.island.input_gts[key] = gt
        return gt

    def tensor_as_is(self, v: Value) -> tuple:
        """(tensor, layout) for layout-agnostic ops (elementwise): an NHWC value stays NHWC."""
        if self.in_island(v) and v.layout == NHWC:
            self._check_float_held(v)
            return v.gt, NHWC
        return self.tensor(v), PLAIN

    def tensor_nhwc(self, v: Value) -> GT:
        """A 4-D value as an NHWC tensor [C, W, H, N] of the current island (converted once)."""
        if self.in_island(v) and v.layout == NHWC:
            return v.gt
        if v.rank != 4:
            raise GraphBuildError(f"{self.node.describe()}: value '{v.name}' {v.shape} is not 4-D")
        key = f"{v.name}\0nhwc"
        gt = self.island.input_gts.get(key)
        if gt is None:
            n, c, h, w = v.shape
            if v.const is not None:
                gt = self.weight(v, "nhwc", lambda a: a.transpose(0, 2, 3, 1), (n, h, w, c))
            elif h == w == 1:
                gt = self.e.reshape(self.tensor(v), (c, 1, 1, n))
            else:   # [W*H, C] -> [C, W*H] per image
                gt = self.e.reshape(self.e.transpose2d(self.e.reshape(self.tensor(v), (w * h, c, n))), (c, w, h, n))
            self.island.input_gts[key] = gt
        return gt

    def is_nhwc(self, v: Value | None) -> bool:
        return v is not None and self.in_island(v) and v.layout == NHWC

    def index_tensor(self, v: Value, bound: int) -> GT:
        """Run-time integer indices into a dim of size ``bound``, as a flat int32 ggml vector.

        Negative indices count from the end; indices out of range raise before ggml sees them.
        """
        if v.dtype.kind not in "iu":
            self.unsupported(f"indices '{v.name}' of type {v.dtype}")
        if v.rid is None or 0 in v.shape:
            self.unsupported(f"indices '{v.name}' are not a non-empty run-time tensor")
        key = f"{v.name}\0idx{bound}"
        gt = self.island.input_gts.get(key)
        if gt is None:
            n = int(math.prod(v.shape))
            gt = self.e.input((n,), int32=True)
            self.island.inputs.append((v.rid, gt.slot, _index_converter(bound, self.node.describe()), (n,)))
            self.island.input_gts[key] = gt
        return gt

    def weight(self, v: Value, layout: str, transform, shape) -> GT:
        """A constant input stored once in ggml, as ``transform(const)`` of ONNX shape ``shape``.

        The layout name keys the stored copy, so every plan of the session shares it.
        """
        if 0 in v.shape:
            self.unsupported(f"value '{v.name}' is empty {v.shape}")
        return self.derived_weight(v.name, layout, lambda: transform(np.asarray(v.const, dtype=np.float32)),
                                   shape, v.static, origin=(v.name, transform))

    def weight_type(self, v: Value, k: int, n: int) -> int:
        """The ggml type the session's weight policy gives constant ``v`` as a weight of ``n`` rows
        over depth ``k``; float32 for anything but a static initializer."""
        policy = self.e.weights.policy
        if policy is None or not v.static or v.const is None:
            return F32
        return policy.choose(k, n, v.name)

    def typed_weight(self, v: Value, layout: str, transform, shape, wtype: int, matmul_only: bool = True) -> GT:
        """``weight`` stored as ggml type ``wtype`` (from ``weight_type``): rows [N, K] of
        ``shape``. Rows the model or its GGUF file ship in that type are stored as they are,
        zero rows added up to N (zero bytes are zero in every ggml type)."""
        if wtype == F32:
            return self.weight(v, layout, transform, shape)
        shipped = self.e.weights.policy.prebuilt_rows(v.name, wtype)
        if shipped is not None:
            raw, (n, _) = shipped
            make = lambda: (np.pad(raw, (0, (shape[0] - n) * (raw.size // n))), shape)  # noqa: E731
        else:
            make = lambda: transform(np.asarray(v.const, dtype=np.float32))  # noqa: E731
        return self.e.weight((v.name, layout), make, shape, wtype, matmul_only)

    def derived_weight(self, name: str, layout: str, make, shape, static: bool, origin: tuple | None = None) -> GT:
        """A float32 constant built by ``make()`` from plan-time values; stored once per session
        under (name, layout) when those values are static, else owned by this plan (``origin``:
        Emitter.const)."""
        if not static:
            return self.e.const(make(), origin)
        return self.e.weight((name, layout), make, shape)

    def const_input(self, v: Value | None, what: str) -> np.ndarray:
        if v is None or v.const is None:
            self.unsupported(f"input '{what}' must be a constant known when the plan is built")
        return v.const

    def output(self, gt: GT, shape, index: int = 0, layout=PLAIN) -> Value:
        shape = tuple(int(d) for d in shape)
        expected = nhwc_ne(shape) if layout == NHWC else onnx_to_ne(split_stored_shape(shape)) \
            if layout == NHWC_SPLIT else onnx_to_ne(shape)
        if expected != gt.ne:
            raise GraphBuildError(f"{self.node.describe()}: lowering produced ggml shape {gt.ne} for ONNX shape "
                                  f"{shape} ({layout or 'plain'} layout)")
        if 0 in shape:
            self.unsupported(f"empty result {shape}")
        return Value(self.node.outputs[index], shape, np.float32, gt=gt, island=self.island.index, layout=layout)

    def const_output(self, array: np.ndarray, index: int = 0) -> Value:
        return Value.constant(self.node.outputs[index], array, static=False)
