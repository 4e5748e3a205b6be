"""Emits the flat instruction table that _core.Plan turns into a ggml graph.

Every method checks ggml's preconditions for its op (the ones ggml would
GGML_ASSERT on, aborting the process) and computes the result's ggml shape
before a row is written, so a bad shape becomes a ShapeError here.

Shapes: ONNX shapes are row-major tuples; ggml's ``ne`` is the reverse, padded
with 1s to four dims. ``GT`` is a handle to one ggml tensor: its slot in the
table and its ne.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ggonnx import _core
from ggonnx.errors import GraphBuildError, ShapeError, UnsupportedOpError

Op = _core.Op
N_COLS = _core.N_COLS
MAX_DIMS = 4
# ggml's llamafile sgemm needs the depth K to be a multiple of 16 floats (AVX-512 width).
SGEMM_K_MULTIPLE = 16


F32 = _core.TYPE_F32


@dataclass(frozen=True)
class GT:
    slot: int
    ne: tuple  # 4 ints, ggml order
    type: int = F32  # ggml type: float32 except weights stored quantized or in reduced precision


def onnx_to_ne(shape) -> tuple:
    """ggml ne of a contiguous ONNX shape. Above rank 4 the size-1 dims are dropped and, where
    that is not enough, the leading dims merged (the memory layout is the same); lowerings
    registered with any_rank see such values and regroup their dims as they need (ops.coalesce)."""
    if len(shape) > MAX_DIMS:
        shape = [d for d in shape if d != 1]
        if len(shape) > MAX_DIMS:
            shape = [int(math.prod(shape[:len(shape) - MAX_DIMS + 1]))] + list(shape[len(shape) - MAX_DIMS + 1:])
    ne = [int(d) for d in reversed(shape)]
    return tuple(ne + [1] * (MAX_DIMS - len(ne)))


def as_ggml_array(arr: np.ndarray) -> np.ndarray:
    """A contiguous array of rank <= 4 with the ggml shape onnx_to_ne gives ``arr``'s shape."""
    if arr.ndim <= MAX_DIMS:
        return arr
    return arr.reshape(tuple(reversed(onnx_to_ne(arr.shape))))


def can_repeat(small: tuple, big: tuple) -> bool:
    return all(b % s == 0 for s, b in zip(small, big) if s != 0)


class WeightStore:
    """Session-wide weights: each distinct (name, layout, type) uploaded to ggml once, shared by
    all plans. ``policy`` (a ggonnx.weight_types.WeightPolicy) says which type each weight gets."""

    # Converted weights wait for upload in batches of about this size, which bounds the extra
    # memory held at load time.
    FLUSH_BYTES = 64 << 20

    def __init__(self, engine, policy=None):
        self.engine = engine
        self.policy = policy
        self.index: dict[tuple, int] = {}
        self.pending: list[np.ndarray] = []
        self.pending_types: list[int] = []
        self.pending_repack: list[bool] = []
        self.pending_bytes = 0
        self.converted: set[tuple] = set()   # keys of typed weights made from float32 values

    def request(self, key: tuple, make_array, wtype: int = F32, repack: bool = True) -> int:
        key = key + (wtype,)
        idx = self.index.get(key)
        if idx is None:
            arr = make_array()
            if not isinstance(arr, tuple) and self.policy is not None and key[0] in self.policy.placeholders:
                raise GraphBuildError(f"weight '{key[0]}' is held as {self.policy.prebuilt[key[0]][0]} rows only (a GGUF "
                                      f"file's, or released after upload), which this use cannot read")
            if isinstance(arr, tuple):  # (uint8 bytes already in type wtype, shape)
                arr = (np.ascontiguousarray(arr[0], dtype=np.uint8), tuple(arr[1]))
            else:
                # aligned too: a weight read in place from the model file may start anywhere
                arr = as_ggml_array(np.require(np.ascontiguousarray(arr, dtype=np.float32), requirements="A"))
                if wtype != F32:  # converted from float32 values (release_float_copies may drop those)
                    self.converted.add(key)
            idx = self.engine.n_weights + len(self.pending)
            self.pending.append(arr)
            self.pending_types.append(wtype)
            self.pending_repack.append(repack)
            self.pending_bytes += arr[0].nbytes if isinstance(arr, tuple) else arr.nbytes
            self.index[key] = idx
            if self.pending_bytes >= self.FLUSH_BYTES:
                self.flush()
        return idx

    def flush(self) -> None:
        if self.pending:
            self.engine.add_weights(self.pending, self.pending_types, self.pending_repack)
            self.pending, self.pending_types, self.pending_repack = [], [], []
            self.pending_bytes = 0

    def discard_pending(self) -> None:
        for key in [k for k, v in self.index.items() if v >= self.engine.n_weights]:
            del self.index[key]
            self.converted.discard(key)
        self.pending, self.pending_types, self.pending_repack = [], [], []
        self.pending_bytes = 0

    def take_converted(self) -> dict[str, int]:
        """{name: ggml type} of the typed weights uploaded from float32 values since the last call."""
        done = {key for key in self.converted if self.index.get(key, -1) < self.engine.n_weights}
        self.converted -= done
        return {key[0]: key[-1] for key in done}

    def types_by_name(self) -> dict[str, str]:
        """{initializer name: ggml type name} of every weight uploaded in a type other than float32."""
        return {key[0]: _core.type_name(key[-1]) for key in self.index if key[-1] != F32}


