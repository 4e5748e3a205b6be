"""Layout ops: Reshape, Flatten, Transpose, Concat, Identity, identity Casts, Constant, Shape,
Slice, Split, Expand, Gather."""
from __future__ import annotations

import math

import numpy as np
from onnx import helper

from ggonnx.emitter import onnx_to_ne
from ggonnx.errors import ShapeError
from ggonnx.ops import coalesce
from ggonnx.ops.context import NHWC, NHWC_SPLIT, SPLIT_STORED_PERM, Value, split_stored_shape
from ggonnx.ops.registry import register
from ggonnx.weight_types import F32


def onnx_perm_to_ggml(perm, rank: int) -> tuple:
    """ggml_permute destinations for an ONNX Transpose perm (ggml dims are reversed ONNX dims)."""
    dest = list(range(4))
    for j in range(rank):             # ggml output dim j = ONNX output dim rank-1-j
        src_onnx = perm[rank - 1 - j]  # ... which reads ONNX input dim perm[rank-1-j]
        dest[rank - 1 - src_onnx] = j
    return tuple(dest)


def transpose(ctx, x: Value, perm, out_index: int = 0) -> Value:
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"{ctx.node.describe()}: perm {perm} is not a permutation of rank {x.rank}")
    shape = tuple(x.shape[p] for p in perm)
    t = ctx.tensor(x)
    if x.rank > 4:  # dims that stay adjacent move together: regroup them into ggml's four
        grouped = coalesce.transpose(x.shape, perm)
        if grouped is None:
            ctx.unsupported(f"perm {perm} of {x.shape} moves more than 4 groups of dims")
        in_shape, perm = grouped
        t = ctx.e.reshape(t, onnx_to_ne(in_shape))
    gt = ctx.e.permute(t, onnx_perm_to_ggml(perm, len(perm)))
    return ctx.output(ctx.e.reshape(gt, onnx_to_ne(shape)), shape, out_index)


def reshape_value(ctx, x: Value, shape, out_index: int = 0) -> Value:
    if int(math.prod(shape)) != int(math.prod(x.shape)):
        raise ShapeError(f"{ctx.node.describe()}: cannot reshape {x.shape} to {tuple(shape)}")
    if x.const is not None:
        return Value.constant(ctx.node.outputs[out_index], x.const.reshape(shape), static=x.static)
    if ctx.is_nhwc(x) and len(shape) == 5 and shape[0] == x.shape[0] and tuple(shape[3:]) == x.shape[2:]:
        # channels split in two: the NHWC memory already is [N, H, W, A, B] (see NHWC_SPLIT)
        out = ctx.output(ctx.e.reshape(x.gt, onnx_to_ne(split_stored_shape(shape))), shape, out_index,
                         layout=NHWC_SPLIT)
    else:
        out = ctx.output(ctx.e.reshape(ctx.tensor(x), onnx_to_ne(shape)), shape, out_index)
    out.dtype, out.bound = x.dtype, x.bound   # the same elements: integers held as floats stay integers
    return out


