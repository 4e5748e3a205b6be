"""show_config(): what this build of ggonnx has inside."""
from __future__ import annotations

import sys

from ggonnx.cpu_variant import ENV


def config() -> dict:
    from ggonnx import _build_info, _core, blas, cpu_variant
    from ggonnx.ops import supported_ops
    return {
        "ggonnx": _build_info.GGONNX_VERSION,
        "ggml": _core.ggml_version_string(),
        "backends": [f"{name} ({desc})" for name, desc in _core.backend_devices()],
        "blas": _build_info.BLAS,
        "openblas_core": blas.core_name(),
        "blas_f32_matmuls": "shapes >= 64 per dim and 5e7 MACs" if blas.f32_kernels_match_cpu()
                            else "none (OpenBLAS kernels narrower than ggml's here)",
        "arch_flags": _build_info.CPU_VARIANT_FLAGS[cpu_variant.chosen[0]],
        "cpu_variant": cpu_variant.chosen[0],
        "cpu_variant_reason": cpu_variant.chosen[1],
        "cpu_variants": list(_build_info.CPU_VARIANTS),
        "cpu_features": _core.cpu_features(),
        "ops": supported_ops(),
    }


def show_config(file=None) -> None:
    file = file or sys.stdout
    cfg = config()
    print(f"ggonnx {cfg['ggonnx']} on ggml {cfg['ggml']}", file=file)
    print(f"  backends:     {', '.join(cfg['backends'])}", file=file)
    print(f"  BLAS:         {cfg['blas']} (OpenBLAS kernels: {cfg['openblas_core']}; "
          f"float32 matmuls placed on it: {cfg['blas_f32_matmuls']})", file=file)
    print(f"  CPU variant:  {cfg['cpu_variant']}: {cfg['cpu_variant_reason']} (set {ENV} to force one)", file=file)
    print(f"  arch flags:   {cfg['arch_flags'] or '(default)'}", file=file)
    print(f"  CPU features: {' '.join(cfg['cpu_features'])}", file=file)
    print(f"  ONNX ops in ggml ({len(cfg['ops'])}): {' '.join(cfg['ops'])}", file=file)
