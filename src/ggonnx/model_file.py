"""Initializers read in place from the pages of the .onnx file they are stored in.

numpy_helper.to_array copies every initializer out of the parsed protobuf, and those copies
stayed beside ggml's own copy of the weights for the session's life (gpt2: 650 MB twice).
Here the file is memory-mapped and each big initializer stored as raw little-endian bytes
becomes a read-only numpy view of its bytes in the file, found by walking the protobuf wire
format (ModelProto.graph -> GraphProto.initializer -> TensorProto.raw_data); protobuf parses
only the rest (the graph re-serialized without those bytes), not the weights. Once the weights are
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
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA, _TENSOR_DATA_LOCATION = 1, 2, 8, 9, 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# element types whose raw_data is exactly numpy's little-endian layout (the others, such as
# bfloat16 and the 4-bit types, are converted by numpy_helper.to_array)
_DIRECT = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
           onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.UINT8,
           onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL}
MIN_MAPPED_BYTES = 64 << 10   # smaller initializers are parsed and copied: not worth a view


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf, start: int, end: int):
    """(field number, wire type, tag start, value start, value end) of each field of the
    message in buf[start:end]; a varint's value is returned in place of its start."""
    pos = start
    while pos < end:
        tag_start = pos
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield key >> 3, wire, tag_start, value, pos
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos)
        elif wire in (_I64, _I32):
            length = 8 if wire == _I64 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}")
        yield key >> 3, wire, tag_start, pos, pos + length
        pos += length
    if pos != end:
        raise ValueError("a protobuf message overruns its length")


def _tensor_header(buf, start: int, end: int) -> tuple:
    """(name, element type, dims, raw_data (offset, length) or None, stored externally)."""
    name, dtype, dims, raw, external = None, 0, [], None, False
    for field, wire, _, s0, s1 in _fields(buf, start, end):
        if field == _TENSOR_NAME and wire == _LEN:
            name = bytes(buf[s0:s1]).decode("utf-8", "replace")
        elif field == _TENSOR_DATA_TYPE and wire == _VARINT:
            dtype = s0
        elif field == _TENSOR_DIMS and wire == _VARINT:
            dims.append(s0)
        elif field == _TENSOR_DIMS and wire == _LEN:  # packed
            pos = s0
            while pos < s1:
                d, pos = _varint(buf, pos)
                dims.append(d)
        elif field == _TENSOR_RAW_DATA and wire == _LEN:
            raw = (s0, s1 - s0)
        elif field == _TENSOR_DATA_LOCATION and wire == _VARINT:
            external = s0 == onnx.TensorProto.EXTERNAL
    return name, dtype, dims, raw, external


def _mappable(dtype: int, dims: list, raw, external: bool) -> bool:
    if raw is None or external or dtype not in _DIRECT or any(d >= 1 << 62 for d in dims):
        return False
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dtype)).itemsize
    return raw[1] >= MIN_MAPPED_BYTES and raw[1] == int(np.prod(dims, dtype=object)) * itemsize


def strip_weights(buf) -> tuple[bytes, dict]:
    """The ModelProto in ``buf`` re-serialized without the raw_data of the initializers worth
    mapping (``_mappable``), and {name: (element type, dims, offset, length)} of those. Parsing
    the rest is cheap: gpt2's 650 MB file is ~1 MB of graph."""
    out, mapped = bytearray(), {}
    for field, wire, tag0, g0, g1 in _fields(buf, 0, len(buf)):
        if field != _MODEL_GRAPH or wire != _LEN:
            out += buf[tag0:g1]
            continue
        graph = bytearray()
        for gfield, gwire, gtag0, t0, t1 in _fields(buf, g0, g1):
            header = _tensor_header(buf, t0, t1) if gfield == _GRAPH_INITIALIZER and gwire == _LEN else None
            if header is None or header[0] is None or header[0] in mapped or not _mappable(*header[1:]):
                graph += buf[gtag0:t1]
                continue
            name, dtype, dims, (offset, length), _ = header
            tensor = bytearray()
            for tfield, _, ttag0, _, tend in _fields(buf, t0, t1):
                if tfield != _TENSOR_RAW_DATA:
                    tensor += buf[ttag0:tend]
            graph += buf[gtag0:gtag0 + 1] + _encode_varint(len(tensor)) + tensor
            mapped[name] = (dtype, dims, offset, length)
        out += buf[tag0:tag0 + 1] + _encode_varint(len(graph)) + graph
    return bytes(out), mapped


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

    def load(self) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
        """The model parsed without its mapped initializers' bytes, and read-only views of those
        in the file (name -> array); external data is loaded as onnx.load does."""
        stripped, spans = strip_weights(self.map)
        proto = onnx.ModelProto()
        proto.ParseFromString(stripped)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            onnx.external_data_helper.load_external_data_for_model(proto, os.path.dirname(self.path))
        views = {}
        for name, (dtype, dims, offset, length) in spans.items():
            np_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dtype)).newbyteorder("<")
            views[name] = np.frombuffer(self.map, np_dtype, length // np_dtype.itemsize, offset).reshape(tuple(dims))
        return proto, views

    def check_unchanged(self) -> None:
        """Raise ModelLoadError if the mapped file was written since it was opened (values the
        session reads again would no longer be the model's)."""
        if _stat_key(os.fstat(self._file.fileno())) != self._key:
            raise ModelLoadError(f"the model file {self.path} changed on disk while this session uses it "
                                 f"(its weights are read from the file); create a new Session")

    def close(self) -> None:
        self.map.close()
        self._file.close()

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
