"""Plan families: a decoder step fed a growing KV cache gets plans written from three traced
ones instead of a trace per cache length, with every output equal to onnxruntime's."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ggonnx
from ggonnx.errors import PlanRetired
from ggonnx.planner import IslandStep
from ggonnx.runner import FAMILY_PLANS_KEPT

E, H, D, MAX_POS = 32, 2, 16, 64


def decoder_step(window: tuple | None = None, rows: int = 1) -> bytes:
    """One attention step over a KV cache: the new token's position row is picked by the cache
    length (a shape-dependent constant), a 0/1 mask over past + ``rows`` positions is fed, K and V
    grow by ``rows`` (one token; two: a chunk, whose attention packs K^T and V into GEMM panels);
    ``window`` (start, end) attends to those positions only (a slice that clamps)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3, n) for n, s in
             [("wq", (E, E)), ("wk", (E, E)), ("wv", (E, E)), ("wo", (E, E)), ("pos_table", (MAX_POS, E))]]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              [("heads", [1, rows, H, D]), ("flat", [1, rows, E]), ("mask_shape", [1, 1, 1, -1]), ("two", [2]),
               ("one", [1])]]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
              [("scale", 1 / np.sqrt(D)), ("fone", 1.0), ("neg", -1e9)]]
    nodes = [
        helper.make_node("Shape", ["past_k"], ["past_shape"]),
        helper.make_node("Gather", ["past_shape", "two"], ["past_len"], axis=0),
        helper.make_node("Gather", ["pos_table", "past_len"], ["pos_row"], axis=0),
        helper.make_node("Add", ["x", "pos_row"], ["xp"]),
    ]
    for name in "qkv":
        nodes += [helper.make_node("MatMul", ["xp", f"w{name}"], [f"{name}_flat"]),
                  helper.make_node("Reshape", [f"{name}_flat", "heads"], [f"{name}_4d"]),
                  helper.make_node("Transpose", [f"{name}_4d"], [f"{name}_new"], perm=[0, 2, 1, 3])]
    nodes += [helper.make_node("Concat", ["past_k", "k_new"], ["present_k"], axis=2),
              helper.make_node("Concat", ["past_v", "v_new"], ["present_v"], axis=2)]
    keys, values, mask_in = "present_k", "present_v", "attention_mask"
    if window:
        nodes += [helper.make_node("Constant", [], ["win_start"], value=numpy_helper.from_array(
                      np.array([window[0]], np.int64))),
                  helper.make_node("Constant", [], ["win_end"], value=numpy_helper.from_array(
                      np.array([window[1]], np.int64))),
                  helper.make_node("Slice", ["present_k", "win_start", "win_end", "two"], ["k_win"]),
                  helper.make_node("Slice", ["present_v", "win_start", "win_end", "two"], ["v_win"]),
                  helper.make_node("Slice", ["attention_mask", "win_start", "win_end", "one"], ["mask_win"])]
        keys, values, mask_in = "k_win", "v_win", "mask_win"
    nodes += [
        helper.make_node("Transpose", [keys], ["k_t"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q_new", "k_t"], ["scores_raw"]),
        helper.make_node("Mul", ["scores_raw", "scale"], ["scores"]),
        helper.make_node("Cast", [mask_in], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["fone", "mask_f"], ["mask_off"]),
        helper.make_node("Mul", ["mask_off", "neg"], ["mask_add"]),
        helper.make_node("Reshape", ["mask_add", "mask_shape"], ["mask_4d"]),
        helper.make_node("Add", ["scores", "mask_4d"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", values], ["ctx_heads"]),
        helper.make_node("Transpose", ["ctx_heads"], ["ctx_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx_t", "flat"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "wo"], ["y"]),
    ]
    past = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, H, "past", D])  # noqa: E731
    present = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, H, "total", D])  # noqa: E731
    graph = helper.make_graph(
        nodes, "decoder_step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows, E]), past("past_k"), past("past_v"),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "total"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, rows, E]), present("present_k"),
         present("present_v")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _feeds(rng, past_len: int, masked: int = 0, rows: int = 1) -> dict:
    mask = np.ones((1, past_len + rows), np.int64)
    mask[0, :masked] = 0  # left padding, as a batch of prompts of different lengths has
    return {"x": rng.standard_normal((1, rows, E)).astype(np.float32),
            "past_k": rng.standard_normal((1, H, past_len, D)).astype(np.float32),
            "past_v": rng.standard_normal((1, H, past_len, D)).astype(np.float32),
            "attention_mask": mask}


def _check_against_ort(model: bytes, lengths, masked: int = 0, rows: int = 1) -> ggonnx.Session:
    return _check_against_ort_on(ggonnx.Session(model, threads=2), model, lengths, masked, rows)


def _check_against_ort_on(sess: ggonnx.Session, model: bytes, lengths, masked: int = 0,
                          rows: int = 1) -> ggonnx.Session:
    oracle = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for past_len in lengths:
        feeds = _feeds(rng, past_len, min(masked, past_len), rows)
        for got, want in zip(sess.run(None, feeds), oracle.run(None, feeds)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"past length {past_len}")
    return sess


@pytest.mark.parametrize("rows", [1, 2])
def test_growing_cache_reuses_one_structure(rows):
    # with two rows, 14..40 crosses the packed-panel rounding of K^T's 16 columns at 16 and 32 (a
    # shape the family derives from its sources, not from the fit); one row reads K and V in place
    lengths = list(range(14, 41))
    sess = _check_against_ort(decoder_step(rows=rows), lengths, masked=3, rows=rows)
    assert sess.family_plan_count >= len(lengths) - 4
    traced = len(lengths) - sess.family_plan_count
    assert sess.plan_count <= traced + FAMILY_PLANS_KEPT  # plans written per length are not all kept


def test_jumps_and_shorter_caches_stay_exact():
    # a family covers lengths on its line at or above its samples; a jump is fine, a shorter
    # cache than any sample is traced
    sess = _check_against_ort(decoder_step(), [20, 21, 22, 60, 23, 5, 2, 45])
    assert sess.family_plan_count >= 3


@pytest.mark.parametrize("window", [(-8, 1 << 40), (0, 8)], ids=["last_8", "first_8"])
def test_window_clamp_is_never_extrapolated(window):
    # the window slice clamps once the cache outgrows it: plans made from unclamped samples must
    # not run past that point (a view whose offset or extent moves is refused), so every length
    # is exact
    _check_against_ort(decoder_step(window), list(range(2, 20)))


@pytest.mark.parametrize("lengths", [[9, 10, 11, 12], [30, 28, 26, 24, 22]])
def test_lines_in_either_direction(lengths):
    # signatures on a line with a negative step (t falls) never go below the smallest sample
    _check_against_ort(decoder_step(), lengths, masked=1)


def test_plans_share_one_compute_block():
    # every plan of a session computes in its engine's scratch block (runs are serialised), so a
    # cache growing token by token reuses memory instead of allocating a compute buffer per
    # length; lengths revisited afterwards still compute exactly in the shared block
    lengths = list(range(14, MAX_POS))
    sess = _check_against_ort(decoder_step(), lengths + [20, MAX_POS - 1, 14], masked=2)
    assert sess._engine.scratch_blocks_made <= 4, sess._engine.scratch_blocks_made
    assert sess.plan_count >= 2


def test_new_lengths_take_over_dropped_plans():
    # a plan written for a new length takes the ggml context and scheduler of the family plan
    # it pushes out of the cache; that plan then refuses to run, and a thread that fetched it
    # just before (simulated: the cache hands it out once more) gets a fresh plan, exactly
    model = decoder_step()
    sess = _check_against_ort(model, range(14, 22))
    old_sig, old_plan = next((s, p) for s, p in sess._runner.plans.items() if p.from_family)
    _check_against_ort_on(sess, model, range(22, 26))
    islands = [step.plan for step in old_plan.steps if isinstance(step, IslandStep)]
    assert islands and all(p.retired for p in islands)
    rng = np.random.default_rng(2)
    feeds = _feeds(rng, old_sig[1][2])
    with pytest.raises(PlanRetired):
        old_plan.run(sess._gather_inputs(feeds))

    class FetchedBefore(type(sess._runner.plans)):
        handed_out = False

        def get(self, sig, default=None):
            if sig == old_sig and not self.handed_out:
                self.handed_out = True
                return old_plan
            return super().get(sig, default)

    sess._runner.plans = FetchedBefore(sess._runner.plans)
    oracle = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for got, want in zip(sess.run(None, feeds), oracle.run(None, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_rows", [1, 2])
def test_array_shape_check_agrees_with_the_row_by_row_pass(monkeypatch, n_rows):
    """_RuleCheck (whole-array rules, packed panel counts rounded up) finds the same rows off
    the prediction as _shapes_at's row-by-row pass, at every length of a decode crossing
    several panel boundaries (two query rows: K^T and V packed; one: K and V read in place by
    MUL_MAT and OUT_PROD rows); where it declines, the pass decides."""
    from ggonnx import plan_family
    seen = []
    row_by_row = plan_family.PlanFamily._shapes_at

    def both(predicted, rows, consumers, rule_rows, leaves, in_slots, in_shapes, consts, check=None):
        slow = row_by_row(predicted, rows, consumers, rule_rows, leaves, in_slots, in_shapes, consts)
        fast = check.shapes(predicted, consumers) if check is not None else None
        if fast is not None:
            assert fast == slow
            seen.append(len(fast))
        return slow
    monkeypatch.setattr(plan_family.PlanFamily, "_shapes_at", staticmethod(both))
    lengths = list(range(14, MAX_POS - 1))
    _check_against_ort(decoder_step(rows=n_rows), lengths, masked=3, rows=n_rows)
    assert len(seen) >= len(lengths) - 6  # the array rules held nearly everywhere
    if n_rows == 2:
        assert any(seen) and not all(seen)  # some lengths round panels up


def _square_plus_length(n_name: str = "n") -> bytes:
    """y = [x, n * n + n // 8] for x of shape [1, n]: a plan-time value of the length that is not
    affine, as a constant of the island. The Gather of the shape is affine in n (not replayed);
    the product of two moving values is not, and the floor division is constant (collinear) at
    the first samples, yet steps at 8 and 16: only the op's nature tells."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("Mul", ["n", "n"], ["nn"]),
             helper.make_node("Div", ["n", "eight"], ["q"]),
             helper.make_node("Add", ["nn", "q"], ["m"]),
             helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["mf", "one_by_one"], ["col"]),
             helper.make_node("Concat", ["x", "col"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "square", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_name])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])],
        [numpy_helper.from_array(np.array([1], np.int64), "one"), numpy_helper.from_array(np.array(8, np.int64), "eight"),
         numpy_helper.from_array(np.array([1, 1], np.int64), "one_by_one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_replay_skips_only_folds_proved_affine():
    # the values that are not affine in the length are replayed at every length: extrapolated
    # from the samples (3, 4, 5), n // 8 would stay 0 past 8
    sess = ggonnx.Session(_square_plus_length(), threads=2)
    rng = np.random.default_rng(0)
    for n in range(3, 30):
        x = rng.standard_normal((1, n)).astype(np.float32)
        want = np.concatenate([x, [[n * n + n // 8]]], axis=1).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], want)
    assert sess.family_plan_count >= 20
    fam = sess._runner.families.families[0]
    assert [f.node.op_type for f in fam.replay] == ["Mul", "Div", "Add", "Cast", "Reshape"]
    assert "n" in fam.leaves  # the shape's Gather: affine, computed rather than run


def test_decoder_replays_the_position_lookup_alone():
    # decoder_step's position row: Shape -> Gather (affine in the length, not replayed) -> Gather
    # of the position table at that index (replayed: a row of data, not affine)
    sess = _check_against_ort(decoder_step(), range(10, 20))
    (fam,) = sess._runner.families.families
    assert [(f.node.op_type, f.node.inputs[0]) for f in fam.replay] == [("Gather", "pos_table")]


_CELLS = [(0, 1), (0, 2), (0, 4), (1, 0), (2, 0), (1, 1), (2, 2), (4, 0)]  # (slope, base) of a dim


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_rules_left_out_as_identities_hold_at_every_length(data):
    """Every rule _drop_identities leaves out (affine cells equal as functions, constant divisors
    of both slope and intercept, equal products and sums as polynomials) holds at every t, and
    _RuleCheck decides as with every rule: random rows of affine dims drawn from a small pool, so
    that identities and near misses are both common."""
    from ggonnx import _core
    from ggonnx.plan_family_fit import _RuleCheck
    Op = _core.Op
    n_leaves = data.draw(st.integers(2, 4))
    n_rules = data.draw(st.integers(1, 6))
    n = n_leaves + n_rules
    cells = data.draw(st.lists(st.lists(st.sampled_from(_CELLS), min_size=4, max_size=4), min_size=n, max_size=n))
    slope = np.array([[c[0] for c in row] for row in cells], np.int64)
    base = np.array([[c[1] for c in row] for row in cells], np.int64)
    rule_rows = {}
    for i in range(n_leaves, n):
        op = data.draw(st.sampled_from(["same", "add", "repeat", "mul_mat", "out_prod", "reshape", "concat",
                                        "permute", "sum_rows"]))
        a, b = data.draw(st.integers(0, i - 1)), data.draw(st.integers(0, i - 1))
        if data.draw(st.booleans()):  # mostly the row its rule gives at the samples: identities
            slope[i], base[i] = slope[a], base[a]
        params = [0] * 8
        if op == "permute":
            params[:4] = data.draw(st.permutations([0, 1, 2, 3]))
        ops = {"same": Op.UNARY, "add": Op.ADD, "repeat": Op.REPEAT, "mul_mat": Op.MUL_MAT, "out_prod": Op.OUT_PROD,
               "reshape": Op.RESHAPE, "concat": Op.CONCAT_C, "permute": Op.PERMUTE, "sum_rows": Op.SUM_ROWS}
        srcs = [a, b] if op in ("add", "mul_mat", "out_prod", "concat") else [a]
        rule_rows[i] = (int(ops[op]), srcs, params)
    order = list(range(n))
    full = _RuleCheck(order, rule_rows)
    reduced = _RuleCheck(order, rule_rows, (slope, base, np.zeros(n, bool)))
    pairs = lambda a, b: set(zip(a.tolist(), b.tolist()))  # noqa: E731
    dropped_eq = pairs(full.eq_l, full.eq_r) - pairs(reduced.eq_l, reduced.eq_r)
    dropped_div = pairs(full.den, full.num) - pairs(reduced.den, reduced.num)
    dropped_ones = set(full.ones.tolist()) - set(reduced.ones.tolist())
    counts = lambda c: set() if c.reshape is None else set(map(tuple, c.reshape.T.tolist()))  # noqa: E731
    dropped_counts = counts(full) - counts(reduced)
    sums = lambda c: {(t, tuple(ps)) for total, parts in c.sums for t, ps in zip(total.tolist(), parts.T.tolist())}  # noqa: E731
    dropped_sums = sums(full) - sums(reduced)
    for t in range(0, 40):
        p = slope * t + base
        flat = p.reshape(-1)
        assert all(flat[a] == flat[b] for a, b in dropped_eq), t
        assert all(flat[d] == 0 or flat[m] % flat[d] == 0 for d, m in dropped_div), t
        assert all(flat[c] == 1 for c in dropped_ones), t
        assert all(np.prod(p[i]) == np.prod(p[a]) for i, a in dropped_counts), t
        assert all(flat[c] == sum(flat[q] for q in ps) for c, ps in dropped_sums), t
        assert full._holds(p) == reduced._holds(p), t


def test_allocation_planned_ahead_serves_the_next_lengths():
    # a plan written from a family has its scheduler plan the allocation some lengths ahead (at
    # most HEADROOM, at most a quarter of the length: bounded memory);
    # the plans of the lengths after it keep that allocation (no planning per length) and compute
    # exactly in it, across more than one such reservation
    from ggonnx.plan_family import HEADROOM
    lengths = list(range(6, MAX_POS - 1))
    sess = ggonnx.Session(decoder_step(), threads=2)
    reserved = []
    original = ggonnx.plan_family.PlanFamily._island_plan

    def spy(self, t, *args, **kwargs):
        core = original(self, t, *args, **kwargs)
        if core is not None:
            reserved.append((t, core.reserved_upto))
        return core
    ggonnx.plan_family.PlanFamily._island_plan = spy
    try:
        _check_against_ort_on(sess, decoder_step(), lengths, masked=2)
    finally:
        ggonnx.plan_family.PlanFamily._island_plan = original
    assert len(reserved) >= len(lengths) - 4
    assert all(t <= upto <= t + max(1, min(HEADROOM, t // 4)) for t, upto in reserved)
    # two plans are kept, so two schedulers take turns; each plans once per t // 4 lengths
    assert len({upto for _, upto in reserved}) <= len(reserved) // 2
