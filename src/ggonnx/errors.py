"""Every exception ggonnx raises on purpose. Each subclasses a standard exception."""


class GgonnxError(Exception):
    """Base class of ggonnx's errors."""


class ModelLoadError(GgonnxError, ValueError):
    """The model file or protobuf is unreadable, malformed or inconsistent."""


class UnsupportedOpError(GgonnxError, NotImplementedError):
    """A node uses an op, domain, attribute or dtype ggonnx cannot run."""


class HostKernelError(UnsupportedOpError):
    """A node running on the host (onnx reference kernel) failed on its inputs."""


class ShapeError(GgonnxError, ValueError):
    """A node's input shapes are invalid for its op."""


class InvalidInputError(GgonnxError, ValueError):
    """A value passed to ``run`` has the wrong name, dtype, rank or shape."""


class GraphBuildError(GgonnxError, RuntimeError):
    """The lowered graph could not be built in ggml (a ggonnx bug: please report)."""


class ComputeError(GgonnxError, RuntimeError):
    """ggml failed while computing a graph."""
