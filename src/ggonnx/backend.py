"""ggonnx as an onnx.backend backend: prepare(model).run(inputs)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from ggonnx.session import Session


class GgonnxRep(BackendRep):
    def __init__(self, session: Session):
        self.session = session

    def run(self, inputs, **kwargs):
        names = [a.name for a in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            feeds = dict(zip(names, inputs))
        feeds = {k: v if v is None or isinstance(v, (list, dict)) else np.asarray(v) for k, v in feeds.items()}
        return tuple(self.session.run(None, feeds))


class GgonnxBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> GgonnxRep:
        if not cls.supports_device(device):
            raise RuntimeError(f"ggonnx backend: device {device!r} is not supported")
        return GgonnxRep(Session(model, threads=kwargs.get("threads")))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        from onnx import helper
        names = [f"input_{i}" for i in range(len(inputs))]
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                        for n, a in zip(names, arrays)]
        proto = onnx.NodeProto()
        proto.CopyFrom(node)
        del proto.input[:]
        proto.input.extend(names[:len(node.input)])
        outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output]
        model = helper.make_model(helper.make_graph([proto], "run_node", graph_inputs, outputs))
        return cls.run_model(model, arrays, device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().startswith("CPU")


prepare = GgonnxBackend.prepare
run_model = GgonnxBackend.run_model
run_node = GgonnxBackend.run_node
supports_device = GgonnxBackend.supports_device
is_compatible = GgonnxBackend.is_compatible