def amx_tiles_len(n: int, k: int) -> int:
    """Values in the AMX bf16 tiles of an [N, K] weight (kernels.h): N and K padded to 32."""
    return -(-n // 32) * 32 * -(-k // 32) * 32


# ops whose first operand may be a weight in any ggml type (ggml converts it as it reads)
_TYPED_SRC0_OPS = (Op.MUL_MAT, Op.GET_ROWS, Op.GEMM_AMX_BF16)


class Emitter:
    def __init__(self, weights: WeightStore):
        self.weights = weights
        self.rows: list[list[int]] = []
        self.fparams: list[tuple[float, float]] = []
        self.row_names: list[str] = []
        self.consts: list[np.ndarray] = []
        # per constant: (value name, transform) when it is transform(the value's data), so a plan
        # family (plan_family.py) can rebuild it for another signature; None otherwise
        self.const_origins: list = []
        self.weight_slots: dict[tuple, GT] = {}
        self.n_slots = 0
        self.flops = 0
        self.where = "?"  # the node being lowered, for error messages and row names

    # -- rows ---------------------------------------------------------------
    def _emit(self, op, srcs=(), ne=(1, 1, 1, 1), params=(), fparams=(0.0, 0.0)) -> GT:
        if any(s is not None and s.type != F32 for s in srcs[1:]) or (srcs and srcs[0].type != F32 and op not in _TYPED_SRC0_OPS):
            raise GraphBuildError(f"{self.where}: op code {int(op)} cannot read a "
                                  f"{'/'.join(_core.type_name(s.type) for s in srcs if s is not None)} operand")
        slot = self.n_slots
        self.n_slots += 1
        src = [-1 if s is None else s.slot for s in srcs] + [-1] * (4 - len(srcs))  # None: a slot unused
        row = [int(op), slot, *src, *ne, *[int(p) for p in params], *([0] * (_core.N_PARAMS - len(params)))]
        if len(row) != N_COLS:
            raise GraphBuildError(f"{self.where}: malformed instruction {row}")
        self.rows.append(row)
        self.fparams.append((float(fparams[0]), float(fparams[1])))
        self.row_names.append(self.where)
        return GT(slot, tuple(int(x) for x in ne))

    def mark(self):
        return len(self.rows), self.n_slots, self.flops, len(self.consts), dict(self.weight_slots)

    def rollback(self, mark) -> None:
        n_rows, self.n_slots, self.flops, n_consts, self.weight_slots = mark
        del self.rows[n_rows:], self.fparams[n_rows:], self.row_names[n_rows:], self.consts[n_consts:]
        del self.const_origins[n_consts:]

    def fail(self, msg: str):
        raise ShapeError(f"{self.where}: {msg}")

    def instructions(self):
        ins = np.array(self.rows, dtype=np.int64).reshape(-1, N_COLS)
        fp = np.array(self.fparams, dtype=np.float64).reshape(-1, 2)
        return ins, fp

    # -- leaves -------------------------------------------------------------
    def input(self, shape, int32: bool = False) -> GT:
        """A run-time input: float32, or int32 row indices (which only GET_ROWS may read)."""
        return self._emit(Op.INPUT, ne=onnx_to_ne(shape), params=(1 if int32 else 0,))

    def get_rows(self, table: GT, ids: GT) -> GT:
        """table [D, V] (ggml order), ids an int32 vector [n] -> [D, n]."""
        if table.ne[2:] != (1, 1) or ids.ne[1:] != (1, 1, 1):
            self.fail(f"row gather of {table.ne} by {ids.ne}: only a matrix by a vector")
        return self._emit(Op.GET_ROWS, (table, ids), (table.ne[0], ids.ne[0], 1, 1))

    def weight(self, key: tuple, make_array, shape, wtype: int = F32, matmul_only: bool = True) -> GT:
        """A session weight of ggml type ``wtype``; ``make_array()`` builds its float32 array the
        first time ``key`` is seen. A typed weight that only matmuls read (``matmul_only``) may be
        stored in a repacked layout."""
        gt = self.weight_slots.get(key + (wtype,))
        if gt is None:
            idx = self.weights.request(key, make_array, wtype, repack=matmul_only)
            gt = self._emit(Op.WEIGHT, ne=onnx_to_ne(shape), params=(idx, wtype))
            gt = GT(gt.slot, gt.ne, wtype)
            self.weight_slots[key + (wtype,)] = gt
        return gt

    def const(self, array: np.ndarray, origin: tuple | None = None) -> GT:
        """A constant owned by this plan only (e.g. a padding mask); ``origin`` (value name,
        transform) when it is ``transform`` of a plan-time value's data."""
        arr = np.ascontiguousarray(array, dtype=np.float32)
        self.consts.append(as_ggml_array(arr))
        self.const_origins.append(origin)
        return self._emit(Op.CONST, ne=onnx_to_ne(arr.shape), params=(len(self.consts) - 1,))

    # -- elementwise ----------------------------------------------------------
    def binary(self, op, a: GT, b: GT) -> GT:
        """a (op) b with numpy broadcasting, both given in ggml order."""
        out = []
        for x, y in zip(a.ne, b.ne):
            if x != y and x != 1 and y != 1:
                self.fail(f"shapes {a.ne[::-1]} and {b.ne[::-1]} (ggml order reversed) do not broadcast")
            out.append(max(x, y) if x and y else 0)
        out = tuple(out)
        commutative = op in (Op.ADD, Op.MUL)
        if a.ne != out:
            if commutative and b.ne == out:
                a, b = b, a
            else:
                a = self.repeat(a, out)
        if not can_repeat(b.ne, a.ne):
            b = self.repeat(b, out)
        elif b.ne[0] == 1 and out[0] > 1:
            # ggml broadcasts a one-element row with a scalar loop per element (whisper's
            # attention scale: a quarter of its time); a repeated row takes the vector path
            b = self.repeat(b, (out[0],) + b.ne[1:])
        return self._emit(op, (a, b), out)

    def repeat(self, a: GT, ne: tuple) -> GT:
        if not can_repeat(a.ne, ne):
            self.fail(f"cannot repeat ggml shape {a.ne} to {ne}")
        return self._emit(Op.REPEAT, (a,), ne)

    def unary(self, op, a: GT) -> GT:
        return self._emit(op, (a,), a.ne)

    def unary_kind(self, kind, a: GT) -> GT:
        """One of ggml's elementwise functions (a _core.Unary kind)."""
        return self._emit(Op.UNARY, (a,), a.ne, params=(kind,))

    def leaky_relu(self, a: GT, slope: float) -> GT:
        return self._emit(Op.LEAKY_RELU, (a,), a.ne, fparams=(slope, 0.0))

    def clamp(self, a: GT, lo: float, hi: float) -> GT:
        return self._emit(Op.CLAMP, (a,), a.ne, fparams=(lo, hi))

    def scale_bias(self, a: GT, scale: float, bias: float = 0.0) -> GT:
        return self._emit(Op.SCALE_BIAS, (a,), a.ne, fparams=(scale, bias))

    # -- reductions -----------------------------------------------------------
    def soft_max(self, a: GT, scale: float = 1.0, mask: GT | None = None) -> GT:
        """Softmax along ne0 of ``scale * a`` (scale > 0; our kernel applies it in its exp pass),
        plus ``mask`` (rows of ne0 repeating to a's) where given."""
        if mask is not None and (mask.ne[0] != a.ne[0] or not can_repeat(mask.ne, a.ne)):
            self.fail(f"softmax mask {mask.ne} does not repeat to {a.ne}")
        bits = 0 if scale == 1.0 else int(np.array([scale], dtype=np.float32).view(np.uint32)[0])
        return self._emit(Op.SOFT_MAX, (a,) if mask is None else (a, mask), a.ne, params=(bits,))

    def _row_at(self, slot: int):
        """The row that produced ``slot``, or None (a slot past the table, or not a row's own)."""
        row = self.rows[slot] if 0 <= slot < len(self.rows) else None
        return row if row is not None and row[1] == slot else None

    def masked(self, y: GT) -> tuple[GT, GT | None]:
        """(x, mask) when ``y`` is an ADD row x + mask whose mask has x's rows' length and repeats
        to x (an attention mask added before a softmax), else (y, None)."""
        row = self._row_at(y.slot)
        if row is None or row[0] != int(Op.ADD):
            return y, None
        x, m = (self._row_at(row[_core.COL_SRC + k]) for k in range(2))
        if x is None or m is None:
            return y, None
        x_ne, m_ne = tuple(x[_core.COL_NE:_core.COL_NE + 4]), tuple(m[_core.COL_NE:_core.COL_NE + 4])
        typed = [r[0] == Op.WEIGHT and r[_core.COL_PARAM + 1] != F32 for r in (x, m)]  # the kernel reads floats
        if x_ne != y.ne or m_ne[0] != x_ne[0] or not can_repeat(m_ne, x_ne) or any(typed):
            return y, None
        return GT(int(row[_core.COL_SRC]), x_ne), GT(int(row[_core.COL_SRC + 1]), m_ne)

    def unscaled(self, y: GT) -> tuple[GT, float]:
        """(x, s) when ``y`` is a scale_bias row ``s * x`` with no bias and s > 0 (attention's
        scaling before a softmax), else (y, 1.0). The caller makes sure nothing else reads y."""
        row = self._row_at(y.slot)
        if row is None or row[0] != int(Op.SCALE_BIAS):
            return y, 1.0
        scale, bias = self.fparams[y.slot]
        if bias != 0.0 or not scale > 0.0:
            return y, 1.0
        return GT(row[_core.COL_SRC], y.ne), float(np.float32(scale))

    def mean_rows(self, a: GT) -> GT:
        """Mean along ne0."""
        return self._emit(Op.MEAN, (a,), (1,) + a.ne[1:])

    def sum_rows(self, a: GT) -> GT:
        """Sum along ne0."""
        return self._emit(Op.SUM_ROWS, (a,), (1,) + a.ne[1:])

    def arg_extreme(self, a: GT, is_min: bool, last: bool, nan_wins: bool = True) -> GT:
        """[1, rows...]: the index, as a float, of each ne0 row's first (``last``: last) largest
        (``is_min``: smallest) value; a NaN wins where it is first met, or (not ``nan_wins``)
        never, a NaN first value keeping index 0."""
        return self._emit(Op.ARG_EXTREME, (a,), (1,) + a.ne[1:], params=(int(is_min), int(last), int(nan_wins)))

    def lookup(self, table: GT, ids: GT) -> GT:
        """table [K] at float-held integer indices ``ids`` (the caller proves each in [0, K))."""
        if table.ne[1:] != (1, 1, 1):
            self.fail(f"lookup in a table {table.ne}: a vector only")
        return self._emit(Op.LOOKUP, (table, ids), ids.ne)

    def take_columns(self, a: GT, ids) -> GT:
        """Contiguous ``a`` [C, R...] at constant in-range column indices ``ids``: [len(ids), R...]."""
        ids = np.asarray(ids, np.int64)
        if not len(ids) or ids.min() < 0 or ids.max() >= a.ne[0]:
            self.fail(f"columns {ids.tolist()[:8]} of {a.ne}")
        return self._emit(Op.TAKE_COLUMNS, (a, self.const(ids.astype(np.float32))), (len(ids),) + a.ne[1:])

    def one_hot(self, values: GT, categories: GT) -> GT:
        """[K, M...]: 1 where each of the float-held integers ``values`` [M...] equals category k."""
        if values.ne[3] != 1 or categories.ne[1:] != (1, 1, 1):
            self.fail(f"one-hot of {values.ne} against categories {categories.ne}")
        return self._emit(Op.ONE_HOT, (values, categories), (categories.ne[0],) + values.ne[:3])

    def rms_norm(self, a: GT, eps: float) -> GT:
        """x / sqrt(mean(x^2) + eps) along ne0."""
        return self._emit(Op.RMS_NORM, (a,), a.ne, fparams=(eps, 0.0))

    def norm(self, a: GT, eps: float) -> GT:
        """(a - mean) / sqrt(var + eps) along ne0."""
        return self._emit(Op.NORM, (a,), a.ne, fparams=(eps, 0.0))

    def norm_affine(self, a: GT, scale: GT, bias: GT | None, eps: float) -> GT:
        """LayerNormalization along ne0 in one pass: norm(a) * scale (+ bias), scale and bias of ne0 values."""
        if math.prod(scale.ne) != a.ne[0] or (bias is not None and math.prod(bias.ne) != a.ne[0]):
            self.fail(f"layer norm of {a.ne}: scale {scale.ne} and bias {bias and bias.ne} must hold {a.ne[0]} values")
        bits = int(np.array([eps], dtype=np.float32).view(np.uint32)[0])
        return self._emit(Op.NORM_AFFINE, (a, scale, bias), a.ne, params=(bits,))

    # -- matmul ---------------------------------------------------------------
    def mul_mat(self, a: GT, b: GT, place: int = _core.PLACE_AUTO) -> GT:
        """ggml_mul_mat: a [K, N, A2, A3], b [K, M, B2, B3] -> [N, M, B2, B3]; a broadcasts over b."""
        if a.ne[0] != b.ne[0]:
            self.fail(f"matmul inner dims differ: {a.ne[0]} vs {b.ne[0]}")
        if b.ne[2] % a.ne[2] or b.ne[3] % a.ne[3]:
            self.fail(f"matmul batch dims {a.ne[2:]} do not broadcast to {b.ne[2:]}")
        out = (a.ne[1], b.ne[1], b.ne[2], b.ne[3])
        self.flops += 2 * a.ne[0] * out[0] * out[1] * out[2] * out[3]
        if a.type != F32:
            # a typed weight: ggml's own kernels for its type, which take any row count; nothing
            # can be padded or swapped (the weight's blocks run along K)
            block = _core.weight_type_info(a.type)[1]
            if a.ne[0] % block or a.ne[2:] != (1, 1):
                self.fail(f"a {_core.type_name(a.type)} weight {a.ne} needs a 2-D weight with rows of a "
                          f"multiple of {block}")
            return self._emit(Op.MUL_MAT, (a, b), out, params=(place,))
        if place != _core.PLACE_BLAS and a.ne[0] % SGEMM_K_MULTIPLE and min(a.ne[1], b.ne[1]) >= 16:
            # ggml's fast f32 sgemm (llamafile) needs the depth to be a multiple of its vector
            # width, else a slower kernel runs: zero-pad both operands' depth. The copies pay off
            # only when both sides have enough rows (measured: 64x100x256 1.5x faster, the
            # first 3->16 conv 1.2x; 128x1000x10 4x slower with padding).
            extra = SGEMM_K_MULTIPLE - a.ne[0] % SGEMM_K_MULTIPLE
            a = self.pad(a, (0, extra, 0, 0, 0, 0, 0, 0))
            b = self.pad(b, (0, extra, 0, 0, 0, 0, 0, 0))
        if (place != _core.PLACE_BLAS and a.ne[1] % 4 and b.ne[1] % 4 == 0 and min(a.ne[1], b.ne[1]) >= 2
                and a.ne[2:] == b.ne[2:] and a.ne[0] % SGEMM_K_MULTIPLE == 0):
            # The fast sgemm also needs the result's row count (a's rows) to be a multiple of 4:
            # compute the transposed product, which has b's rows, and transpose it back.
            t = self._emit(Op.MUL_MAT, (b, a), (out[1], out[0], out[2], out[3]), params=(place,))
            return self.permute(t, (1, 0, 2, 3))
        return self._emit(Op.MUL_MAT, (a, b), out, params=(place,))

    def out_prod(self, a: GT, b: GT) -> GT:
        """ggml_out_prod: a [N, K, A2, A3], b [M, K, B2, B3] -> [N, M, B2, B3], the sum over K of
        a's rows scaled by b's: a product that reads a row-major B [K, N] where it lies."""
        if a.ne[1] != b.ne[1]:
            self.fail(f"out_prod depths differ: {a.ne} and {b.ne}")
        if b.ne[2] % a.ne[2] or b.ne[3] % a.ne[3]:
            self.fail(f"out_prod batch dims {a.ne[2:]} do not broadcast to {b.ne[2:]}")
        out = (a.ne[0], b.ne[0], b.ne[2], b.ne[3])
        self.flops += 2 * a.ne[1] * int(math.prod(out))
        return self._emit(Op.OUT_PROD, (a, b), out)

    def gemm_amx_bf16(self, tiles: GT, b: GT, n: int) -> GT:
        """W [N, K] (as bf16 AMX tiles, kernels.h) times b [K, M] -> [N, M], on AMX."""
        k, m = b.ne[0], b.ne[1]
        if b.ne[2:] != (1, 1) or tiles.ne != (amx_tiles_len(n, k), 1, 1, 1):
            self.fail(f"AMX bf16 tiles {tiles.ne} do not hold a {n}x{k} weight for {b.ne}")
        self.flops += 2 * k * n * m
        return self._emit(Op.GEMM_AMX_BF16, (tiles, b), (n, m, 1, 1))

    # -- layout ---------------------------------------------------------------
    def cont(self, a: GT) -> GT:
        return self._emit(Op.CONT, (a,), a.ne)

    def reshape(self, a: GT, ne: tuple) -> GT:
        if len(ne) > MAX_DIMS:
            raise UnsupportedOpError(f"{self.where}: rank {len(ne)} result {tuple(reversed(ne))} exceeds ggml's 4 dims")
        ne = tuple(ne) + (1,) * (MAX_DIMS - len(ne))
        if int(math.prod(ne)) != int(math.prod(a.ne)):
            self.fail(f"cannot reshape ggml shape {a.ne} ({int(math.prod(a.ne))} elements) to {ne}")
        if ne == a.ne:
            return a
        return self._emit(Op.RESHAPE, (a,), ne)

    def permute(self, a: GT, dest: tuple) -> GT:
        """ggml_permute: source dim i goes to position dest[i]; returns a contiguous tensor (a copy,
        or a reshape where only dims of size 1 move)."""
        if sorted(dest) != [0, 1, 2, 3]:
            self.fail(f"invalid permutation {dest}")
        if tuple(dest) == (0, 1, 2, 3):
            return a
        ne = [0] * 4
        for i, d in enumerate(dest):
            ne[d] = a.ne[i]
        if [i for i in sorted(range(4), key=lambda i: dest[i]) if a.ne[i] > 1] == [i for i in range(4) if a.ne[i] > 1]:
            # only dims of size 1 move (a decode step's head transposes): the same memory order
            return self.reshape(a, tuple(ne))
        view = self._emit(Op.PERMUTE, (a,), tuple(ne), params=dest)
        return self.cont(view)

    def view(self, a: GT, ne: tuple, offset_elems: int) -> GT:
        """A view of contiguous ``a`` with a's strides, starting ``offset_elems`` in; contiguous (copied
        where the view is not one block)."""
        nb1 = a.ne[0] * 4
        nb2 = nb1 * a.ne[1]
        nb3 = nb2 * a.ne[2]
        for k in range(4):
            if ne[k] > a.ne[k]:
                self.fail(f"view {ne} larger than source {a.ne}")
        last = offset_elems + sum((n - 1) * st for n, st in zip(ne, (1, a.ne[0], nb2 // 4, nb3 // 4)))
        if offset_elems < 0 or last >= int(math.prod(a.ne)):  # ggml asserts the view stays inside
            self.fail(f"view {ne} at offset {offset_elems} reaches past source {a.ne}")
        v = self._emit(Op.VIEW, (a,), tuple(ne), params=(nb1, nb2, nb3, offset_elems * 4))
        strides = (1, a.ne[0], nb2 // 4, nb3 // 4)
        if all(ne[k] == 1 or strides[k] == math.prod(ne[:k]) for k in range(1, 4)):
            return v  # one contiguous block (a Split of a row into q, k, v): no copy
        return self.cont(v)

    def take(self, a: GT, ids, dim: int) -> GT:
        """Contiguous ``a`` at constant in-range indices ``ids`` along ggml dim ``dim``: columns
        (dim 0, some left out) in one TAKE_COLUMNS pass; otherwise one view per run of
        consecutive indices, concatenated along that dim."""
        if dim == 0 and a.ne[0] > 1 and len(ids) < a.ne[0] and int(math.prod(a.ne[1:])) > 1:
            return self.take_columns(a, ids)  # one pass, not a strided copy per run of columns
        stride = int(math.prod(a.ne[:dim]))
        parts, start = [], 0
        for k in range(1, len(ids) + 1):
            if k == len(ids) or ids[k] != ids[k - 1] + 1:
                ne = list(a.ne)
                ne[dim] = k - start
                parts.append(self.view(a, tuple(ne), int(ids[start]) * stride))
                start = k
        return parts[0] if len(parts) == 1 else self.concat_along(parts, dim)

    def pad(self, a: GT, pads: tuple) -> GT:
        """Zero padding: pads = (lp0, rp0, lp1, rp1, lp2, rp2, lp3, rp3) in ggml dims."""
        if any(p < 0 for p in pads):
            self.fail(f"negative padding {pads}")
        # our pad kernel (rows copied whole) rather than ggml_pad, which tests every element
        return self.pad_mode(a, pads[0::2], pads[1::2], 0, 0.0)

    # -- convolution and pooling ------------------------------------------------
    def im2col(self, kernel: GT, data: GT, s, p, d) -> GT:
        """kernel [KW, KH, C, OC], data [W, H, C, N] -> [C*KH*KW, OW, OH, N]."""
        kw, kh, c = kernel.ne[0], kernel.ne[1], kernel.ne[2]
        if data.ne[2] != c:
            self.fail(f"conv input has {data.ne[2]} channels, kernel expects {c}")
        ow = (data.ne[0] + 2 * p[0] - d[0] * (kw - 1) - 1) // s[0] + 1
        oh = (data.ne[1] + 2 * p[1] - d[1] * (kh - 1) - 1) // s[1] + 1
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {data.ne}, kernel {kernel.ne})")
        ne = (c * kh * kw, ow, oh, data.ne[3])
        return self._emit(Op.IM2COL, (kernel, data), ne, params=(s[0], s[1], p[0], p[1], d[0], d[1]))

    def conv_depthwise(self, kernel: GT, data: GT, s, p, d) -> GT:
        """kernel [KW, KH, 1, C], data [W, H, C, N] -> [OW, OH, C, N]."""
        kw, kh = kernel.ne[0], kernel.ne[1]
        if kernel.ne[2] != 1 or kernel.ne[3] != data.ne[2]:
            self.fail(f"depthwise kernel {kernel.ne} does not match input {data.ne}")
        ow = (data.ne[0] + 2 * p[0] - d[0] * (kw - 1) - 1) // s[0] + 1
        oh = (data.ne[1] + 2 * p[1] - d[1] * (kh - 1) - 1) // s[1] + 1
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {data.ne}, kernel {kernel.ne})")
        self.flops += 2 * kw * kh * ow * oh * data.ne[2] * data.ne[3]
        return self._emit(Op.CONV_DW, (kernel, data), (ow, oh, data.ne[2], data.ne[3]),
                          params=(s[0], s[1], p[0], p[1], d[0], d[1]))

    def pool2d(self, op, a: GT, k, s, p) -> GT:
        """ggml_pool_2d over ne0 (W) and ne1 (H) with symmetric padding p."""
        ow = (a.ne[0] + 2 * p[0] - k[0]) // s[0] + 1
        oh = (a.ne[1] + 2 * p[1] - k[1]) // s[1] + 1
        if ow <= 0 or oh <= 0:
            self.fail(f"pooling output would be empty (input {a.ne}, kernel {k})")
        return self._emit(op, (a,), (ow, oh, a.ne[2], a.ne[3]), params=(k[0], k[1], s[0], s[1], p[0], p[1]))

    # -- channels-last (NHWC, ne [C, W, H, N]) kernels ----------------------------------
    @staticmethod
    def _conv_out(size, k, s, pb, pe, d):
        return (size + pb + pe - d * (k - 1) - 1) // s + 1

    def im2col_nhwc(self, data: GT, k, s, pb, pe, d) -> GT:
        """Patches [K, OW, OH, N] of data [C, W, H, N]; k, s, d, pads (begin pb, end pe) as (w, h).
        Rows are (ky, kx, c) with c fastest, K = KH*KW*C."""
        c = data.ne[0]
        ow = self._conv_out(data.ne[1], k[0], s[0], pb[0], pe[0], d[0])
        oh = self._conv_out(data.ne[2], k[1], s[1], pb[1], pe[1], d[1])
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {data.ne}, kernel {k})")
        return self._emit(Op.IM2COL_NHWC, (data,), (c * k[0] * k[1], ow, oh, data.ne[3]),
                          params=(k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1]))

    def pool_nhwc(self, data: GT, out_wh, k, s, pb, pe, d, mode: int) -> GT:
        """Pooling of data [C, W, H, N] to [C, OW, OH, N]; mode 0 max, 1 average of the taps in the
        input, 2 average counting the explicit pads (pb, pe) too."""
        if min(out_wh) <= 0:
            self.fail(f"pooling output would be empty (input {data.ne}, kernel {k})")
        return self._emit(Op.POOL_NHWC, (data,), (data.ne[0], out_wh[0], out_wh[1], data.ne[3]),
                          params=(k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1], mode, pe[0], pe[1]))

    def global_pool_nhwc(self, data: GT, mode: int) -> GT:
        """Max (mode 0) or average (1) over W and H: [C, W, H, N] -> [C, 1, 1, N]."""
        return self._emit(Op.GLOBAL_POOL_NHWC, (data,), (data.ne[0], 1, 1, data.ne[3]), params=(mode,))

    def gemm_packed(self, x: GT, w_packed: GT, bias: GT | None, oc: int) -> GT:
        """x [K, P] times a packed weight [OC, K] (+ bias [OC rounded up to a panel]) -> [OC, P]."""
        k, p, batch = x.ne[0], x.ne[1], x.ne[2]
        panels = -(-oc // _core.GEMM_PANEL)
        if x.ne[3] != 1 or w_packed.ne[0] != panels * _core.GEMM_PANEL * k or w_packed.ne[1] not in (1, batch) \
                or w_packed.ne[2:] != (1, 1):
            self.fail(f"packed GEMM of {x.ne} by a weight {w_packed.ne} for {oc} outputs")
        if bias is not None and bias.ne != (panels * _core.GEMM_PANEL, 1, 1, 1):
            self.fail(f"packed GEMM bias {bias.ne} for {oc} outputs")
        self.flops += 2 * k * oc * p * batch
        srcs = (x, w_packed) + ((bias,) if bias is not None else ())
        return self._emit(Op.GEMM_PACKED, srcs, (oc, p, batch, 1), params=(0, 0, 0))

    def strided_source(self, a: GT) -> GT:
        """``a``, or where ``a`` is permute()'s contiguous copy of a permuted view, that view: for
        readers that take any strides (a copy no row reads is never computed)."""
        row = self._row_at(a.slot)
        if row is not None and row[0] == Op.CONT:
            view = self.rows[row[_core.COL_SRC]]
            if view[0] == Op.PERMUTE:
                return GT(view[1], tuple(view[_core.COL_NE:_core.COL_NE + 4]))
        return a

    def transposed_source(self, a: GT) -> GT | None:
        """Where ``a`` is permute()'s contiguous copy of a swap of the first two dims of some
        tensor (a Transpose of K in attention), that tensor: a^T with no copy. Else None."""
        view = self.strided_source(a)
        if view is a:
            return None
        row = self.rows[view.slot]
        if tuple(row[_core.COL_PARAM:_core.COL_PARAM + 4]) != (1, 0, 2, 3):
            return None
        src = int(row[_core.COL_SRC])
        source = self._row_at(src)
        if source is None or source[0] == Op.WEIGHT:  # weights may be typed: not here
            return None
        return GT(src, tuple(int(d) for d in source[_core.COL_NE:_core.COL_NE + 4]))

    def pack_panels(self, b: GT) -> GT:
        """An activation [N, K, B] as B packed GEMM weights of N outputs over depth K; a
        transposed one (attention's K^T) is gathered from its strided view, not copied first."""
        b = self.strided_source(b)
        n, k, batch = b.ne[0], b.ne[1], b.ne[2]
        if b.ne[3] != 1:
            self.fail(f"packing {b.ne}: at most one batch dim")
        return self._emit(Op.PACK_PANELS, (b,), (-(-n // _core.GEMM_PANEL) * _core.GEMM_PANEL * k, batch, 1, 1))

    def conv_packed(self, x: GT, w_packed: GT, bias: GT | None, oc: int, k, s, pb, pe, d, groups: int = 1) -> GT:
        """Implicit-GEMM conv of x [C, W, H, N] with a packed weight (rows (ky, kx, c)) ->
        [OC, OW, OH, N]; k, s, d and pads (begin pb, end pe) as (w, h). Grouped convs need the
        output channels per group to divide 16 or be a multiple of it (kernels.h)."""
        c = x.ne[0]
        ow = self._conv_out(x.ne[1], k[0], s[0], pb[0], pe[0], d[0])
        oh = self._conv_out(x.ne[2], k[1], s[1], pb[1], pe[1], d[1])
        panels = -(-oc // _core.GEMM_PANEL)
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {x.ne}, kernel {k})")
        ocg, cg = (oc // groups, c // groups) if groups > 1 else (0, 0)
        if groups > 1 and (oc % groups or c % groups or (_core.GEMM_PANEL % ocg and ocg % _core.GEMM_PANEL)):
            self.fail(f"grouped implicit-GEMM conv of {x.ne} to {oc} channels in {groups} groups")
        cspan = c if not ocg else cg if ocg >= _core.GEMM_PANEL else _core.GEMM_PANEL // ocg * cg
        if c > _core.CONV_MAX_C or k[0] * k[1] > 64 or \
                w_packed.ne != (panels * _core.GEMM_PANEL * cspan * k[0] * k[1], 1, 1, 1):
            self.fail(f"implicit-GEMM conv of {x.ne} with kernel {k} by a weight {w_packed.ne}")
        if bias is not None and bias.ne != (panels * _core.GEMM_PANEL, 1, 1, 1):
            self.fail(f"packed GEMM bias {bias.ne} for {oc} outputs")
        self.flops += 2 * (c // groups) * k[0] * k[1] * oc * ow * oh * x.ne[3]
        srcs = (x, w_packed) + ((bias,) if bias is not None else ())
        return self._emit(Op.CONV_PACKED, srcs, (oc, ow, oh, x.ne[3]),
                          params=(0, 0, 0, k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1], ocg, cg))

    def pixel_runs(self, x: GT, kw: int) -> GT:
        """Channels-last x [C, W, H, N] seen as [KW*C, W-KW+1, H, N]: pixel x holds the channels
        of pixels x .. x+KW-1, which lie one after the other (a view whose rows overlap). A conv
        KW wide over few channels is a conv 1 wide over these runs, with the same weight rows."""
        if not 1 <= kw <= x.ne[1] or kw * x.ne[0] > _core.CONV_MAX_C:
            self.fail(f"runs of {kw} pixels of {x.ne}")
        return self._emit(Op.PIXEL_RUNS, (x,), (kw * x.ne[0], x.ne[1] - kw + 1, x.ne[2], x.ne[3]), params=(kw,))

    def depthwise(self, x: GT, w_taps: GT, bias: GT | None, k, s, pb, pe, d) -> GT:
        """Depthwise conv of x [C, W, H, N] by w_taps [KH*KW][C] (+ bias [C]) -> [C, OW, OH, N];
        k, s, d, pads (begin pb, end pe) as (w, h)."""
        c = x.ne[0]
        ow = self._conv_out(x.ne[1], k[0], s[0], pb[0], pe[0], d[0])
        oh = self._conv_out(x.ne[2], k[1], s[1], pb[1], pe[1], d[1])
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {x.ne}, kernel {k})")
        if w_taps.ne != (c * k[0] * k[1], 1, 1, 1) or (bias is not None and bias.ne != (c, 1, 1, 1)):
            self.fail(f"depthwise conv of {x.ne} with kernel {k}: weight {w_taps.ne}")
        self.flops += 2 * k[0] * k[1] * c * ow * oh * x.ne[3]
        srcs = (x, w_taps) + ((bias,) if bias is not None else ())
        return self._emit(Op.DEPTHWISE, srcs, (c, ow, oh, x.ne[3]),
                          params=(0, 0, 0, k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1]))

    def conv_narrow(self, x: GT, w_rows: GT, bias: GT | None, oc: int, k, s, pb, pe, d) -> GT:
        """A conv of x [C, W, H, N] to few channels (up to NARROW_MAX_OC) with the weight as rows
        [OC rounded up to 4][KH*KW*C] -> [OC, OW, OH, N]; k, s, d, pads as (w, h)."""
        c = x.ne[0]
        ow = self._conv_out(x.ne[1], k[0], s[0], pb[0], pe[0], d[0])
        oh = self._conv_out(x.ne[2], k[1], s[1], pb[1], pe[1], d[1])
        oc4 = -(-oc // 4) * 4
        if ow <= 0 or oh <= 0:
            self.fail(f"conv output would be empty (input {x.ne}, kernel {k})")
        if oc > _core.NARROW_MAX_OC or c > _core.CONV_MAX_C or k[0] * k[1] > 64 or \
                w_rows.ne != (oc4 * c * k[0] * k[1], 1, 1, 1) or (bias is not None and bias.ne != (oc4, 1, 1, 1)):
            self.fail(f"narrow conv of {x.ne} to {oc} channels, kernel {k}, weight {w_rows.ne}")
        self.flops += 2 * c * k[0] * k[1] * oc * ow * oh * x.ne[3]
        srcs = (x, w_rows) + ((bias,) if bias is not None else ())
        return self._emit(Op.CONV_NARROW, srcs, (oc, ow, oh, x.ne[3]),
                          params=(0, 0, 0, k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1]))

    def resize(self, data: GT, table: GT, out_ne, layout: int, taps: int) -> GT:
        """Resize of two axes by a tap table [2*taps, OX + OY] (kernels.h): layout 0 plain
        (x = ne0, y = ne1), 1 channels-last (x = ne1, y = ne2)."""
        out_ne = tuple(int(d) for d in out_ne)
        ax = 1 if layout == 1 else 0
        other = [d for d in range(4) if d not in (ax, ax + 1)]
        if any(out_ne[d] != data.ne[d] for d in other) or min(out_ne) <= 0:
            self.fail(f"resize of {data.ne} to {out_ne} changes an axis it does not interpolate")
        if table.ne != (2 * taps, out_ne[ax] + out_ne[ax + 1], 1, 1):
            self.fail(f"resize table {table.ne} does not fit output {out_ne} with {taps} taps")
        return self._emit(Op.RESIZE, (data, table), out_ne, params=(layout, taps))

    def col2im_nhwc(self, cols: GT, bias: GT | None, oc: int, out_wh, k, s, pb, d) -> GT:
        """Sum each input pixel's GEMM output cols [KH*KW*OC, W, H, N] into the transposed
        conv's output [OC, OW, OH, N] (+ bias [OC]); k, s, d, begin pads pb as (w, h)."""
        if cols.ne[0] != k[0] * k[1] * oc or min(out_wh) <= 0:
            self.fail(f"col2im of {cols.ne} for {oc} channels, kernel {k}, output {out_wh}")
        if bias is not None and bias.ne != (oc, 1, 1, 1):
            self.fail(f"transposed conv bias {bias.ne} for {oc} outputs")
        srcs = (cols,) + ((bias,) if bias is not None else ())
        return self._emit(Op.COL2IM_NHWC, srcs, (oc, out_wh[0], out_wh[1], cols.ne[3]),
                          params=(k[0], k[1], s[0], s[1], pb[0], pb[1], d[0], d[1]))

    def pad_mode(self, data: GT, begin, end, mode: int, value: float = 0.0) -> GT:
        """Pad (negative: crop) each ggml dim by begin/end; mode 0 constant, 1 reflect, 2 edge, 3 wrap."""
        out_ne = tuple(int(n + b + e) for n, b, e in zip(data.ne, begin, end))
        if min(out_ne) <= 0:
            self.fail(f"pads {begin}/{end} leave nothing of {data.ne}")
        bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0])
        return self._emit(Op.PAD_MODE, (data,), out_ne, params=(*[int(b) for b in begin], mode, bits))

    def concat_channels(self, parts: list) -> GT:
        """Channels-last [C_i, W, H, N] parts concatenated along C, up to four per pass."""
        if any(g.ne[1:] != parts[0].ne[1:] for g in parts):
            self.fail(f"channels-last concat of {[g.ne for g in parts]}")
        acc, rest = parts[0], list(parts[1:])
        while rest:
            group, rest = [acc] + rest[:3], rest[3:]
            acc = self._emit(Op.CONCAT_C, tuple(group), (sum(g.ne[0] for g in group),) + parts[0].ne[1:])
        return acc

    def concat_along(self, parts: list, dim: int) -> GT:
        """Concat along ggml dim ``dim``: each part as rows [ne0 * ... * ne_dim, the rest]
        (copied contiguous where it is a view), concatenated row by row in one pass per four."""
        for g in parts[1:]:
            if any(k != dim and g.ne[k] != parts[0].ne[k] for k in range(4)):
                self.fail(f"concat along ggml dim {dim}: shapes {[p.ne for p in parts]} differ")
        outer = int(math.prod(parts[0].ne[dim + 1:]))
        rows = [self.reshape(g, (int(math.prod(g.ne[:dim + 1])), outer)) for g in parts]
        ne = list(parts[0].ne)
        ne[dim] = sum(g.ne[dim] for g in parts)
        return self.reshape(self.concat_channels(rows), tuple(ne))

    def transpose2d(self, a: GT) -> GT:
        """[n0, n1, n2, n3] -> [n1, n0, n2, n3]: each matrix transposed, in cache tiles."""
        return self._emit(Op.TRANSPOSE2D, (a,), (a.ne[1], a.ne[0], a.ne[2], a.ne[3]))

    def activation(self, a: GT, act: int, lo: float = 0.0, hi: float = 0.0) -> GT:
        """One of our vectorized activations (_core.ACT_*) with parameters lo, hi."""
        bits = np.array([lo, hi], dtype=np.float32).view(np.uint32)
        return self._emit(Op.ACTIVATION, (a,), a.ne, params=(act, int(bits[0]), int(bits[1])))

    def epilogue(self, a: GT, bias_panels: GT) -> GT:
        """a [C, ...] + bias along C (padded to whole panels) in one pass that a later residual
        Add and activation fold into (fuse_residual, fuse_activation), as into a packed GEMM:
        the epilogue of a matmul that ggml's kernels compute (typed weights, BLAS)."""
        return self._emit(Op.ACTIVATION, (a, None, bias_panels), a.ne, params=(_core.ACT_NONE, 0, 0))

    def _packed_row(self, y: GT):
        """The packed GEMM / conv row that produced ``y`` (through reshapes), or None."""
        row = self._row_at(y.slot)
        while row is not None and row[0] == int(Op.RESHAPE):  # a view of the GEMM's output
            row = self.rows[row[_core.COL_SRC]]
        if row is None or row[0] not in (int(Op.GEMM_PACKED), int(Op.CONV_PACKED), int(Op.CONV_NARROW),
                                         int(Op.DEPTHWISE), int(Op.ACTIVATION)):
            return None
        if row[0] == int(Op.ACTIVATION) and row[_core.COL_SRC + 2] == -1:  # a plain activation, not an epilogue
            return None
        if row[_core.COL_PARAM + _core.P_OC]:  # a channel slice of a concat: its epilogue is final
            return None
        return row

    def concat_channels_in_place(self, parts: list) -> GT | None:
        """Concatenate channels-last tensors [C_i, W, H, N] along C with no copy, when each is
        the output of its own packed GEMM or implicit-GEMM conv (no residual): the first such row
        in emission order gets the whole width and writes its channels, each later one computes
        in place into the previous one's result (kernels.h: channel slices). None, and nothing
        changed, where some part is not such an output. The caller makes sure nothing else
        reads the parts."""
        rows = [self._packed_row(g) for g in parts]
        if len(parts) < 2 or any(r is None or r[0] not in (int(Op.GEMM_PACKED), int(Op.CONV_PACKED))
                                 or r[_core.COL_SRC + 3] != -1
                                 or (r[0] == int(Op.GEMM_PACKED) and r[_core.COL_NE + 2] != 1) for r in rows) \
                or len({r[1] for r in rows}) != len(rows) or any(g.ne[1:] != parts[0].ne[1:] for g in parts):
            return None
        total = sum(g.ne[0] for g in parts)
        offsets = np.cumsum([0] + [g.ne[0] for g in parts[:-1]])
        into = None
        for k in sorted(range(len(parts)), key=lambda k: rows[k][1]):
            row, part = rows[k], parts[k]
            row[_core.COL_PARAM + _core.P_COFF] = int(offsets[k])
            row[_core.COL_PARAM + _core.P_OC] = row[_core.COL_NE]
            row[_core.COL_NE] = total
            if into is not None:
                row[_core.COL_PARAM + _core.P_INTO] = 1
                row[_core.COL_SRC + 3] = into
            r = self.rows[part.slot]
            while r is not row:  # the reshapes from the GEMM's [OC, P] to [OC, W, H, N]
                r[_core.COL_NE] = total
                r = self.rows[r[_core.COL_SRC]]
            into = part.slot
        return GT(into, (total,) + parts[0].ne[1:])

    def fuse_activation(self, y: GT, act: int, lo: float = 0.0, hi: float = 0.0) -> bool:
        """Fold an activation (_core.ACT_*) into the packed GEMM that produced ``y``, if it did and
        has none yet; the caller makes sure nothing else reads y before it."""
        row = self._packed_row(y)
        if row is None or row[_core.COL_PARAM] != 0:
            return False
        bits = np.array([lo, hi], dtype=np.float32).view(np.uint32)
        row[_core.COL_PARAM:_core.COL_PARAM + 3] = [act, int(bits[0]), int(bits[1])]
        return True

    def fuse_bias(self, y: GT, bias_panels: GT) -> bool:
        """Fold a bias (a weight padded to whole panels) into the packed GEMM that produced
        ``y``, if it has none and no activation yet (the bias weight is a leaf: built before
        every row, it may be emitted after the GEMM)."""
        row = self._packed_row(y)
        if row is None or row[0] != int(Op.GEMM_PACKED) or row[_core.COL_PARAM] != 0 or \
                row[_core.COL_SRC + 2] != -1 or row[_core.COL_SRC + 3] != -1 or \
                bias_panels.ne != (-(-row[_core.COL_NE] // _core.GEMM_PANEL) * _core.GEMM_PANEL, 1, 1, 1):
            return False
        row[_core.COL_SRC + 2] = bias_panels.slot
        return True

    def fuse_residual(self, y: GT, residual: GT) -> bool:
        """Fold ``+ residual`` (same elements, same layout) into the epilogue of the packed GEMM
        or conv that produced ``y``, before any activation, if the residual was computed
        before that GEMM."""
        row = self._packed_row(y)
        if row is None or row[0] not in (int(Op.GEMM_PACKED), int(Op.CONV_PACKED), int(Op.ACTIVATION)) or \
                row[_core.COL_PARAM] != 0 or row[_core.COL_SRC + 3] != -1 or residual.slot >= row[1] or \
                int(math.prod(residual.ne)) != int(math.prod(row[_core.COL_NE:_core.COL_NE + 4])):
            return False
        row[_core.COL_SRC + 3] = residual.slot
        return True
