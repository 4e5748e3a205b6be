"""A fixed-seed slice of the differential fuzzer (tools/fuzz.py): mutated node-test models, each
runtime in a forked child with a time limit. ggonnx must never crash or hang, and where both
runtimes run a case they must agree; refusals either way are counted, not failures."""
import json
import os
import subprocess
import sys

import pytest

FUZZ = os.path.join(os.path.dirname(__file__), "..", "tools", "fuzz.py")
CASES = 150


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzzer forks a child per case")
def test_fixed_seed_slice_never_crashes_hangs_or_disagrees(tmp_path):
    # a process of its own: forking this one (threads of earlier tests' sessions) could deadlock a child
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, FUZZ, "--cases", str(CASES), "--seed", "0", "--timeout", "20",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    bad = [d for d in result["cases"] if d["outcome"] in ("crash", "hang", "wrong")]
    assert not bad and proc.returncode == 0, (bad, proc.stdout[-2000:])
    counts = result["counts"]
    assert sum(counts.values()) == CASES and counts["agree"] > CASES // 2
