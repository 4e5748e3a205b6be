import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py and helpers import by name


_passed_conformance: set = set()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "OnnxBackendNodeModelTest" in report.nodeid:
        _passed_conformance.add(report.nodeid.rsplit("::", 1)[-1])


def pytest_terminal_summary(terminalreporter):
    if not _passed_conformance:
        return
    import test_onnx_backend as conformance
    # node test models are named after the test (graph name == test name without _cpu)
    in_ggml = sum(1 for name in _passed_conformance if conformance.ALL_IN_GGML.get(name[: -len("_cpu")]))
    terminalreporter.write_line(f"ONNX backend node tests passed: {len(_passed_conformance)}; "
                                f"with every node in ggml: {in_ggml}")
