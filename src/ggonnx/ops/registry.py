"""The lowering table: (domain, op_type) -> functions by opset range.

A lowering function takes (ctx, node, inputs) and returns the node's output
Values. Adding an op = one function in its family module + one property test.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Entry:
    since: int
    until: int
    fn: Callable


_TABLE: dict[tuple[str, str], list[Entry]] = {}


def register(op_type: str, domain: str = "", since: int = 1, until: int = 10_000, any_rank: bool = False):
    """Register a lowering. ``any_rank``: it handles inputs above rank 4 (layout ops, whose
    values are stored with their size-1 dims dropped); other lowerings only see rank <= 4."""
    def deco(fn):
        fn.any_rank = any_rank or getattr(fn, "any_rank", False)
        _TABLE.setdefault((domain, op_type), []).append(Entry(since, until, fn))
        return fn
    return deco


def lookup(domain: str, op_type: str, opset: int):
    for entry in _TABLE.get((domain, op_type), ()):
        if entry.since <= opset <= entry.until:
            return entry.fn
    return None


def supported_ops() -> list[str]:
    return sorted(f"{d + '::' if d else ''}{op}" for d, op in _TABLE)
