import os
import sys
import tempfile

from hypothesis import settings

# CI replays the same examples every run (a fixed seed), so a green main stays green; local
# runs keep exploring new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py and helpers import by name
# onnx's backend runner writes the light models' test data under ONNX_HOME: keep it out of ~.
os.environ.setdefault("ONNX_HOME", tempfile.mkdtemp(prefix="ggonnx-onnx-home-"))
# Outputs from 8 MB on are stored non-temporally on every CPU in tests (a large-L3 Intel CPU
# otherwise starts far higher), so the streamed stores stay covered wherever the suite runs.
os.environ.setdefault("GGONNX_STREAM_MIN_MB", "8")


_passed_node_tests: set = set()
_passed_backend_tests: set = set()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "::OnnxBackend" in report.nodeid:
        _passed_backend_tests.add(report.nodeid)
        if "::OnnxBackendNodeModelTest::" in report.nodeid:
            _passed_node_tests.add(report.nodeid.rsplit("::", 1)[-1])


def pytest_terminal_summary(terminalreporter):
    if not _passed_backend_tests:
        return
    import test_onnx_backend as conformance
    # node test models are named after the test (graph name == test name without _cpu)
    in_ggml = sum(1 for name in _passed_node_tests if conformance.ALL_IN_GGML.get(name[: -len("_cpu")]))
    terminalreporter.write_line(f"ONNX backend node tests passed: {len(_passed_node_tests)}, "
                                f"{in_ggml} of them with every node in ggml; all ONNX backend tests "
                                f"passed: {len(_passed_backend_tests)}")
