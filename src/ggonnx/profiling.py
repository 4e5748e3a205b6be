"""Profiles in onnxruntime's format: Chrome-trace JSON (Perfetto, chrome://tracing) with one event
per ONNX node or fused group, per run.

A ggml island's node times come from ggml's scheduler callback (``_core.Plan.set_profiling``: every
ggml node then runs as its own graph, so a profiled run is slower than a plain one); host kernels,
the copies into and out of ggml and plan tracing are timed around their calls. Event fields follow
onnxruntime's: ``cat`` "Session" (model_loading, session_initialization, model_run, plan_trace) or
"Node" (``<node>_kernel_time`` with ``args.op_name`` and ``args.provider``), ``ts``/``dur`` in
microseconds since profiling started.
"""
from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

# provider names in the events: ggml's CPU backend, or the host (NumPy / onnx.reference kernels)
GGML = "ggml"
HOST = "host"


class Profiler:
    def __init__(self, graph, prefix: str = "onnxruntime_profile_"):
        self.prefix = prefix
        self.start_ns = time.time_ns()          # onnxruntime's get_profiling_start_time_ns
        self._mono0 = time.monotonic_ns()       # event times are CLOCK_MONOTONIC, as _core logs them
        self.events: list[dict] = []
        self._nodes = {n.describe(): n for n in graph.nodes}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def add(self, cat: str, name: str, t0_ns: int, t1_ns: int, args: dict | None = None) -> None:
        event = {"cat": cat, "pid": self._pid, "tid": threading.get_native_id(), "dur": max(0, (t1_ns - t0_ns)) // 1000,
                 "ts": (t0_ns - self._mono0) // 1000, "ph": "X", "name": name, "args": args or {}}
        with self._lock:
            self.events.append(event)

    def _node_event(self, node, t0: int, t1: int, provider: str, **extra) -> None:
        name = node.name if node is not None else "ggml"
        op = node.op_type if node is not None else "ggml"
        self.add("Node", f"{name}_kernel_time", t0, t1, {"op_name": op, "provider": provider, **extra})

    def run_step(self, step, env: list) -> None:
        """Run one step of a CompiledPlan (ggonnx.planner), logging its events."""
        from ggonnx.planner import IslandStep
        if not isinstance(step, IslandStep):
            t0 = time.monotonic_ns()
            step.run(env)
            self._node_event(step.node, t0, time.monotonic_ns(), HOST)
            return
        step.plan.set_profiling(True)
        step.run(env)
        start, compute, end, nodes = step.plan.profile_records()
        self.add("Node", "ggml_input_copy_kernel_time", start, compute, {"op_name": "MemcpyFromHost", "provider": GGML})
        prev, group, ops, group_t0 = compute, None, [], compute
        for row, op, t in nodes + [(-2, "", None)]:
            owner = step.row_names[row] if row >= 0 else group
            if owner != group or t is None:
                if ops:  # one event per run of consecutive ggml nodes from one ONNX node (or fused group)
                    self._node_event(self._nodes.get(group), group_t0, prev, GGML, ggml_ops=ops)
                group, ops, group_t0 = owner, [], prev
            if t is not None:
                ops.append(op)
                prev = t
        self.add("Node", "ggml_output_copy_kernel_time", prev, end, {"op_name": "MemcpyToHost", "provider": GGML})

    def file_name(self) -> str:
        return f"{self.prefix}{datetime.fromtimestamp(self.start_ns / 1e9).strftime('%Y-%m-%d_%H-%M-%S')}.json"

    def write(self, path: str | None = None) -> str:
        path = path or self.file_name()
        with self._lock:
            events = list(self.events)
        with open(path, "w") as fh:
            json.dump(events, fh, indent=0)
        return path


def load_events(path) -> list[dict]:
    with open(path) as fh:
        return json.load(fh)


def node_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("cat") == "Node"]


def summarize(events: list[dict], flops_by_node: dict | None = None, runs: int = 1) -> tuple[list, list]:
    """Per op type: (op, where, total us per run, share, GFLOP/s or None, calls per run), slowest
    first; and the slowest nodes: (node, op, where, us per run)."""
    flops_by_node = flops_by_node or {}
    by_op: dict = {}
    by_node: dict = {}
    for e in node_events(events):
        node = e["name"].removesuffix("_kernel_time")
        key = (e["args"].get("op_name", "?"), e["args"].get("provider", "?"))
        t = by_op.setdefault(key, [0, 0, 0])
        t[0] += e["dur"]
        t[1] += 1
        t[2] += flops_by_node.get(node, 0)
        n = by_node.setdefault((node, key), 0)
        by_node[(node, key)] = n + e["dur"]
    total = sum(t[0] for t in by_op.values()) or 1
    runs = max(1, runs)
    table = [(op, where, us / runs, us / total, (fl / us / 1e3) if us and fl else None, calls / runs)
             for (op, where), (us, calls, fl) in by_op.items()]
    table.sort(key=lambda r: -r[2])
    slowest = sorted(((node, op, where, us / runs) for (node, (op, where)), us in by_node.items()),
                     key=lambda r: -r[3])
    return table, slowest


def write_svg(events: list[dict], path, width: int = 1200) -> None:
    """A timeline of the last model_run: one bar per node event, stacked under the run, coloured by
    where it ran (a flame-style picture; hover a bar for its node, op and time)."""
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    if not runs:
        raise ValueError("the profile holds no model_run event")
    run = runs[-1]
    t0, dur = run["ts"], max(1, run["dur"])
    inside = [e for e in node_events(events) if t0 <= e["ts"] <= t0 + dur]
    scale = (width - 20) / dur
    colours = {GGML: "#4c9be8", HOST: "#e8964c"}
    bars = [f'<rect x="10" y="10" width="{dur * scale:.2f}" height="22" fill="#999"><title>model_run '
            f'{dur} us</title></rect>']
    for e in inside:
        x = 10 + (e["ts"] - t0) * scale
        w = max(e["dur"] * scale, 0.5)
        op = e["args"].get("op_name", "?")
        label = f'{e["name"].removesuffix("_kernel_time")} ({op}, {e["args"].get("provider")}): {e["dur"]} us'
        bars.append(f'<rect x="{x:.2f}" y="36" width="{w:.2f}" height="22" '
                    f'fill="{colours.get(e["args"].get("provider"), "#8c8")}" stroke="#fff" stroke-width="0.3">'
                    f'<title>{_xml(label)}</title></rect>')
        if w > 40:
            bars.append(f'<text x="{x + 2:.2f}" y="51" font-size="10" font-family="sans-serif">{_xml(op)}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="70">'
           + "".join(bars) + "</svg>\n")
    with open(path, "w") as fh:
        fh.write(svg)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
