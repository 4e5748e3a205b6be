"""The OpenBLAS that ggml's BLAS backend calls: loading it, and what it runs on.

PyPI's scipy-openblas32 ships libscipy_openblas.so; _core links it by soname.
Installed wheels find it through their rpath; an editable build relies on the
preload here. OpenBLAS picks its kernels per CPU at load time, and
OPENBLAS_CORETYPE can force an older kernel set (some machines set it for old
OpenBLAS builds); with AVX2 kernels on an AVX-512 CPU ggml's own sgemm is the
faster one, which the matmul placement takes into account.
"""
from __future__ import annotations

import ctypes
import os

_lib = None


def preload() -> None:
    global _lib
    try:
        import scipy_openblas32
    except ImportError:  # built with blas=system or blas=off
        return
    path = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
    _lib = ctypes.CDLL(path, ctypes.RTLD_GLOBAL)


def core_name() -> str | None:
    """OpenBLAS's kernel set (e.g. 'SkylakeX', 'Haswell'); None when unknown."""
    if _lib is None:
        return None
    fn = _lib.scipy_openblas_get_corename
    fn.restype = ctypes.c_char_p
    return fn().decode()


_AVX512_CORES = {"SkylakeX", "Cooperlake", "SapphireRapids", "Zen4", "Zen5"}


def f32_kernels_match_cpu() -> bool:
    """False when OpenBLAS runs narrower SIMD kernels than ggml was built with here."""
    from ggonnx import _core
    core = core_name()
    if core is None:
        return True
    return not ("AVX512" in _core.cpu_features() and core not in _AVX512_CORES)
