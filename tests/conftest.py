import atexit
import os
import shutil
import sys
import tempfile

from hypothesis import settings

# CI replays the same examples every run (a fixed seed), so a green main stays green; local
# runs keep exploring new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py and helpers import by name
# onnx's backend runner writes the light models' test data under ONNX_HOME: keep it out of ~,
# in a folder of this run's that goes when the run ends.
if "ONNX_HOME" not in os.environ:
    os.environ["ONNX_HOME"] = tempfile.mkdtemp(prefix="ggonnx-onnx-home-")
    _owner = os.getpid()   # a forked child that runs atexit handlers must not remove it
    atexit.register(lambda home=os.environ["ONNX_HOME"]: os.getpid() == _owner and
                    shutil.rmtree(home, ignore_errors=True))
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
