"""Choosing the CPU variant (the ggml build) at import: ggml's scores, GGONNX_CPU_VARIANT."""
import io
import os
import subprocess
import sys

import pytest

import ggonnx
from ggonnx import _build_info, _cpu_probe, cpu_variant
from ggonnx.cpu_variant import ENV, choose

SCORES = [("x86_64_v4_bf16", 0), ("x86_64_v4", 0), ("x86_64_v3", 63), ("x86_64_v2", 5)]


def test_best_runnable_variant_wins():
    name, why = choose(SCORES, None)
    assert name == "x86_64_v3" and "score 63" in why


def test_forced_variant():
    assert choose(SCORES, "x86_64_v2") == ("x86_64_v2", f"forced by {ENV}")


@pytest.mark.parametrize("forced, message", [("x86_64_v9", "has the CPU variants"),
                                             ("x86_64_v4", "lacks instructions")])
def test_forcing_what_cannot_run_fails_at_import(forced, message):
    with pytest.raises(ImportError, match=message):
        choose(SCORES, forced)


def test_no_runnable_variant():
    with pytest.raises(ImportError, match="none of"):
        choose([("x86_64_v4", 0)], None)


def test_this_build_reports_its_variant():
    names = [n for n, _ in _cpu_probe.scores()]
    assert names == list(_build_info.CPU_VARIANTS)
    assert cpu_variant.chosen[0] in names
    assert sys.modules["ggonnx._core"] is ggonnx._core
    out = io.StringIO()
    ggonnx.show_config(file=out)
    assert f"CPU variant:  {cpu_variant.chosen[0]}" in out.getvalue()


def test_environment_variable_is_read_at_import():
    env = dict(os.environ, **{ENV: "no_such_variant"})
    proc = subprocess.run([sys.executable, "-c", "import ggonnx"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "has the CPU variants" in proc.stderr
    env[ENV] = cpu_variant.chosen[0]
    proc = subprocess.run([sys.executable, "-c", "import ggonnx, ggonnx.cpu_variant as c; print(c.chosen[1])"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and f"forced by {ENV}" in proc.stdout
