"""onnxruntime's value classes: OrtValue, SparseTensor (read-only), IOBinding, ModelMetadata.

ggonnx computes on the CPU, so an OrtValue is a NumPy array with onnxruntime's methods around it
(device "cpu" only) and an IOBinding binds arrays by reference: a bound CPU input is not copied
until ggml reads it, and a bound output array is filled in place.
"""
from __future__ import annotations

import ctypes
import enum

import numpy as np
from onnx import helper

from ggonnx.errors import InvalidArgument


def _check_device(device_type, device_id=0) -> None:
    name = getattr(device_type, "device_name", lambda: device_type)() if not isinstance(device_type, str) \
        else device_type
    if str(name).lower() != "cpu":
        raise InvalidArgument(f"device {name!r} is not available in ggonnx (only 'cpu')")


def _onnx_type_str(dtype: np.dtype) -> str:
    from ggonnx.importer import _type_string
    if dtype.kind in "OUS":
        return "tensor(string)"
    return _type_string(helper.np_dtype_to_tensor_dtype(dtype))


class OrtValue:
    """A tensor (NumPy array), a sequence of tensors or a sparse tensor, on the CPU."""

    def __init__(self, value, _sparse=None):
        self._value = value
        self._sparse = _sparse

    @staticmethod
    def ortvalue_from_numpy(numpy_obj, device_type="cpu", device_id=0) -> "OrtValue":
        """Wrap ``numpy_obj`` without copying it (as onnxruntime does for CPU arrays)."""
        _check_device(device_type, device_id)
        arr = numpy_obj if isinstance(numpy_obj, np.ndarray) else np.asarray(numpy_obj)
        return OrtValue(arr)

    @staticmethod
    def ortvalue_from_numpy_with_onnx_type(data, onnx_element_type: int) -> "OrtValue":
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(onnx_element_type)))
        arr = np.asarray(data)
        return OrtValue(arr.view(dtype) if arr.dtype.itemsize == dtype.itemsize else arr.astype(dtype))

    @staticmethod
    def ortvalue_from_shape_and_type(shape, element_type, device_type="cpu", device_id=0) -> "OrtValue":
        _check_device(device_type, device_id)
        if isinstance(element_type, int) and not isinstance(element_type, bool):
            element_type = helper.tensor_dtype_to_np_dtype(element_type)
        return OrtValue(np.empty(tuple(int(d) for d in shape), dtype=np.dtype(element_type)))

    @staticmethod
    def ort_value_from_sparse_tensor(sparse_tensor: "SparseTensor") -> "OrtValue":
        return OrtValue(None, _sparse=sparse_tensor)

    def _tensor(self) -> np.ndarray:
        if not isinstance(self._value, np.ndarray):
            raise InvalidArgument("this OrtValue is not a tensor")
        return self._value

    def numpy(self):
        if self._sparse is not None:
            raise InvalidArgument("a sparse OrtValue has no dense numpy(); use as_sparse_tensor()")
        if isinstance(self._value, list):
            return [np.asarray(v) for v in self._value]
        return self._value

    def shape(self) -> list[int]:
        if self._sparse is not None:
            return list(self._sparse.dense_shape())
        return list(self._tensor().shape)

    def data_type(self) -> str:
        if self._sparse is not None:
            return _onnx_type_str(self._sparse.values().dtype).replace("tensor", "sparse_tensor")
        if isinstance(self._value, list):
            inner = _onnx_type_str(np.asarray(self._value[0]).dtype) if self._value else "tensor(float)"
            return f"seq({inner})"
        return _onnx_type_str(self._tensor().dtype)

    def element_type(self) -> int:
        """The ONNX TensorProto element type number, as onnxruntime returns it."""
        dtype = self._sparse.values().dtype if self._sparse is not None else self._tensor().dtype
        return helper.np_dtype_to_tensor_dtype(dtype) if dtype.kind not in "OUS" else 8

    def data_ptr(self) -> int:
        return self._tensor().ctypes.data

    def device_name(self) -> str:
        return "cpu"

    def has_value(self) -> bool:
        return self._value is not None or self._sparse is not None

    def is_tensor(self) -> bool:
        return isinstance(self._value, np.ndarray)

    def is_tensor_sequence(self) -> bool:
        return isinstance(self._value, list)

    def is_sparse_tensor(self) -> bool:
        return self._sparse is not None

    def as_sparse_tensor(self) -> "SparseTensor":
        if self._sparse is None:
            raise InvalidArgument("this OrtValue is not a sparse tensor")
        return self._sparse

    def tensor_size_in_bytes(self) -> int:
        return self._tensor().nbytes

    def update_inplace(self, np_arr) -> None:
        """Copy ``np_arr`` into this value's memory (same size and dtype)."""
        target = self._tensor()
        src = np.asarray(np_arr)
        if src.dtype != target.dtype or src.size != target.size:
            raise InvalidArgument(f"update_inplace: expected {target.size} {target.dtype} values, "
                                  f"got {src.size} {src.dtype}")
        target.reshape(-1)[...] = src.reshape(-1)

    def __repr__(self):
        return f"OrtValue({self.data_type()}, shape={self.shape() if self._value is not None or self._sparse else None})"


