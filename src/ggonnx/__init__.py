"""ggonnx: an ONNX inference runtime whose compute runs on ggml."""
import os as _os

# OpenBLAS worker threads busy-wait after each call before sleeping; keep that short so an
# idle session burns no CPU (read once, when the library loads).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

def _preload_openblas():
    """Load PyPI's libscipy_openblas.so before _core, which names it by soname.

    Installed wheels also find it through their rpath; an editable build in a
    source tree relies on this.
    """
    try:
        import scipy_openblas32
    except ImportError:  # built with blas=system or blas=off
        return
    import ctypes
    lib_dir = scipy_openblas32.get_lib_dir()
    ctypes.CDLL(_os.path.join(lib_dir, scipy_openblas32.get_library(fullname=True)), ctypes.RTLD_GLOBAL)


_preload_openblas()

from ggonnx import _core  # noqa: E402
from ggonnx.config import show_config  # noqa: E402
from ggonnx.errors import (ComputeError, GgonnxError, GraphBuildError, InvalidInputError,  # noqa: E402
                           ModelLoadError, ShapeError, UnsupportedOpError)
from ggonnx.session import InferenceSession, NodeArg, Session  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Session", "InferenceSession", "NodeArg", "show_config", "GgonnxError", "ModelLoadError",
    "UnsupportedOpError", "ShapeError", "InvalidInputError", "GraphBuildError", "ComputeError",
]
