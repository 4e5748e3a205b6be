"""The shape side of plan families (plan_family.py): exact affine fits of a family's integers
in ``t``, the rules each instruction row's predicted shape must keep (the ones ggml applies,
proved once where they hold as identities of the fits), and the folds whose values follow
their fit without being replayed."""
from __future__ import annotations

import math

import numpy as np

from ggonnx import _core
from ggonnx.emitter import amx_tiles_len, can_repeat, onnx_to_ne
from ggonnx.host_kernels import HostKernel

Op = _core.Op
P_OC = _core.COL_PARAM + _core.P_OC
PANEL = _core.GEMM_PANEL

INPUT, CONST, WEIGHT = int(Op.INPUT), int(Op.CONST), int(Op.WEIGHT)  # plain ints: enum lookups are slow

_SAME_SHAPE_OPS = {int(o) for o in (Op.UNARY, Op.RELU, Op.TANH, Op.LEAKY_RELU, Op.CLAMP, Op.NORM, Op.RMS_NORM,
                                    Op.SCALE_BIAS, Op.CONT, Op.SOFT_MAX, Op.ACTIVATION, Op.NORM_AFFINE)}
_BINARY_OPS = {int(o) for o in (Op.ADD, Op.SUB, Op.MUL, Op.DIV)}
# ops whose shape the table states (the others' shapes follow from their sources): at a new t it
# comes from the affine fit, so the samples must lie on one
_STATED_OPS = [int(o) for o in (Op.RESHAPE, Op.REPEAT, Op.GEMM_PACKED, Op.VIEW, Op.WEIGHT)]


# products over a shared depth -> [N, M]: op -> (depth dim, kept dim) of both operands;
# mul_mat [K, N] x [K, M], out_prod [N, K] x [M, K]
_PRODUCT_DIMS = {int(Op.MUL_MAT): (0, 1), int(Op.OUT_PROD): (1, 0)}


def _reads_like_binary(op: int, srcs: list) -> bool:
    """Whether the row's shape is its first source's, with a second one that repeats to it (an
    elementwise op, or a softmax with an added mask)."""
    return op in _BINARY_OPS or (op == Op.SOFT_MAX and len(srcs) == 2)