class OrtSparseFormat(enum.IntEnum):
    ORT_SPARSE_UNDEFINED = 0
    ORT_SPARSE_COO = 1
    ORT_SPARSE_CSRC = 2
    ORT_SPARSE_BLOCK_SPARSE = 4


class _SparseView:
    def __init__(self, **arrays):
        self._arrays = arrays

    def indices(self):
        return self._arrays["indices"]

    def inner(self):
        return self._arrays["inner"]

    def outer(self):
        return self._arrays["outer"]


class SparseTensor:
    """A read-only sparse tensor in COO or CSR(C) form, like onnxruntime's."""

    def __init__(self, fmt: OrtSparseFormat, dense_shape, values, **indices):
        self.format = fmt
        self._dense_shape = tuple(int(d) for d in dense_shape)
        self._values = np.asarray(values)
        self._indices = {k: np.asarray(v, dtype=np.int64) for k, v in indices.items()}

    @staticmethod
    def sparse_coo_from_numpy(dense_shape, values, coo_indices, ort_device=None) -> "SparseTensor":
        if ort_device is not None:
            _check_device(ort_device)
        return SparseTensor(OrtSparseFormat.ORT_SPARSE_COO, dense_shape, values, indices=coo_indices)

    @staticmethod
    def sparse_csr_from_numpy(dense_shape, values, inner_indices, outer_indices, ort_device=None) -> "SparseTensor":
        if ort_device is not None:
            _check_device(ort_device)
        return SparseTensor(OrtSparseFormat.ORT_SPARSE_CSRC, dense_shape, values, inner=inner_indices,
                            outer=outer_indices)

    def dense_shape(self):
        return np.array(self._dense_shape, dtype=np.int64)

    def values(self) -> np.ndarray:
        return self._values

    def data_type(self) -> str:
        return _onnx_type_str(self._values.dtype).replace("tensor", "sparse_tensor")

    def device_name(self) -> str:
        return "cpu"

    def as_coo_view(self) -> _SparseView:
        if self.format != OrtSparseFormat.ORT_SPARSE_COO:
            raise InvalidArgument("not a COO sparse tensor")
        return _SparseView(indices=self._indices["indices"])

    def as_csrc_view(self) -> _SparseView:
        if self.format != OrtSparseFormat.ORT_SPARSE_CSRC:
            raise InvalidArgument("not a CSR sparse tensor")
        return _SparseView(inner=self._indices["inner"], outer=self._indices["outer"])

    def to_dense(self) -> np.ndarray:
        """The dense array (ggonnx's addition: onnxruntime's Python class has no such method)."""
        dense = np.zeros(self._dense_shape, dtype=self._values.dtype)
        if self.format == OrtSparseFormat.ORT_SPARSE_COO:
            idx = self._indices["indices"]
            flat = idx if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.reshape(-1, len(self._dense_shape)).T),
                                                                  self._dense_shape)
            dense.reshape(-1)[flat] = self._values
        else:
            inner, outer = self._indices["inner"], self._indices["outer"]
            rows = np.repeat(np.arange(len(outer) - 1), np.diff(outer))
            dense.reshape(self._dense_shape[0], -1)[rows, inner] = self._values
        return dense


