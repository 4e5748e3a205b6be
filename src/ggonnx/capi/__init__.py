"""``onnxruntime.capi``'s layout, so code that imports onnxruntime's exception classes from
``onnxruntime.capi.onnxruntime_pybind11_state`` finds ggonnx's under the same names."""
from ggonnx.capi import onnxruntime_pybind11_state  # noqa: F401
