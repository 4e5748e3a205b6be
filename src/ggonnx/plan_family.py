"""Plans that survive a growing axis: one traced structure, instantiated per signature.

A decoder fed its KV cache sees a new input signature every token (the past length grows by
one), and tracing a plan costs several times the token's compute. When three plans traced on
signatures along one line -- every input dim ``a * t + b`` for a parameter ``t`` -- have the
same structure (the same steps, instruction ops and sources, float parameters and host nodes),
``PlanFamily.build`` fits each differing integer as an exact affine function of ``t`` and
``instantiate`` writes the plan of a further signature on that line without tracing:

- the instruction tables' ggml shapes (``COL_NE``) evaluated at ``t``; every row whose shape
  or whose sources' shapes change is checked by the same rule ggml applies (``_derived_ne``),
  so a mispredicted shape is refused here, never asserted on by ggml; integer parameters,
  views and ops without a rule must not change at all;
- plan-time values that depend on the signature (shape arithmetic, position rows, masks) are
  recomputed exactly by replaying the folds that read them, and the plan-owned constants,
  host-step constants and constant outputs made from them rebuilt; a replayed value a lowering
  read structurally must equal its affine prediction, else the signature is traced;
- host steps keep their kernels and check their predicted shapes at run time, as traced
  plans do (a mismatch re-traces).

Families cover ``t`` at or above the smallest traced one (a clamp saturated at the samples
stays saturated above them). Anything that does not fit is simply traced as before.
"""
from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from ggonnx import _core
from ggonnx.emitter import as_ggml_array, onnx_to_ne
from ggonnx.errors import GgonnxError
from ggonnx.plan_family_fit import (
    _STATED_OPS, CONST, INPUT, P_OC, WEIGHT, _affine_content, _affine_fold_fits, _fit, _fit_rows, _fit_shapes,
    _leaf_follows_fit, _replay_call, _row_ne, _RowOrder, _RuleCheck, _same)
from ggonnx.planner import CompiledPlan, HostStep, IslandStep

Op = _core.Op
# a plan family's allocation is planned for up to this many lengths past the one written, and
# at most a quarter of t past it, so that a family over a batch dim (activations ~ t) or a
# sequence (attention ~ t^2) holds at most 1.25x (1.56x) its memory: one allocation plan per
# 4..32 tokens of a growing KV cache instead of one a token
HEADROOM = 32
NE = slice(_core.COL_NE, _core.COL_NE + 4)


def _flat(sig) -> list | None:
    """The signature's dims in one list, or None for a signature with sequences or maps."""
    out = []
    for shape in sig:
        if shape and not isinstance(shape[0], (int, np.integer)):
            return None
        out.extend(shape)
    return out


def line_key(sig):
    """Signatures that may share a family have the same key (the inputs' ranks)."""
    return tuple(len(s) for s in sig) if _flat(sig) is not None else None