def as_array(value):
    """A feed as ggonnx runs it: OrtValues unwrapped, sparse ones densified."""
    if isinstance(value, OrtValue):
        if value.is_sparse_tensor():
            return value.as_sparse_tensor().to_dense()
        return value.numpy()
    if isinstance(value, SparseTensor):
        return value.to_dense()
    return value


def array_at(buffer_ptr: int, shape, element_type) -> np.ndarray:
    """A NumPy view of CPU memory at ``buffer_ptr`` (IOBinding.bind_input / bind_output)."""
    dtype = np.dtype(element_type)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = (ctypes.c_char * max(n, 1)).from_address(int(buffer_ptr))
    return np.frombuffer(raw, dtype=np.uint8, count=n).view(dtype).reshape(tuple(shape))


class IOBinding:
    """onnxruntime's IOBinding for a ggonnx InferenceSession (CPU memory only)."""

    def __init__(self, session):
        self._session = session
        self._inputs: dict = {}
        self._outputs: dict = {}   # name -> preallocated array, or None (ggonnx allocates)
        self._results: list | None = None

    def bind_cpu_input(self, name: str, arr_on_cpu) -> None:
        self._inputs[name] = arr_on_cpu if isinstance(arr_on_cpu, np.ndarray) else np.asarray(arr_on_cpu)

    def bind_input(self, name: str, device_type, device_id, element_type, shape, buffer_ptr) -> None:
        _check_device(device_type, device_id)
        self._inputs[name] = array_at(buffer_ptr, shape, element_type)

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        self._inputs[name] = as_array(ortvalue)

    def bind_output(self, name: str, device_type="cpu", device_id=0, element_type=None, shape=None,
                    buffer_ptr=None) -> None:
        _check_device(device_type, device_id)
        if buffer_ptr is not None:
            if element_type is None or shape is None:
                raise InvalidArgument(f"bind_output('{name}'): a buffer_ptr needs element_type and shape")
            self._outputs[name] = array_at(buffer_ptr, shape, element_type)
        else:
            self._outputs[name] = None

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        self._outputs[name] = ortvalue._tensor()

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()
        self._results = None

    def synchronize_inputs(self) -> None:
        """Nothing to wait for: ggonnx's inputs are CPU memory."""

    def synchronize_outputs(self) -> None:
        """Nothing to wait for: outputs are complete when run_with_iobinding returns."""

    def _run(self, run_options) -> None:
        names = list(self._outputs) or [o.name for o in self._session.get_outputs()]
        outs = self._session.run(names, self._inputs, run_options)
        results = []
        for name, out in zip(names, outs):
            target = self._outputs.get(name)
            if target is None:
                results.append(out)
                continue
            if target.shape != np.shape(out) or target.dtype != np.asarray(out).dtype:
                raise InvalidArgument(f"output '{name}': bound {target.dtype} {list(target.shape)}, "
                                      f"the run produced {np.asarray(out).dtype} {list(np.shape(out))}")
            np.copyto(target, out)
            results.append(target)
        self._results = results

    def get_outputs(self) -> list[OrtValue]:
        return [OrtValue(r) for r in self._results or []]

    def get_outputs_as_ortvaluevector(self) -> list[OrtValue]:
        return self.get_outputs()

    def copy_outputs_to_cpu(self) -> list:
        return [np.array(r, copy=True) if isinstance(r, np.ndarray) else r for r in self._results or []]


class ModelMetadata:
    """onnxruntime's ModelMetadata: the model's producer, graph name and metadata_props."""

    def __init__(self, producer_name="", graph_name="", graph_description="", domain="", description="",
                 version=0, custom_metadata_map=None):
        self.producer_name = producer_name
        self.graph_name = graph_name
        self.graph_description = graph_description
        self.domain = domain
        self.description = description
        self.version = version
        self.custom_metadata_map = dict(custom_metadata_map or {})

    def __repr__(self):
        return f"ModelMetadata(producer_name={self.producer_name!r}, graph_name={self.graph_name!r})"
