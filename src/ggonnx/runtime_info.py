"""onnxruntime's module-level functions: providers, device, version, build info, seed."""
from __future__ import annotations

import numpy as np

CPU_PROVIDER = "CPUExecutionProvider"
# onnxruntime's provider names; a session asked for one other than the CPU's warns and runs on the CPU
ALL_PROVIDERS = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "MIGraphXExecutionProvider", "ROCMExecutionProvider",
    "OpenVINOExecutionProvider", "DnnlExecutionProvider", "VitisAIExecutionProvider", "QNNExecutionProvider",
    "NnapiExecutionProvider", "VSINPUExecutionProvider", "JsExecutionProvider", "CoreMLExecutionProvider",
    "ArmNNExecutionProvider", "ACLExecutionProvider", "DmlExecutionProvider", "RknpuExecutionProvider",
    "WebNNExecutionProvider", "WebGpuExecutionProvider", "XnnpackExecutionProvider", "CANNExecutionProvider",
    "AzureExecutionProvider", CPU_PROVIDER,
)

_seed: list = [None]  # the seed random ops without a seed attribute draw from (set_seed)


def get_available_providers() -> list[str]:
    return [CPU_PROVIDER]


def get_all_providers() -> list[str]:
    return list(ALL_PROVIDERS)


def get_device() -> str:
    return "CPU"


def get_version_string() -> str:
    from ggonnx import __version__
    return __version__


def get_build_info() -> str:
    from ggonnx import _build_info, cpu_variant
    variant = cpu_variant.chosen[0]
    return (f"ggonnx {_build_info.GGONNX_VERSION} build info: ggml={_build_info.GGML_VERSION}, "
            f"blas={_build_info.BLAS}, cpu_variant={variant} "
            f"({_build_info.CPU_VARIANT_FLAGS[variant] or 'default flags'}) of {list(_build_info.CPU_VARIANTS)}")


def set_seed(seed: int) -> None:
    """Seed RandomNormal/RandomUniform/...Like/Multinomial/Bernoulli nodes that have no seed
    attribute: from here on they draw the same sequence in every process (not onnxruntime's values:
    the generators differ)."""
    _seed[0] = np.random.default_rng(int(seed))


def seeded_rng():
    """The generator set_seed made, or None."""
    return _seed[0]
