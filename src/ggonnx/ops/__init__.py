"""ONNX op lowerings, one family per module; importing this package fills the registry."""
from ggonnx.ops import conv, elementwise, matmul, ml, nn, pad, pool, quant, reduce, resize, shape  # noqa: F401
from ggonnx.ops.registry import lookup, supported_ops  # noqa: F401
