"""Every exception ggonnx raises on purpose. Each subclasses a standard exception.

onnxruntime's exception names (``Fail``, ``InvalidArgument``, ``NoSuchFile``, ...) are ggonnx
classes too, raised where onnxruntime raises them, so ``except ort.InvalidArgument`` works after
``import ggonnx as ort``; ggonnx's own classes derive from them and keep the builtin bases they
always had.
"""


class GgonnxError(Exception):
    """Base class of ggonnx's errors."""


# -- onnxruntime's names ---------------------------------------------------------------------
class Fail(GgonnxError, RuntimeError):
    """onnxruntime's FAIL: a run stopped on purpose (RunOptions.terminate) or a model error."""


class InvalidArgument(GgonnxError, ValueError):
    """onnxruntime's INVALID_ARGUMENT: a feed of the wrong dtype, rank or shape, an unknown name."""


class RuntimeException(GgonnxError, RuntimeError):
    """onnxruntime's RUNTIME_EXCEPTION: computing failed."""


class NotImplemented(GgonnxError, NotImplementedError):  # noqa: A001 (onnxruntime's name)
    """onnxruntime's NOT_IMPLEMENTED: no kernel for an op, attribute or dtype."""


# -- ggonnx's own, under those -----------------------------------------------------------------
class ModelLoadError(GgonnxError, ValueError):
    """The model file or protobuf is unreadable, malformed or inconsistent."""


class NoSuchFile(ModelLoadError):
    """onnxruntime's NO_SUCHFILE: the model path does not exist."""


class InvalidProtobuf(ModelLoadError):
    """onnxruntime's INVALID_PROTOBUF: the bytes are not an ONNX model."""


class InvalidGraph(ModelLoadError):
    """onnxruntime's INVALID_GRAPH: the graph breaks ONNX's rules (unknown op, dangling names, ...)."""


class UnsupportedOpError(NotImplemented):
    """A node uses an op, domain, attribute or dtype ggonnx cannot run."""


class UnknownOpError(UnsupportedOpError, InvalidGraph):
    """A node's op is defined by no ONNX domain ggonnx knows (onnxruntime: INVALID_GRAPH)."""


class HostKernelError(UnsupportedOpError):
    """A node running on the host (onnx reference kernel) failed on its inputs."""


class ShapeError(GgonnxError, ValueError):
    """A node's input shapes are invalid for its op."""


class InvalidInputError(InvalidArgument):
    """A value passed to ``run`` has the wrong name, dtype, rank or shape."""


class GraphBuildError(RuntimeException):
    """The lowered graph could not be built in ggml (a ggonnx bug: please report)."""


class ComputeError(RuntimeException):
    """ggml failed while computing a graph."""


class RunTerminated(Fail):
    """A run stopped because its RunOptions.terminate was set."""


class PlanRetired(RuntimeException):
    """A compiled plan whose ggml resources a later plan took over (the caller plans again)."""


class PlanOutgrown(Exception):
    """A run's values fall outside what its plan assumed (data-dependent shapes moved, or integers
    beyond the range ggml holds exactly): not an error of the caller's; the runner plans again
    for these values."""
