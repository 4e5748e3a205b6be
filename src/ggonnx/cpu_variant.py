"""Which build of ggml (and of ggonnx._core) this process runs: the best CPU variant the running
CPU supports, by ggml's own feature scores (ggonnx._cpu_probe), or the one GGONNX_CPU_VARIANT names.

A native build (the local default) has one variant, "native"; a portable build (wheels) has one per
instruction-set level, best first in ``_build_info.CPU_VARIANTS``.
"""
from __future__ import annotations

import importlib
import os
import sys

ENV = "GGONNX_CPU_VARIANT"

chosen: tuple[str, str] | None = None  # (variant, why), once loaded


def choose(scores: list, forced: str | None) -> tuple[str, str]:
    """(variant, why) from ggml's scores [(variant, score)], best first; ``forced``: a variant name."""
    known = dict(scores)
    if forced:
        if forced not in known:
            raise ImportError(f"{ENV}={forced!r}: this build of ggonnx has the CPU variants {list(known)}")
        if known[forced] <= 0:
            raise ImportError(f"{ENV}={forced!r}: this CPU lacks instructions that variant uses")
        return forced, f"forced by {ENV}"
    runnable = [(name, score) for name, score in scores if score > 0]
    if not runnable:
        raise ImportError(f"this CPU runs none of this build's CPU variants {list(known)}")
    best = max(runnable, key=lambda item: item[1])  # ggml scores count the features a variant uses
    return best[0], f"the best of {[n for n, _ in scores]} this CPU supports (ggml score {best[1]})"


def load():
    """Import the chosen ``_core_<variant>`` and make it ``ggonnx._core``."""
    global chosen
    from ggonnx import _cpu_probe
    name, why = choose(_cpu_probe.scores(), os.environ.get(ENV, "").strip() or None)
    core = importlib.import_module(f"ggonnx._core_{name}")
    sys.modules["ggonnx._core"] = core
    chosen = (name, why)
    return core
