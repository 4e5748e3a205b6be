"""The official ONNX backend node tests, run through ggonnx.backend.

onnx generates the node cases in memory (load_model_tests(kind="node")); every
case not excluded in conformance_exclusions.py must pass. Exclusions carry their
reason there, in one place. The terminal summary reports how many passing cases
ran with every node in ggml.
"""
import onnx.backend.test

import ggonnx.backend
from conformance_exclusions import EXCLUDED

# test name -> True when every node of every plan ran in ggml (filled as cases run)
ALL_IN_GGML: dict = {}


class _RecordingBackend(ggonnx.backend.GgonnxBackend):
    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        original_run = rep.run

        def run(inputs, **kw):
            outs = original_run(inputs, **kw)
            ALL_IN_GGML[model.graph.name] = all(
                p.where == "ggml" for plan in rep.session._runner.plans.values() for p in plan.placement)
            return outs

        rep.run = run
        return rep


backend_test = onnx.backend.test.BackendTest(_RecordingBackend, __name__)
backend_test.include(r"^test_.*_cpu$")
for pattern in EXCLUDED:
    backend_test.exclude(pattern)

_cases = backend_test.test_cases
OnnxBackendNodeModelTest = _cases["OnnxBackendNodeModelTest"]
# The "real" models are the light architectures shipped in the onnx wheel (resnet50,
# densenet121, ...): opset 9, weights built by ConstantOfShape, reference outputs on disk.
OnnxBackendRealModelTest = _cases["OnnxBackendRealModelTest"]
OnnxBackendSimpleModelTest = _cases["OnnxBackendSimpleModelTest"]
OnnxBackendPyTorchConvertedModelTest = _cases["OnnxBackendPyTorchConvertedModelTest"]
OnnxBackendPyTorchOperatorModelTest = _cases["OnnxBackendPyTorchOperatorModelTest"]
