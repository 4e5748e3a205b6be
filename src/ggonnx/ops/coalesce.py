"""Regrouping the dims of contiguous tensors so that ops on rank-5+ values (a YOLO head's
[N, 3, H, W, 85] boxes) fit ggml's four: adjacent dims that an op treats alike merge into one.
Each function returns None where no regrouping reaches four dims."""
from __future__ import annotations

import math

MAX_DIMS = 4


def broadcast(out: tuple, shapes: list) -> tuple | None:
    """(out, shapes) of a broadcasting elementwise op with adjacent dims merged where every
    operand is either full on both or broadcast on both, and size-1 output dims dropped."""
    rank = len(out)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    groups: list[list[int]] = []
    for d in range(rank):
        if out[d] == 1:
            continue
        kinds = tuple(p[d] == out[d] for p in padded)
        if groups and groups[-1][1] == kinds:
            groups[-1][0].append(d)
        else:
            groups.append([[d], kinds])
    if len(groups) > MAX_DIMS:
        return None

    def merged(shape):
        return tuple(int(math.prod([shape[d] for d in dims])) for dims, _ in groups) or (1,)
    return merged(out), [merged(p) for p in padded]


def around_axis(shape: tuple, axis: int) -> tuple:
    """(before, axis, after) sizes: the dims before and after ``axis`` each merged into one."""
    return int(math.prod(shape[:axis])), shape[axis], int(math.prod(shape[axis + 1:]))


def transpose(shape: tuple, perm: list) -> tuple | None:
    """(shape, perm) of a transpose with dims that stay adjacent (and in order) merged and
    size-1 dims dropped."""
    kept = [p for p in perm if shape[p] != 1]
    runs: list[list[int]] = []          # runs of input dims, in output order
    for p in kept:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    if len(runs) > MAX_DIMS:
        return None
    order = sorted(range(len(runs)), key=lambda i: runs[i][0])   # the runs in input order
    new_shape = tuple(int(math.prod([shape[d] for d in runs[i]])) for i in order)
    new_perm = [order.index(i) for i in range(len(runs))]
    return new_shape or (1,), new_perm or [0]


def sliced(shape: tuple, begin: list, lengths: list) -> tuple | None:
    """(shape, begin, lengths) of a slice with each dim merged into the dim after it where that
    one is taken whole, and whole size-1 dims dropped."""
    dims = [[s, b, n] for s, b, n in zip(shape, begin, lengths) if s != 1]
    out: list[list[int]] = []
    for s, b, n in reversed(dims):
        if out and out[-1][2] == out[-1][0]:  # the dim after this one is whole: merge
            inner = out[-1][0]
            out[-1] = [s * inner, b * inner, n * inner]
        else:
            out.append([s, b, n])
    out.reverse()
    if len(out) > MAX_DIMS:
        return None
    if not out:
        return (1,), [0], [1]
    return tuple(d[0] for d in out), [d[1] for d in out], [d[2] for d in out]
