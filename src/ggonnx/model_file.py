"""Initializers read in place from the pages of the .onnx file they are stored in.

numpy_helper.to_array copies every initializer out of the parsed protobuf, and those copies
stayed beside ggml's own copy of the weights for the session's life (gpt2: 650 MB twice).
Here the file is memory-mapped and each initializer stored as raw little-endian bytes becomes
a read-only numpy view of its bytes in the file: found by walking the protobuf wire format
(ModelProto.graph -> GraphProto.initializer -> TensorProto.raw_data). Once the weights are
uploaded the file's resident pages are dropped (ggonnx.memory.release_after_upload), so a
session holds its weights once; a value read again later is read from the file again.

Because of that later read, the file must not change under a live session:
``MappedModel.check_unchanged`` compares the file's inode metadata before each plan is made,
and a host step copies any mapped constant it reads at run time (``copy_if_mapped``).
"""
from __future__ import annotations

import mmap
import os

import numpy as np
import onnx

from ggonnx.errors import ModelLoadError

# protobuf field numbers (onnx.proto3)
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_NAME, _TENSOR_RAW_DATA = 7, 5, 8, 9
_LEN = 2
# element types whose raw_data is exactly numpy's little-endian layout (the others, such as
# bfloat16 and the 4-bit types, are converted by numpy_helper.to_array)
_DIRECT = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
           onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.UINT8,
           onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL}
MIN_MAPPED_BYTES = 64 << 10   # smaller initializers are copied: their pages are not worth a view


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, start, end) of each length-delimited field of the message in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            yield key >> 3, pos, pos + length
            pos += length
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}")
    if pos != end:
        raise ValueError("a protobuf message overruns its length")


def raw_data_spans(buf) -> dict[str, tuple[int, int]]:
    """{initializer name: (offset, length)} of the main graph's initializers' raw_data in ``buf``,
    the bytes of a serialized ModelProto."""
    spans = {}
    for field, g0, g1 in _fields(buf, 0, len(buf)):
        if field != _MODEL_GRAPH:
            continue
        for gfield, t0, t1 in _fields(buf, g0, g1):
            if gfield != _GRAPH_INITIALIZER:
                continue
            name, raw = None, None
            for tfield, s0, s1 in _fields(buf, t0, t1):
                if tfield == _TENSOR_NAME:
                    name = bytes(buf[s0:s1]).decode("utf-8", "replace")
                elif tfield == _TENSOR_RAW_DATA:
                    raw = (s0, s1 - s0)
            if name is not None and raw is not None:
                spans[name] = raw
    return spans


def _stat_key(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_size, st.st_mtime_ns


class MappedModel:
    """A model file mapped read-only, and the views of its initializers."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 -- held open: fstat sees this inode even if renamed over
        try:
            self.map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            self._file.close()
            raise
        self._key = _stat_key(os.fstat(self._file.fileno()))

    def arrays(self, proto: onnx.ModelProto) -> dict[str, np.ndarray]:
        """Read-only views of ``proto``'s initializers (parsed from this file) that are stored
        as raw bytes of a direct type and hold at least MIN_MAPPED_BYTES; each span is checked
        against the parsed tensor's size and first bytes."""
        try:
            spans = raw_data_spans(self.map)
        except (ValueError, IndexError):
            return {}
        views = {}
        for t in proto.graph.initializer:
            span = spans.get(t.name)
            if span is None or t.data_type not in _DIRECT or t.data_location == onnx.TensorProto.EXTERNAL:
                continue
            offset, length = span
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).newbyteorder("<")
            count = int(np.prod(t.dims)) if t.dims else 1
            if length < MIN_MAPPED_BYTES or length != count * dtype.itemsize or len(t.raw_data) != length \
                    or t.raw_data[:64] != self.map[offset:offset + min(64, length)]:
                continue
            views[t.name] = np.frombuffer(self.map, dtype=dtype, count=count, offset=offset).reshape(tuple(t.dims))
        return views

    def check_unchanged(self) -> None:
        """Raise ModelLoadError if the mapped file was written since it was opened (values the
        session reads again would no longer be the model's)."""
        if _stat_key(os.fstat(self._file.fileno())) != self._key:
            raise ModelLoadError(f"the model file {self.path} changed on disk while this session uses it "
                                 f"(its weights are read from the file); create a new Session")

    def madvise(self, advice: int) -> None:
        self.map.madvise(advice)

    @property
    def closed(self) -> bool:
        return self.map.closed


def is_mapped(a) -> bool:
    """Whether ``a`` is a view of a memory-mapped file's pages."""
    while isinstance(a, (np.ndarray, memoryview)):
        a = a.base if isinstance(a, np.ndarray) else a.obj
    return isinstance(a, mmap.mmap)


def copy_if_mapped(a):
    return np.array(a) if is_mapped(a) else a


def check_unchanged(mapped: list) -> None:
    """MappedModel.check_unchanged for each mapped model file among ``mapped`` (Graph.mapped)."""
    for m in mapped:
        if isinstance(m, MappedModel):
            m.check_unchanged()


def map_model_file(model) -> MappedModel | None:
    """The model file ``model`` (a path) mapped, or None (bytes, a ModelProto, or a file that
    cannot be mapped: its initializers are then copied as before)."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    try:
        return MappedModel(os.fspath(model))
    except (OSError, ValueError):
        return None
