"""onnxruntime's exception names (and the classes beside them) at onnxruntime's module path."""
from ggonnx.errors import (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile,  # noqa: F401
                           NotImplemented, RuntimeException)
from ggonnx.ort_options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions  # noqa: F401
from ggonnx.ort_values import ModelMetadata, OrtValue, SparseTensor  # noqa: F401