class PlanFamily:
    """Plans for the signatures on one line, from three traced ones (see the module docstring)."""

    def __init__(self):
        self.sig_fit = None       # (slope, base) of the flattened signature
        self.pos = 0              # the flattened dim that is the parameter t
        self.t_min = 0
        self.template = None      # the latest traced CompiledPlan
        self.record = None        # its TraceRecord
        # per island: (ne fit, moving rows, readers, rules, leaves, in/out fits, rebuilt consts,
        # _RuleCheck)
        self.islands = []
        self.host_shapes = {}     # step index -> fits of its output shapes
        self.replay = []          # FoldRecords to re-run, in order
        self.replay_calls = []    # per replayed fold: (call, [(value name, traced array) per argument])
        self.predicted = {}       # name -> (fit, dtype) of structural values read by lowerings
        # name -> (fit, dtype) of the varying values known as affine functions of t: constants
        # lowerings produced, and the outputs of folds _drop_affine_folds proved affine
        self.leaves = {}

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(cls, samples: list):
        """A family from [(signature, CompiledPlan)] (three, distinct t, oldest first), or None."""
        flats = [_flat(sig) for sig, _ in samples]
        if any(f is None or len(f) != len(flats[0]) for f in flats):
            return None
        varying = [i for i in range(len(flats[0])) if len({f[i] for f in flats}) > 1]
        if not varying:
            return None
        fam = cls()
        fam.pos = varying[0]
        ts = [f[fam.pos] for f in flats]
        if len(set(ts)) != len(ts):
            return None
        fam.sig_fit = _fit(ts, flats)
        plans = [p for _, p in samples]
        records = [p.record for p in plans]
        if fam.sig_fit is None or any(r is None for r in records) or not fam._build(ts, plans, records):
            return None
        fam.t_min = min(ts)
        fam.template, fam.record = plans[-1], records[-1]
        return fam

    def _build(self, ts, plans, records) -> bool:
        p0, r0 = plans[-1], records[-1]
        if any(len(p.steps) != len(p0.steps) or p.n_env != p0.n_env or p.input_ids != p0.input_ids
               or [k for k, _ in p.output_sources] != [k for k, _ in p0.output_sources]
               or p.env_consts.keys() != p0.env_consts.keys() or len(r.islands) != len(r0.islands)
               or [f.node for f in r.folds] != [f.node for f in r0.folds] for p, r in zip(plans, records)):
            return False
        # plan-time values: which differ across the samples, and which must be replayed
        names = set().union(*(r.consts.keys() for r in records))
        if any(r.consts.keys() != r0.consts.keys() for r in records):
            return False
        varying = {n for n in names if not _same([r.consts[n] for r in records])}
        for n in r0.lowered & varying:
            fit = _affine_content(ts, [r.consts[n] for r in records])
            if fit is None:
                return False
            self.leaves[n] = fit
        touched = set(self.leaves)
        for fold in r0.folds:
            if touched.intersection(fold.in_names):
                self.replay.append(fold)
                self.replay_calls.append(_replay_call(fold))
                touched.update(fold.out_names)
        if varying - touched:  # differs, yet nothing that could be replayed explains it
            return False
        data = {o[0] for _, origins in r0.islands for o in origins if o is not None}
        data |= set(r0.env_const_names.values()) | {n for n in r0.output_const_names if n}
        for n in (r0.lowering_reads & touched) - set(self.leaves):
            fit = _affine_content(ts, [r.consts[n] for r in records])
            if fit is None and n not in data:
                return False
            if fit is not None:
                self.predicted[n] = fit
        # steps
        for k, step in enumerate(p0.steps):
            kinds = [type(p.steps[k]) for p in plans]
            if any(t is not type(step) for t in kinds):
                return False
            if isinstance(step, HostStep):
                if any(p.steps[k].node is not step.node or p.steps[k].in_ids != step.in_ids for p in plans) \
                        or step.node.op_type in ("If", "Loop", "Scan"):
                    return False
                shapes = [p.steps[k].out_shapes for p in plans]
                fits = None if any(s is None for ss in shapes for s in ss) else _fit_shapes(ts, shapes)
                if fits is None:
                    return False
                self.host_shapes[k] = fits
            elif not self._build_island(ts, [p.steps[k] for p in plans],
                                        [r.islands[len(self.islands)] for r in records], touched):
                return False
        if len(self.islands) != len(r0.islands):
            return False
        self._drop_affine_folds(ts, records, touched)
        return True

    def _drop_affine_folds(self, ts, records, touched) -> None:
        """Replay fewer folds (gpt2 with a KV cache: 12 of 28 a token). A fold whose op moves or adds its value
        inputs without looking at them (plan_family_fit._AFFINE_FOLDS), fed only affine values and static ones,
        has outputs affine in t: their fit is exact where the samples fit one, so they join
        ``leaves`` and the fold is not run. Folds whose outputs nothing reads at instantiation
        (rebuilt constants, host-step constants, constant outputs, checked predictions) are
        dropped too."""
        affine = set(self.leaves)
        kept = []
        for fold, call in zip(self.replay, self.replay_calls):
            fits = _affine_fold_fits(fold, ts, records, affine, touched)
            if fits is None:
                kept.append((fold, call))
            else:
                self.leaves.update(fits)
                affine.update(fits)
        r0 = records[-1]
        needed = set(self.predicted) | set(r0.env_const_names.values()) | {n for n in r0.output_const_names if n}
        needed |= {name for island in self.islands for name, _ in island[7].values()}
        live = []
        for fold, call in reversed(kept):
            if needed.intersection(fold.out_names):
                live.append((fold, call))
                needed.update(n for n in fold.in_names if n)
        live.reverse()
        self.replay = [f for f, _ in live]
        self.replay_calls = [c for _, c in live]

    def _build_island(self, ts, steps, islands, touched) -> bool:
        s0 = steps[-1]
        if any(s.in_ids != s0.in_ids or s.out_ids != s0.out_ids or s.out_dtypes != s0.out_dtypes
               or [getattr(c, "bound", c) for c in s.in_converters] !=
               [getattr(c, "bound", c) for c in s0.in_converters] for s in steps):
            return False
        args = [a for a, _ in islands]
        (ins0, fp0, consts0, in_slots, in_shapes0, out_slots, out_shapes0, threads, names), origins = islands[-1]
        if any(a[0].shape != ins0.shape or a[3] != in_slots or a[5] != out_slots or a[7] != threads
               or len(a[2]) != len(consts0) or not np.array_equal(a[1], fp0) for a in args):
            return False
        ins = [a[0] for a in args]
        fixed = np.ones(ins0.shape[1], bool)
        fixed[NE] = False
        if any(not np.array_equal(x[:, fixed], ins0[:, fixed]) for x in ins):
            return False
        fit = _fit_rows(ts, [x[:, NE] for x in ins])
        in_fit, out_fit = _fit_shapes(ts, [a[4] for a in args]), _fit_shapes(ts, [a[6] for a in args])
        if in_fit is None or out_fit is None:
            return False
        slope, base, unfit = fit
        if np.any(unfit & np.isin(ins0[:, 0], _STATED_OPS)):  # a stated shape must follow the line
            return False
        fit = (slope, base)
        # plan-owned constants: equal in every sample, or rebuilt from a replayed value
        rebuild = {}
        for j, origin in enumerate(origins):
            if origin is not None and origin[0] in touched:
                rebuild[j] = origin
            elif not _same([a[2][j] for a in args]):
                return False
        # rows whose shape or sources' shapes change must follow a rule; params never change
        moving = np.any(slope != 0, axis=1) | unfit
        srcs = ins0[:, _core.COL_SRC:_core.COL_SRC + 4]
        slot_row = {int(ins0[i, _core.COL_OUT]): i for i in range(len(ins0))}
        src_rows = np.vectorize(lambda s: slot_row.get(int(s), -1))(srcs) if len(ins0) else srcs
        touched_rows = moving | np.any((src_rows >= 0) & moving[np.maximum(src_rows, 0)], axis=1)
        rows = np.nonzero(touched_rows)[0]
        for i in rows:
            op = int(ins0[i, 0])
            if op in (Op.INPUT, Op.CONST):
                continue   # checked against the arrays themselves when instantiated
            if op == Op.GEMM_PACKED and ins0[i, P_OC]:
                return False
            src_ne = [tuple(ins0[src_rows[i, k], NE]) for k in range(4) if src_rows[i, k] >= 0]
            ne = tuple(ins0[i, NE])
            if op in (Op.WEIGHT, Op.VIEW) or _row_ne(op, src_ne, ne, ins0[i, _core.COL_PARAM:].tolist()) != ne:
                return False
        # at a new t, rows are visited from the moving ones on, in order, and a row's consumers
        # whenever its shape differs from the latest sample's (a packed panel count rounds up)
        consumers: dict = {}
        for i in range(len(ins0)):
            for k in range(4):
                if src_rows[i, k] >= 0:
                    consumers.setdefault(int(src_rows[i, k]), []).append(i)
        ops = ins0[:, 0].tolist()
        rule_rows = {i: (int(ops[i]), [int(r) for r in src_rows[i] if r >= 0], ins0[i, _core.COL_PARAM:].tolist())
                     for i in range(len(ins0)) if ops[i] not in (INPUT, CONST, WEIGHT)}
        leaves = [(i, ops[i], int(ins0[i, _core.COL_OUT if ops[i] == INPUT else _core.COL_PARAM]))
                  for i in range(len(ins0)) if ops[i] in (INPUT, CONST)]
        order = _RowOrder(int(i) for i in rows)
        leaves = [leaf for leaf in leaves if not _leaf_follows_fit(leaf, fit, unfit, in_fit, in_slots, consts0,
                                                                   rebuild)]
        self.islands.append((fit, order, consumers, rule_rows, leaves, in_fit, out_fit, rebuild,
                             _RuleCheck(order, rule_rows, fit + (unfit,))))
        return True

    # -- instantiating -------------------------------------------------------------------
    def t_of(self, sig):
        """``t`` when ``sig`` lies on this family's line at or above its smallest sample, else None."""
        flat = _flat(sig)
        slope, base = self.sig_fit
        if flat is None or len(flat) != len(base):
            return None
        t = flat[self.pos]
        if t < self.t_min or (slope * t + base).tolist() != flat:  # list compare: np.array_equal was ~5 us
            return None
        return t

    def instantiate(self, sig, engine, donor=None, t=None):
        """The CompiledPlan of ``sig`` (on the line: ``t_of``, or ``t`` where the caller found it),
        or None where it cannot be made exactly (the caller traces). ``donor``: a plan the caller
        drops, whose islands' ggml contexts and schedulers the new islands take over (see _core.Plan)."""
        if t is None:
            t = self.t_of(sig)
        if t is None:
            return None
        values = self._replay(t)
        if values is None:
            return None
        tpl, rec = self.template, self.record
        steps, islands = [], iter(zip(self.islands, rec.islands))
        donors = iter([] if donor is None else [s.plan for s in donor.steps if isinstance(s, IslandStep)])
        for k, step in enumerate(tpl.steps):
            if isinstance(step, HostStep):
                shapes = self.host_shapes[k].at(t)
                if shapes is None:
                    return None
                steps.append(step.with_shapes(list(shapes)))
                continue
            fam_island, traced = next(islands)
            core = self._island_plan(t, fam_island, traced, values, engine, next(donors, None))
            if core is None:
                return None
            steps.append(IslandStep(core, step.in_ids, step.out_ids, step.flops, step.out_dtypes,
                                    step.in_converters, step.row_names))
        env_consts = {rid: values.get(rec.env_const_names.get(rid), c) for rid, c in tpl.env_consts.items()}
        sources = [(kind, np.asarray(values[n]) if kind == "const" and n in values else src)
                   for (kind, src), n in zip(tpl.output_sources, rec.output_const_names)]
        plan = CompiledPlan(steps, tpl.n_env, tpl.input_ids, sources, env_consts, tpl.placement, from_family=True,
                            copy_outputs=tpl.copy_outputs)
        if tpl.single is not None:
            plan.single, plan.single_in, plan.single_out = steps[0].plan, tpl.single_in, tpl.single_out
            plan.single_casts = tpl.single_casts
        return plan

    def _replay(self, t):
        """Signature-dependent plan-time values at ``t``: {name: array}, or None where a value a
        lowering read structurally is not what the family predicts."""
        values = {n: (slope * t + base).astype(dtype) for n, ((slope, base), dtype) in self.leaves.items()}
        for fold, (call, args) in zip(self.replay, self.replay_calls):
            try:
                if call is not None:  # a host kernel of ours: its arguments in order, no dict of feeds
                    results = call([None if n is None else values.get(n, a) for n, a in args])
                else:
                    results = fold.evaluator.run(None, {f: values.get(n, a) for f, n, a in args})
            except Exception:  # noqa: BLE001 -- the signature is traced, which reports it properly
                return None
            values.update(zip(fold.out_names, results))
        for n, ((slope, base), dtype) in self.predicted.items():
            got = values[n]
            if not isinstance(got, np.ndarray) or got.shape != base.shape or not np.array_equal(got, slope * t + base):
                return None
        return values

    @staticmethod
    def _shapes_at(predicted, rows, consumers, rule_rows, leaves, in_slots, in_shapes, consts, check=None):
        """The rows whose shape at ``t`` is not ``predicted`` (the fit): {row: shape}, or None
        where a row cannot be built at ``t``.

        One pass in table order (sources come before their readers): inputs and constants take
        their arrays' shapes, and every moving row is rebuilt by its rule from its sources'
        shapes at ``t``. A row whose shape leaves the prediction (a packed panel count rounds
        up, a replayed constant is shorter) also sends its readers that do not move through the
        pass; a row neither moving nor reading such a row keeps the shape it had in the samples."""
        pred: dict = {}

        def ne(r):
            v = pred.get(r)
            if v is None:
                v = pred[r] = tuple(predicted[r].tolist())
            return v

        changed: dict = {}
        extra: list = []   # a heap of readers outside ``rows`` of rows that changed
        queued: set = set()

        def left_prediction(i, shape):
            changed[i] = shape
            for c in consumers.get(i, ()):
                if c not in rows and c not in queued:
                    queued.add(c)
                    heapq.heappush(extra, c)

        slot_ne = {int(slot): onnx_to_ne(shape) for slot, shape in zip(in_slots, in_shapes)} \
            if any(op == INPUT for _, op, _ in leaves) else {}
        for i, op, index in leaves:
            v = slot_ne.get(index) if op == INPUT else onnx_to_ne(consts[index].shape) if op == CONST else None
            if v is not None and v != ne(i):
                left_prediction(i, v)
        if not changed and check is not None:
            fast = check.shapes(predicted, consumers)
            if fast is not None:  # what the pass below would find, at array speed
                return fast
        order = iter(rows)
        nxt = next(order, None)
        while nxt is not None or extra:
            if extra and (nxt is None or extra[0] < nxt):
                i = heapq.heappop(extra)
            else:
                i, nxt = nxt, next(order, None)
            rule = rule_rows.get(i)
            if rule is None:
                continue
            shape = _row_ne(rule[0], [changed.get(r) or ne(r) for r in rule[1]], ne(i), rule[2])
            if shape is None or min(shape) < 1:
                return None
            if shape != ne(i):
                left_prediction(i, shape)
        if any(min(v) < 1 for v in pred.values()) or any(min(v) < 1 for v in changed.values()):
            return None
        return changed

    def _island_plan(self, t, fam_island, traced, values, engine, reuse=None):
        (slope, base), rows, consumers, rule_rows, leaves, in_fit, out_fit, rebuild, check = fam_island
        (ins0, fp, consts, in_slots, _, out_slots, _, threads, names), _ = traced
        consts = list(consts)
        for j, (name, transform) in rebuild.items():
            consts[j] = as_ggml_array(np.ascontiguousarray(transform(np.asarray(values[name], dtype=np.float32)),
                                                           dtype=np.float32))
        in_shapes, out_shapes = in_fit.at(t), out_fit.at(t)
        ins = None if in_shapes is None or out_shapes is None else \
            self._table_at(t, fam_island, ins0, consts, in_slots, in_shapes)
        if ins is None:
            return None
        try:
            return _core.Plan(engine, ins, fp, consts, in_slots, in_shapes, out_slots, out_shapes, threads, names,
                              reuse, self._headroom(t, fam_island, ins0, consts, in_slots, reuse))
        except GgonnxError:
            return None

    def _table_at(self, t, fam_island, ins0, consts, in_slots, in_shapes):
        """The island's instruction table at ``t``, or None where a row cannot be built there."""
        (slope, base), rows, consumers, rule_rows, leaves, _, _, _, check = fam_island
        predicted = slope * t + base
        ne_t = self._shapes_at(predicted, rows, consumers, rule_rows, leaves, in_slots, in_shapes, consts, check)
        if ne_t is None:
            return None
        ins = ins0.copy()
        ins[:, NE] = predicted
        if ne_t:
            idx = list(ne_t)
            ins[idx, NE] = [ne_t[i] for i in idx]
        return ins

    def _headroom(self, t, fam_island, ins0, consts, in_slots, reuse):
        """What _core.Plan needs to plan its allocation for the lengths ahead (see its
        _reserve_headroom): (key, t, upto, the table at upto, or None where the allocation taken
        over from ``reuse`` already covers t), upto at most HEADROOM and t // 4 past t. None for
        an island some of whose shapes shrink as t grows: an allocation planned at a larger t
        would not hold them."""
        (slope, _), *_, in_fit, _, _, check = fam_island
        if slope.min(initial=0) < 0:
            return None
        if reuse is not None and reuse.reserved_key is check and t <= reuse.reserved_upto:
            return (check, t, reuse.reserved_upto, None)
        upto = t + max(1, min(HEADROOM, t // 4))
        in_shapes = in_fit.at(upto)
        table = None if in_shapes is None else self._table_at(upto, fam_island, ins0, consts, in_slots, in_shapes)
        return None if table is None else (check, t, upto, table)


class FamilyCache:
    """A session's plan families, and the plans traced last that new ones are built from."""

    MAX_FAMILIES = 4

    def __init__(self, enabled: bool = True):
        self.enabled = enabled                 # False: inputs have no free dims, records are dropped
        self.recent: deque = deque(maxlen=3)   # (signature, CompiledPlan with its TraceRecord)
        self.families: list[PlanFamily] = []   # most recently built or used first
        self.instantiated = 0                  # plans written from a family rather than traced

    def covers(self, sig) -> bool:
        """Whether ``sig`` lies on some family's line."""
        return any(fam.t_of(sig) is not None for fam in self.families)

    def plan_for(self, sig, engine, donor=None):
        """A plan for ``sig`` from a family whose line it is on, or None (``donor``: see
        PlanFamily.instantiate)."""
        for k, fam in enumerate(self.families):
            t = fam.t_of(sig)
            if t is None:
                continue
            plan = fam.instantiate(sig, engine, donor, t)
            donor = None  # its resources are taken (or it was unusable) either way
            if plan is not None:
                self.families.insert(0, self.families.pop(k))
                self.instantiated += 1
                return plan
        return None

    def traced(self, sig, plan) -> None:
        """Note a freshly traced plan; with two earlier ones on a line with it, build a family."""
        key = line_key(sig) if self.enabled else None
        if key is None:
            plan.record = None
            return
        same = [(s, p) for s, p in self.recent if line_key(s) == key and s != sig]
        if len(self.recent) == self.recent.maxlen:
            self.recent[0][1].record = None  # leaving: its record is no longer needed
        self.recent.append((sig, plan))
        if len(same) >= 2:
            fam = PlanFamily.build(same[-2:] + [(sig, plan)])
            if fam is not None:
                self.families.insert(0, fam)
                del self.families[self.MAX_FAMILIES:]