def _row_ne(op: int, srcs: list, predicted: tuple, params):
    """The shape a row of op ``op`` gets from source shapes ``srcs`` (ggml's own result shape and
    preconditions, or our kernel's); for ops whose shape the table states (reshapes, repeats, a
    packed GEMM's outputs), ``predicted`` where it is consistent with the sources. None where
    the row cannot be built, or for ops without a rule here."""
    s0 = srcs[0] if srcs else None
    if _reads_like_binary(op, srcs):
        return s0 if can_repeat(srcs[1], s0) else None
    if op in _SAME_SHAPE_OPS:
        return s0
    if op == Op.REPEAT:
        return predicted if can_repeat(s0, predicted) else None
    if op in (Op.SUM_ROWS, Op.MEAN):
        return (1,) + s0[1:]
    if op in _PRODUCT_DIMS:
        depth, kept = _PRODUCT_DIMS[op]
        s1 = srcs[1]
        ok = s0[depth] == s1[depth] and s1[2] % s0[2] == 0 and s1[3] % s0[3] == 0
        return (s0[kept], s1[kept], s1[2], s1[3]) if ok else None
    if op == Op.GEMM_AMX_BF16:  # the tiles' size fixes N and K; M follows the activation
        n = predicted[0]
        ok = s0 == (amx_tiles_len(n, srcs[1][0]), 1, 1, 1) and srcs[1][2:] == (1, 1)
        return (n, srcs[1][1], 1, 1) if ok else None
    if op == Op.GET_ROWS:
        return (s0[0], srcs[1][0], 1, 1) if s0[2:] == (1, 1) and srcs[1][1:] == (1, 1, 1) else None
    if op == Op.RESHAPE:
        return predicted if math.prod(predicted) == math.prod(s0) else None
    if op == Op.PERMUTE:
        ne = [0] * 4
        for i in range(4):
            ne[params[i]] = s0[i]
        return tuple(ne)
    if op == Op.TRANSPOSE2D:
        return (s0[1], s0[0], s0[2], s0[3])
    if op == Op.CONCAT_C:
        return (sum(s[0] for s in srcs),) + s0[1:] if all(s[1:] == s0[1:] for s in srcs) else None
    if op == Op.PACK_PANELS:
        return (-(-s0[0] // PANEL) * PANEL * s0[1], s0[2], 1, 1) if s0[3] == 1 else None
    if op == Op.GEMM_PACKED:  # not a channel slice written in place (P_OC == 0)
        x, w, oc = s0, srcs[1], predicted[0]
        padded = -(-oc // PANEL) * PANEL
        ne = (oc, x[1], x[2], 1)
        ok = (x[3] == 1 and w[0] == padded * x[0] and w[1] in (1, x[2]) and w[2:] == (1, 1)
              and (len(srcs) < 3 or srcs[2] == (padded, 1, 1, 1)) and (len(srcs) < 4 or srcs[3] == ne))
        return ne if ok else None
    return None


def _equal(a, b) -> bool:
    """Whether two int arrays of one shape are equal (np.array_equal's checks cost ~5 us a call)."""
    return bool((a == b).all())


class _RuleCheck:
    """The rules of an island's moving rows as whole-array tests: whether every row, fed its
    sources' shapes at t, gives its own predicted shape, packed panels' counts rounded up. That is
    the usual case, and then _shapes_at skips its row-by-row pass (0.65 ms a token for gpt2's 12
    layers); ops without an array form here keep the row-by-row rule. Given the family's fit
    (slope, base, unfit rows), the rules that hold at every t are left out (_drop_identities)."""

    def __init__(self, rows, rule_rows, fit=None):
        groups: dict = {}
        self.other = []
        for i in rows:
            rule = rule_rows.get(i)
            if rule is None:
                continue
            op, srcs, params = rule
            if _reads_like_binary(op, srcs):
                groups.setdefault("binary", []).append((i, srcs[0], srcs[1]))
            elif op in _SAME_SHAPE_OPS:
                groups.setdefault("same", []).append((i, srcs[0]))
            elif op == Op.REPEAT:
                groups.setdefault("repeat", []).append((i, srcs[0]))
            elif op in (Op.SUM_ROWS, Op.MEAN):
                groups.setdefault("rows", []).append((i, srcs[0]))
            elif op in _PRODUCT_DIMS:
                groups.setdefault(("product", op), []).append((i, srcs[0], srcs[1]))
            elif op == Op.RESHAPE:
                groups.setdefault("reshape", []).append((i, srcs[0]))
            elif op == Op.PERMUTE:
                groups.setdefault("permute", []).append((i, srcs[0]) + tuple(params[:4]))
            elif op == Op.TRANSPOSE2D:
                groups.setdefault("transpose", []).append((i, srcs[0]))
            elif op == Op.CONCAT_C:
                groups.setdefault(("concat", len(srcs)), []).append((i, *srcs))
            elif op == Op.PACK_PANELS:
                groups.setdefault("pack", []).append((i, srcs[0]))
            elif op == Op.GEMM_PACKED:  # never a channel slice here (_build_island refuses those)
                groups.setdefault(("gemm", len(srcs)), []).append((i, *srcs))
            else:
                self.other.append((i, rule))
        self.groups = {k: np.asarray(v, np.intp).T for k, v in groups.items()}
        self.rows = np.asarray([i for i in rows if i in rule_rows], np.intp)
        self.row_set = frozenset(rows)
        self._compile()
        if fit is not None:
            self._drop_identities(*fit)

    def shapes(self, p, consumers):
        """The rows whose shape at t is not the predicted ``p`` [rows, 4] (int64) -- packed
        panels, whose count rounds up -- as {row: shape}, where every rule holds with them and
        every reader of theirs is a moving row; else None (the caller goes row by row)."""
        changed = {}
        if "pack" in self.groups:
            i, a = self.groups["pack"]
            x = p[a]
            ones = np.ones_like(x[:, 2])
            want = np.stack([-(-x[:, 0] // PANEL) * PANEL * x[:, 1], x[:, 2], ones, ones], axis=1)
            if np.any(x[:, 3] != 1):
                return None
            moved = np.any(want != p[i], axis=1)
            if moved.any():
                if any(c not in self.row_set for r in i[moved].tolist() for c in consumers.get(r, ())):
                    return None
                p = p.copy()
                p[i] = want
                changed = {int(r): tuple(int(d) for d in w) for r, w in zip(i[moved], want[moved])}
        return changed if self._holds(p) else None

    def _compile(self):
        """The groups' rules as flat cell indices into a [rows, 4] shape table: cells that must be
        equal, numerators that their denominators must divide, rows whose element counts must
        match, cells that must be 1, and per concat width the result and part columns that must
        add up. ``_holds`` then tests every rule in a few array ops (gpt2's decode step: 110 ->
        ~20 us a token, where a numpy call per group and rule was the cost)."""
        eq_l, eq_r, num, den, ones = [], [], [], [], []

        def eq(r1, c1, r2, c2):
            eq_l.append(4 * r1 + c1)
            eq_r.append(4 * r2 + c2)

        def divides(rd, cd, rn, cn):  # p[rd, cd] divides p[rn, cn]
            den.append(4 * rd + cd)
            num.append(4 * rn + cn)

        g = self.groups
        for i, a in g.get("same", np.zeros((2, 0), np.intp)).T:
            for c in range(4):
                eq(i, c, a, c)
        for i, a, b in g.get("binary", np.zeros((3, 0), np.intp)).T:
            for c in range(4):
                eq(i, c, a, c)
                divides(b, c, a, c)
        for i, a in g.get("repeat", np.zeros((2, 0), np.intp)).T:
            for c in range(4):
                divides(a, c, i, c)
        for i, a in g.get("rows", np.zeros((2, 0), np.intp)).T:
            ones.append(4 * i)
            for c in range(1, 4):
                eq(i, c, a, c)
        for op, (depth, kept) in _PRODUCT_DIMS.items():
            for i, a, b in g.get(("product", op), np.zeros((3, 0), np.intp)).T:
                eq(a, depth, b, depth)
                divides(a, 2, b, 2)
                divides(a, 3, b, 3)
                for c, (r, rc) in enumerate([(a, kept), (b, kept), (b, 2), (b, 3)]):
                    eq(i, c, r, rc)
        for i, a, *dest in g.get("permute", np.zeros((6, 0), np.intp)).T:  # source dim k goes to dest[k]
            for k in range(4):
                eq(i, dest[k], a, k)
        for i, a in g.get("transpose", np.zeros((2, 0), np.intp)).T:
            for c, ac in enumerate((1, 0, 2, 3)):
                eq(i, c, a, ac)
        self.sums = []
        for key, rows in g.items():
            if key[0] == "concat":
                for i, *parts in rows.T:
                    for r in parts:
                        for c in range(1, 4):
                            eq(i, c, r, c)
                self.sums.append((4 * rows[0], 4 * rows[1:]))
        cells = lambda v: np.asarray(v, np.intp)  # noqa: E731
        self.eq_l, self.eq_r, self.num, self.den, self.ones = map(cells, (eq_l, eq_r, num, den, ones))
        self.reshape = g.get("reshape")

    def _drop_identities(self, slope, base, unfit):
        """Leave out the rules that hold at every t: the family fitted each row's shape as an exact
        affine function of t, and where a rule holds between such functions as an identity (equal
        cells with one slope and intercept, a constant divisor of both, products or sums that
        agree as polynomials) no t can break it. Rows off the fit (unfit ones, packed panels whose
        count rounds up) keep all their rules. What is left is checked per t by ``_holds``."""
        fitted = ~np.asarray(unfit, bool).copy()
        if "pack" in self.groups:
            fitted[self.groups["pack"][0]] = False
        s, b = np.asarray(slope, np.int64).reshape(-1), np.asarray(base, np.int64).reshape(-1)
        ok = np.repeat(fitted, 4)  # per cell

        def same(l, r):
            return ok[l] & ok[r] & (s[l] == s[r]) & (b[l] == b[r])

        keep = ~same(self.eq_l, self.eq_r)
        self.eq_l, self.eq_r = self.eq_l[keep], self.eq_r[keep]
        d, n = self.den, self.num
        const_divisor = ok[d] & ok[n] & (s[d] == 0) & (b[d] >= 1)
        divisor = np.where(const_divisor, b[d], 1)
        keep = ~((const_divisor & (s[n] % divisor == 0) & (b[n] % divisor == 0)) | same(d, n))
        self.num, self.den = n[keep], d[keep]
        keep = ~(ok[self.ones] & (s[self.ones] == 0) & (b[self.ones] == 1))
        self.ones = self.ones[keep]
        if self.reshape is not None:  # element counts: polynomials of degree <= 4 in t, equal at 5 points
            cells = lambda r: [(int(s[4 * r + c]), int(b[4 * r + c])) for c in range(4)]  # noqa: E731
            count = lambda r, t: math.prod(sl * t + ba for sl, ba in cells(r))  # noqa: E731
            keep = [not (fitted[i] and fitted[a] and all(count(i, t) == count(a, t) for t in range(5)))
                    for i, a in self.reshape.T.tolist()]
            self.reshape = self.reshape[:, keep] if any(keep) else None
        sums = []
        for total, parts in self.sums:
            keep = ~(ok[total] & ok[parts].all(axis=0) & (s[total] == s[parts].sum(axis=0))
                     & (b[total] == b[parts].sum(axis=0)))
            if keep.any():
                sums.append((total[keep], parts[:, keep]))
        self.sums = sums

    def _holds(self, p) -> bool:
        """Whether every other rule gives the shapes ``p`` [rows, 4] (int64) at t (``shapes`` has
        put the packed panels' own into ``p``)."""
        if len(self.rows) and p[self.rows].min() < 1:
            return False
        flat = p.reshape(-1)  # empty rule lists are skipped: most are identities (_drop_identities)
        if (len(self.eq_l) and not _equal(flat[self.eq_l], flat[self.eq_r])) \
                or (len(self.num) and np.any(flat[self.num] % flat[self.den])) \
                or (len(self.ones) and np.any(flat[self.ones] != 1)):
            return False
        if self.reshape is not None and not _equal(p[self.reshape[0]].prod(axis=1), p[self.reshape[1]].prod(axis=1)):
            return False
        if any(not _equal(flat[total], flat[parts].sum(axis=0)) for total, parts in self.sums):
            return False
        for key, rows in self.groups.items():
            if key[0] == "gemm" and not self._gemm_holds(p, rows[0], rows[1:]):
                return False
        for i, (op, srcs, params) in self.other:
            want = tuple(p[i].tolist())
            if _row_ne(op, [tuple(p[r].tolist()) for r in srcs], want, params) != want:
                return False
        return True

    @staticmethod
    def _gemm_holds(p, i, srcs) -> bool:
        """_row_ne's GEMM_PACKED rule over rows at once: x [K, M, B, 1], packed w, bias, residual."""
        x, w, y = p[srcs[0]], p[srcs[1]], p[i]
        padded = -(-y[:, 0] // PANEL) * PANEL
        ones = np.ones_like(padded)
        if not _equal(y, np.stack([y[:, 0], x[:, 1], x[:, 2], ones], axis=1)) or np.any(x[:, 3] != 1) \
                or np.any(w[:, 0] != padded * x[:, 0]) or np.any((w[:, 1] != 1) & (w[:, 1] != x[:, 2])) \
                or np.any(w[:, 2:] != 1):
            return False
        if len(srcs) > 2 and not _equal(p[srcs[2]], np.stack([padded, ones, ones, ones], axis=1)):
            return False
        return len(srcs) < 4 or _equal(p[srcs[3]], y)


class _RowOrder(list):
    """Row indices, ascending, that also answer ``in`` in constant time."""

    def __init__(self, rows):
        super().__init__(sorted(rows))
        self._set = frozenset(self)

    def __contains__(self, i) -> bool:
        return i in self._set


def _leaf_follows_fit(leaf, fit, unfit, in_fit, in_slots, consts, rebuild) -> bool:
    """Whether an input or constant row has its fitted shape at every t, so that instantiating
    need not compare them: an input of rank <= 4 whose fitted dims are the row's (two affine
    functions equal at the samples are one function), or a constant never rebuilt (the same array
    at every t) on a row that does not move."""
    i, op, index = leaf
    slope, base = fit
    if unfit[i]:
        return False
    if op == CONST:
        return index not in rebuild and not slope[i].any() and \
            onnx_to_ne(np.shape(consts[index])) == tuple(base[i].tolist())
    slots = [int(x) for x in in_slots]
    if op != INPUT or index not in slots:
        return False
    a, e = in_fit.bounds[slots.index(index)]
    if e - a > 4:  # onnx_to_ne drops or merges dims there: not affine
        return False
    pad = 4 - (e - a)
    return (in_fit.slope[a:e][::-1].tolist() + [0] * pad == slope[i].tolist()
            and in_fit.base[a:e][::-1].tolist() + [1] * pad == base[i].tolist())


def _fit(ts, values):
    """(slope, intercept) int64 arrays with values[k] == slope * ts[k] + intercept exactly, or None."""
    v = [np.asarray(x, dtype=np.int64) for x in values]
    slope, base, unfit = _fit_rows(ts, [x.reshape(-1, 1) for x in v])
    return None if unfit.any() else (slope.reshape(v[0].shape), base.reshape(v[0].shape))


def _fit_rows(ts, tables):
    """Per-row exact affine fits of int tables across samples: (slope, base, unfit) where unfit
    marks the rows no affine function explains (their slope 0, base the latest sample)."""
    v = np.stack([np.asarray(x, dtype=np.int64) for x in tables])
    dt = ts[1] - ts[0]
    slope = (v[1] - v[0]) // dt
    base = v[0] - slope * ts[0]
    bad = np.any((v[1] - v[0]) % dt, axis=1)
    for t, x in zip(ts[2:], v[2:]):
        bad |= np.any(slope * t + base != x, axis=1)
    slope[bad], base[bad] = 0, v[-1][bad]
    return slope, base, bad


# ops whose outputs are their value inputs moved, added or multiplied: with affine value inputs
# their outputs are polynomials in t, affine unless two moving values multiply, and then the
# samples' fit refuses them (three distinct points of a true quadratic are never collinear).
# Per op, which inputs carry values (None: all); the others (indices, axes, shapes) must not
# depend on t. Ops that floor, compare, clamp or pick by a moving index are not here: collinear
# at the samples, they may still step later.
_AFFINE_FOLDS = {"Identity": (0,), "Neg": (0,), "Cast": (0,), "Flatten": (0,), "Transpose": (0,),
                 "Unsqueeze": (0,), "Squeeze": (0,), "Reshape": (0,), "Gather": (0,), "Slice": (0,),
                 "Expand": (0,), "Concat": None, "Add": None, "Sub": None, "Mul": None}


def _affine_fold_fits(fold, ts, records, affine, touched):
    """{output name: (fit, dtype)} of a fold proved affine in t (see _drop_affine_folds), or None."""
    op = fold.node.op_type
    if op not in _AFFINE_FOLDS or fold.node.domain not in ("", "ai.onnx") or not isinstance(fold.evaluator, HostKernel):
        return None
    values = _AFFINE_FOLDS[op]
    fed = dict(zip(fold.feed_names, fold.in_names))  # our kernels are fed input j as "in<j>"
    names = [fed.get(f"in{j}", "") for j in range(len(fold.node.inputs))]
    moving = [j for j, n in enumerate(names) if n and n in touched]
    if any(names[j] not in affine or (values is not None and j not in values) for j in moving):
        return None
    fits = {}
    for n in fold.out_names:
        outs = [r.consts.get(n) for r in records]
        if any(not isinstance(a, np.ndarray) or a.dtype.kind != "i" for a in outs):  # signed: no wrap at 0
            return None
        if op == "Cast" and any(not isinstance(a, np.ndarray) or a.dtype.kind != "i"
                                or a.dtype.itemsize > outs[0].dtype.itemsize for a in fold.feeds):
            return None  # signed integers widened or kept
        fit = _affine_content(ts, outs)
        if fit is None:
            return None
        fits[n] = fit
    return fits


def _replay_call(fold):
    """How ``_replay`` runs a fold: (our host kernel's ``call``, [(value name or None, traced
    array) per kernel argument]), or (None, [(feed name, value name, traced array)]) for another
    evaluator, run through its dict of feeds."""
    fed = {f: (n, a) for f, n, a in zip(fold.feed_names, fold.in_names, fold.feeds)}
    ev = fold.evaluator
    if isinstance(ev, HostKernel) and all(not n or n in fed for n in ev.names):
        return ev.call, [fed[n] if n else (None, None) for n in ev.names]
    return None, list(zip(fold.feed_names, fold.in_names, fold.feeds))


class _ShapeFits:
    """Exact affine fits of several shapes' dims, evaluated together: one array op per ``t``
    (a decode step's plan has some 70 shapes to write)."""

    def __init__(self, fits: list):
        self.slope = np.concatenate([np.reshape(s, -1) for s, _ in fits] + [np.zeros(0, np.int64)])
        self.base = np.concatenate([np.reshape(b, -1) for _, b in fits] + [np.zeros(0, np.int64)])
        ends = np.cumsum([np.size(s) for s, _ in fits]).tolist()
        self.bounds = list(zip([0] + ends[:-1], ends))

    def at(self, t) -> tuple:
        """The shapes at ``t``; None where some dim is below 1 (``t`` is below the samples)."""
        flat = (self.slope * t + self.base).tolist()
        if min(flat, default=1) < 1:
            return None
        return tuple(tuple(flat[a:b]) for a, b in self.bounds)


def _fit_shapes(ts, samples):
    """The exact affine fits of each shape's dims across samples (tuples of shapes), or None."""
    if any(len(x) != len(samples[0]) or [len(a) for a in x] != [len(a) for a in samples[0]] for x in samples):
        return None
    fits = [_fit(ts, [x[j] for x in samples]) for j in range(len(samples[0]))]
    return None if any(f is None for f in fits) else _ShapeFits(fits)


def _same(arrays) -> bool:
    a0 = arrays[0]
    return all(type(a) is type(a0) and np.shape(a) == np.shape(a0) and np.array_equal(a, a0) for a in arrays[1:])


def _affine_content(ts, arrays):
    """An exact elementwise affine fit of integer arrays of one shape across the samples, or None."""
    if any(not isinstance(a, np.ndarray) or a.dtype.kind not in "iub" or a.shape != arrays[0].shape
           for a in arrays):
        return None
    fit = _fit(ts, arrays)
    return None if fit is None else (fit, arrays[-1].dtype)
