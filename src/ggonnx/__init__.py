"""ggonnx: an ONNX inference runtime whose compute runs on ggml.

``import ggonnx as ort`` gives onnxruntime's Python API (InferenceSession, SessionOptions,
RunOptions, OrtValue, IOBinding, its exceptions and module functions); ``ggonnx.Session`` is the
shorter native entry point.
"""
import os as _os

# OpenBLAS worker threads busy-wait after each call before sleeping; keep that short so an
# idle session burns no CPU. OpenBLAS reads it when it starts its threads (lazily, at the
# first parallel call), so it stays set: restoring it right after loading measured 34% of a
# core spinning in the 300 ms after a run, instead of 0.07%.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from ggonnx import blas as _blas  # noqa: E402

_blas.preload()  # before _core, which names libscipy_openblas.so by soname

from ggonnx import cpu_variant as _cpu_variant  # noqa: E402

_core = _cpu_variant.load()  # the ggml build for this CPU, as ggonnx._core
from ggonnx._build_info import GGONNX_VERSION as __version__  # noqa: E402
from ggonnx.config import show_config  # noqa: E402
from ggonnx.errors import (ComputeError, Fail, GgonnxError, GraphBuildError, InvalidArgument,  # noqa: E402
                           InvalidGraph, InvalidInputError, InvalidProtobuf, ModelLoadError, NoSuchFile,
                           NotImplemented, RuntimeException, ShapeError, UnsupportedOpError)
from ggonnx.gguf_file import save_quantized as quantize  # noqa: E402
from ggonnx.inference_session import InferenceSession, set_default_logger_severity  # noqa: E402
from ggonnx.ort_options import (ExecutionMode, ExecutionOrder, GraphOptimizationLevel, RunOptions,  # noqa: E402
                                SessionOptions)
from ggonnx.ort_values import IOBinding, ModelMetadata, OrtSparseFormat, OrtValue, SparseTensor  # noqa: E402
from ggonnx.runtime_info import (get_all_providers, get_available_providers, get_build_info, get_device,  # noqa: E402
                                 get_version_string, set_seed)
from ggonnx.session import NodeArg, Session  # noqa: E402


def set_default_logger_verbosity(verbosity: int) -> None:
    """Accepted: ggonnx's verbose records have one verbosity level."""


__all__ = [
    "Session", "InferenceSession", "NodeArg", "quantize", "show_config", "GgonnxError", "ModelLoadError",
    "UnsupportedOpError", "ShapeError", "InvalidInputError", "GraphBuildError", "ComputeError",
    "SessionOptions", "RunOptions", "GraphOptimizationLevel", "ExecutionMode", "ExecutionOrder", "OrtValue",
    "IOBinding", "SparseTensor", "OrtSparseFormat", "ModelMetadata", "get_available_providers",
    "get_all_providers", "get_device", "get_version_string", "get_build_info", "set_default_logger_severity",
    "set_default_logger_verbosity", "set_seed", "Fail", "InvalidArgument", "NoSuchFile", "InvalidProtobuf",
    "RuntimeException", "InvalidGraph", "NotImplemented",
]