def resolve_reshape(ctx, in_shape, target, allowzero: int) -> tuple:
    target = [int(t) for t in target]
    out = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            if i >= len(in_shape):
                raise ShapeError(f"{ctx.node.describe()}: shape {target} copies dim {i} of {in_shape}")
            t = in_shape[i]
        out.append(t)
    if out.count(-1) > 1:
        raise ShapeError(f"{ctx.node.describe()}: shape {target} has more than one -1")
    total = int(math.prod(in_shape))
    if -1 in out:
        known = int(math.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            raise ShapeError(f"{ctx.node.describe()}: cannot reshape {tuple(in_shape)} to {target}")
        out[out.index(-1)] = total // known
    if any(d < 0 for d in out) or int(math.prod(out)) != total:
        raise ShapeError(f"{ctx.node.describe()}: cannot reshape {tuple(in_shape)} to {target}")
    return tuple(out)


@register("Reshape", since=5, any_rank=True)
def lower_reshape(ctx, node, inputs):
    x, shape = inputs
    target = ctx.const_input(shape, "shape")
    return [reshape_value(ctx, x, resolve_reshape(ctx, x.shape, target, ctx.attr("allowzero", 0)))]


@register("Flatten", since=1, any_rank=True)
def lower_flatten(ctx, node, inputs):
    x = inputs[0]
    axis = ctx.attr("axis", 1)
    if axis < 0:
        axis += x.rank
    if not 0 <= axis <= x.rank:
        raise ShapeError(f"{node.describe()}: axis {ctx.attr('axis', 1)} out of range for rank {x.rank}")
    shape = (int(math.prod(x.shape[:axis])), int(math.prod(x.shape[axis:])))
    return [reshape_value(ctx, x, shape)]


# NCHW -> NHWC and back: the same memory as a channels-last value (convnext's LayerNorm and
# MLP between its convs run on [N, H, W, C], which is what the conv left behind)
TO_CHANNELS_LAST, FROM_CHANNELS_LAST = [0, 2, 3, 1], [0, 3, 1, 2]


@register("Transpose", since=1, any_rank=True)
def lower_transpose(ctx, node, inputs):
    x = inputs[0]
    perm = [int(p) for p in ctx.attr("perm", list(reversed(range(x.rank))))]
    if x.rank == 4 and perm == TO_CHANNELS_LAST and ctx.is_nhwc(x):
        return [ctx.output(x.gt, tuple(x.shape[p] for p in perm))]
    if x.rank == 4 and perm == FROM_CHANNELS_LAST and not ctx.is_nhwc(x):
        return [ctx.output(ctx.tensor(x), tuple(x.shape[p] for p in perm), layout=NHWC)]
    if x.layout == NHWC_SPLIT and ctx.in_island(x) and sorted(perm) == list(range(5)):
        # a transpose of what is stored, where ggml's four dims can express it (else x converts)
        stored = Value(f"{x.name}\0stored", split_stored_shape(x.shape), x.dtype, gt=x.gt, island=x.island)
        of_stored = [SPLIT_STORED_PERM[p] for p in perm]
        if coalesce.transpose(stored.shape, of_stored) is not None:
            return [transpose(ctx, stored, of_stored)]
    return [transpose(ctx, x, perm)]


@register("Concat", since=4, any_rank=True)
def lower_concat(ctx, node, inputs):
    xs = [v for v in inputs if v is not None]
    rank = xs[0].rank
    axis = ctx.attr("axis")
    if axis is None:
        ctx.unsupported("attribute 'axis' is required")
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise ShapeError(f"{node.describe()}: axis {ctx.attr('axis')} out of range for rank {rank}")
    for v in xs:
        if v.rank != rank or any(v.shape[k] != xs[0].shape[k] for k in range(rank) if k != axis):
            raise ShapeError(f"{node.describe()}: cannot concat shapes {[v.shape for v in xs]} on axis {axis}")
    if not any(ctx.in_island(v) for v in xs):
        # host arrays only (one-hot encoders' columns): numpy's concatenate is one copy, where an
        # island of nothing else binds each part, runs a graph and copies row by row (skl2onnx's
        # one-hot + linear at 1,000 rows: 40-80 us against ~10)
        ctx.unsupported("a concat of host arrays only")
    xs = [v for v in xs if v.shape[axis] > 0] or xs[:1]
    shape = list(xs[0].shape)
    shape[axis] = sum(v.shape[axis] for v in xs)
    if rank == 4 and axis == 1 and any(ctx.is_nhwc(v) for v in xs):  # channels: ggml dim 0 of NHWC
        if all(ctx.is_nhwc(v) and ctx.in_island(v) and ctx.sole_reader(v) for v in xs) and \
                len({v.name for v in xs}) == len(xs):
            # each conv writes its channels of the result itself (fire modules, inception blocks)
            gt = ctx.e.concat_channels_in_place([ctx.tensor_nhwc(v) for v in xs])
            if gt is not None:
                return [ctx.output(gt, shape, layout=NHWC)]
        return [ctx.output(ctx.e.concat_channels([ctx.tensor_nhwc(v) for v in xs]), shape, layout=NHWC)]
    if rank > 4:  # (before, axis, after) per input
        parts = [ctx.e.reshape(ctx.tensor(v), onnx_to_ne(coalesce.around_axis(v.shape, axis))) for v in xs]
        return [ctx.output(ctx.e.reshape(ctx.e.concat_along(parts, 1), onnx_to_ne(shape)), shape)]
    return [ctx.output(ctx.e.concat_along([ctx.tensor(v) for v in xs], rank - 1 - axis), shape)]


@register("Identity", since=1, any_rank=True)
def lower_identity(ctx, node, inputs):
    x = inputs[0]
    return [x.alias(node.outputs[0])]


@register("Cast", since=6, any_rank=True)
def lower_cast(ctx, node, inputs):
    """A cast to the type the value already has (exporters write float32 -> float32 after every
    Softmax) is the value itself, and so is a cast of bounded integers held in ggml (a label)
    to a type that holds them; real conversions run on the host."""
    x = inputs[0]
    try:
        target = np.dtype(helper.tensor_dtype_to_np_dtype(int(ctx.attr("to"))))
    except (TypeError, ValueError, KeyError):
        ctx.unsupported(f"to={ctx.attr('to')!r}")
    if x.dtype == target and x.dtype.kind in "fiub":
        return [x.alias(node.outputs[0])]
    if x.bound is not None and ctx.in_island(x) and (
            target == np.float32 or (target.kind in "iu" and np.iinfo(target).max >= x.bound - 1)):
        # integers held as exact floats in [0, bound): the same floats in any type that holds them
        out = x.alias(node.outputs[0])
        out.dtype = target
        if target.kind == "f":
            out.bound = None
        return [out]
    ctx.unsupported(f"a cast from {x.dtype} to {target}")


@register("Constant", since=1)
def lower_constant(ctx, node, inputs):
    attrs = node.attrs
    if "value" in attrs:
        arr = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        arr = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        arr = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        arr = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        arr = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        ctx.unsupported(f"attributes {sorted(attrs)} are not supported")
    return [Value.constant(node.outputs[0], arr, static=True)]


@register("Shape", since=1)
def lower_shape(ctx, node, inputs):
    shape = np.array(inputs[0].shape, dtype=np.int64)
    rank = len(shape)
    start = ctx.attr("start", 0)
    end = ctx.attr("end", rank)
    return [ctx.const_output(shape[slice(start, end)])]


def _axes(ctx, node, inputs):
    """Axes from the optional second input (older attribute forms are normalised at import)."""
    if len(inputs) < 2 or inputs[1] is None:
        return None
    return [int(a) for a in np.atleast_1d(ctx.const_input(inputs[1], "axes"))]


def _normalised(node, axes, rank: int) -> list:
    out = [a + rank if a < 0 else a for a in axes]
    if any(not 0 <= a < rank for a in out) or len(set(out)) != len(out):
        raise ShapeError(f"{node.describe()}: axes {axes} invalid for rank {rank}")
    return out


@register("Unsqueeze", since=13, any_rank=True)
def lower_unsqueeze(ctx, node, inputs):
    x = inputs[0]
    axes = _axes(ctx, node, inputs)
    if axes is None:
        ctx.unsupported("axes are required")
    axes = _normalised(node, axes, x.rank + len(axes))
    shape = list(x.shape)
    for a in sorted(axes):
        shape.insert(a, 1)
    return [reshape_value(ctx, x, tuple(shape))]


@register("Squeeze", since=13, any_rank=True)
def lower_squeeze(ctx, node, inputs):
    x = inputs[0]
    axes = _axes(ctx, node, inputs)
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else _normalised(node, axes, x.rank)
    if any(x.shape[a] != 1 for a in axes):
        raise ShapeError(f"{node.describe()}: cannot squeeze axes {axes} of {x.shape}")
    return [reshape_value(ctx, x, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


@register("Dropout", since=1, any_rank=True)
def lower_dropout(ctx, node, inputs):
    """Inference: the identity; the optional mask is all true (all ones of the input's type before
    opset 10, where the mask is typed T: onnxruntime writes zeros there, a mask of nothing kept)."""
    x = inputs[0]
    training = inputs[2] if len(inputs) > 2 else None
    if training is not None and (training.const is None or bool(training.const)):
        ctx.unsupported("training_mode")
    outs = [x.alias(node.outputs[0])]
    if len(node.outputs) > 1 and node.outputs[1]:
        outs.append(ctx.const_output(np.ones(x.shape, dtype=bool if node.opset >= 10 else x.dtype), 1))
    return outs


def _view_slice(ctx, x: Value, starts: list, lengths: list, out_index: int = 0) -> Value:
    """The sub-block of x beginning at ``starts`` (per ONNX axis) with ``lengths``."""
    if 0 in lengths:
        ctx.unsupported("an empty slice")
    t, full = ctx.tensor(x), x.shape
    if x.rank > 4:  # dims taken whole merge into the dim before them
        grouped = coalesce.sliced(x.shape, starts, lengths)
        if grouped is None:
            ctx.unsupported(f"slicing {x.shape} at {starts} by {lengths} needs more than 4 dims")
        full, starts, sub = grouped
        t = ctx.e.reshape(t, onnx_to_ne(full))
    else:
        sub = lengths
    strides = [int(math.prod(full[k + 1:])) for k in range(len(full))]
    offset = sum(s * st for s, st in zip(starts, strides))
    gt = ctx.e.view(t, onnx_to_ne(sub), offset)
    return ctx.output(ctx.e.reshape(gt, onnx_to_ne(lengths)), tuple(lengths), out_index)


@register("Slice", since=10, any_rank=True)  # older forms are normalised to this one at import
def lower_slice(ctx, node, inputs):
    x = inputs[0]
    starts = ctx.const_input(inputs[1], "starts")
    ends = ctx.const_input(inputs[2], "ends")
    axes = ctx.const_input(inputs[3], "axes") if len(inputs) > 3 and inputs[3] is not None \
        else np.arange(len(starts))
    steps = ctx.const_input(inputs[4], "steps") if len(inputs) > 4 and inputs[4] is not None \
        else np.ones(len(starts), np.int64)
    if np.any(np.asarray(steps) != 1):
        ctx.unsupported(f"steps {list(np.asarray(steps))}")
    begin, lengths = [0] * x.rank, list(x.shape)
    for s, e_, a in zip(np.asarray(starts).tolist(), np.asarray(ends).tolist(), np.asarray(axes).tolist()):
        a = a + x.rank if a < 0 else a
        if not 0 <= a < x.rank:
            raise ShapeError(f"{node.describe()}: axis {a} out of range for {x.shape}")
        lo, hi, _ = slice(int(s), int(e_), 1).indices(x.shape[a])
        begin[a], lengths[a] = lo, max(0, hi - lo)
    return [_view_slice(ctx, x, begin, lengths)]


@register("Split", since=13, any_rank=True)  # older forms are normalised to this one at import
def lower_split(ctx, node, inputs):
    x = inputs[0]
    axis = int(ctx.attr("axis", 0))
    axis = axis + x.rank if axis < 0 else axis
    if not 0 <= axis < x.rank:
        raise ShapeError(f"{node.describe()}: axis {ctx.attr('axis')} out of range for {x.shape}")
    n_out = len(node.outputs)
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = [int(v) for v in ctx.const_input(inputs[1], "split")]
    else:
        parts = int(ctx.attr("num_outputs", n_out))
        chunk = -(-x.shape[axis] // parts)
        sizes = [min(chunk, x.shape[axis] - k * chunk) for k in range(parts)]
    if sum(sizes) != x.shape[axis] or len(sizes) != n_out:
        raise ShapeError(f"{node.describe()}: split {sizes} does not divide dim {x.shape[axis]} into {n_out}")
    outs, start = [], 0
    for i, size in enumerate(sizes):
        begin = [0] * x.rank
        begin[axis] = start
        lengths = list(x.shape)
        lengths[axis] = size
        outs.append(_view_slice(ctx, x, begin, lengths, i))
        start += size
    return outs


@register("Expand", since=8)
def lower_expand(ctx, node, inputs):
    x = inputs[0]
    target = [int(v) for v in ctx.const_input(inputs[1], "shape")]
    try:
        shape = tuple(np.broadcast_shapes(x.shape, tuple(target)))
    except ValueError:
        raise ShapeError(f"{node.describe()}: cannot expand {x.shape} to {target}") from None
    tx = ctx.e.reshape(ctx.tensor(x), onnx_to_ne((1,) * (len(shape) - x.rank) + x.shape))
    return [ctx.output(ctx.e.repeat(tx, onnx_to_ne(shape)), shape)]


def _embedding_table(ctx, data):
    """The gathered matrix; a constant one (an embedding table) in the session's weight type,
    ggml converting just the rows it gathers."""
    wtype = ctx.weight_type(data, data.shape[1], data.shape[0])
    if wtype == F32:
        return ctx.tensor(data)
    return ctx.typed_weight(data, "raw", lambda c: c, data.shape, wtype, matmul_only=False)


def _gather_constant(ctx, data, idx, axis: int):
    """data at constant indices along any axis: views of the runs of consecutive indices
    (skl2onnx picks each input column so). Integer data moves as the floats equal to it."""
    size = data.shape[axis]
    ids = np.asarray(idx.const).reshape(-1).astype(np.int64)
    ids = np.where(ids < 0, ids + size, ids)
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1:]
    if not ids.size or ids.min() < 0 or ids.max() >= size or len(shape) > 4:
        ctx.unsupported(f"constant indices {np.asarray(idx.const).reshape(-1)[:8].tolist()} on axis {axis} of "
                        f"{data.shape}, giving rank {len(shape)}")
    t = ctx.exact_int_tensor(data) if data.dtype.kind in "iu" else ctx.tensor(data)
    e = ctx.e
    y = e.take(t, ids, data.rank - 1 - axis)
    out = ctx.output(e.reshape(y, onnx_to_ne(shape)), shape)
    out.dtype, out.bound = data.dtype, data.bound  # values moved, not changed
    return out


@register("Gather", since=1)
def lower_gather(ctx, node, inputs):
    """Row lookup (embeddings): rank-2 data gathered on axis 0 by run-time indices; any data at
    constant indices."""
    data, idx = inputs
    axis = int(ctx.attr("axis", 0))
    if idx.const is not None and data.const is None and idx.dtype.kind in "iu" and -data.rank <= axis < data.rank \
            and data.rank <= 4 and 0 not in data.shape:
        return [_gather_constant(ctx, data, idx, axis % data.rank)]
    if data.rank != 2 or axis not in (0, -2):
        ctx.unsupported(f"axis {axis} of rank-{data.rank} data (only rows of a matrix)")
    if idx.rank > 3:
        ctx.unsupported(f"indices of rank {idx.rank}")
    e = ctx.e
    rows = e.get_rows(_embedding_table(ctx, data), ctx.index_tensor(idx, data.shape[0]))
    shape = idx.shape + (data.shape[1],)
    return [ctx.output(e.reshape(rows, onnx_to_ne(shape)), shape)]
