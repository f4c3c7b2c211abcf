"""Squeeze-and-excitation as one executor, for the chain fusion.py merges:

    p = GlobalAveragePool(x);  h = Conv1x1(p) [act];  s = Conv1x1(h) [act];  y = Mul(x, s)

MobileNetV3-style blocks (PP-LCNet in PP-OCRv4 det/rec/cls: 10 of them in cls) run four nodes
on a 1x1 map between two passes over x; here one compiled call (jit_squeeze) does the mean,
both small layers and the scaling: four executors' Python steps become one (cls has 78 nodes in
~1.4 ms, most of them small). Only with numba: the merge is not made without it."""
import numpy as np

from engine.backend import Executor
from engine.ir import Node

from . import CpuBackend, jit
from .gemm import Epilogue


def _epilogue(attrs):
    return Epilogue(Node("Conv", [], [], "", attrs))


@CpuBackend.op("SqueezeExcite")
class SqueezeExciteCPU(Executor):
    """Inputs x (N, C, H, W), W1 (R, C, 1, 1), b1 (R,) or absent, W2 (C, R, 1, 1), b2 or absent;
    attrs "squeeze" and "excite": the two Convs' attributes (their fused activations)."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if not jit.available():
            return "the fused squeeze-and-excitation is compiled (numba)"
        x, w1, b1, w2, b2 = ins
        if x is None or len(x.shape) != 4 or x.dtype != np.float32 or tuple(outs[0].shape) != tuple(x.shape):
            return "squeeze-and-excitation scales a float32 NCHW tensor"
        if any(t is not None and (t.value is None or t.dtype != np.float32) for t in (w1, b1, w2, b2)):
            return "the weights are not float32 constants"
        from .jit_epilogue import params
        for key in ("squeeze", "excite"):
            if params(_epilogue(node.attrs[key]))[1]:
                return f"no compiled activation {node.attrs[key].get('activation')}"
        return None

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        from .jit_epilogue import params
        from .jit_squeeze import squeeze_excite
        self.kernel = squeeze_excite
        c = ins[0].shape[1]
        r = ins[1].shape[0]
        self.w1 = np.ascontiguousarray(ins[1].value.reshape(r, c), np.float32)
        self.w2 = np.ascontiguousarray(ins[3].value.reshape(c, r), np.float32)
        self.b1 = np.zeros(r, np.float32) if ins[2] is None else np.ascontiguousarray(ins[2].value.reshape(r), np.float32)
        self.b2 = np.zeros(c, np.float32) if ins[4] is None else np.ascontiguousarray(ins[4].value.reshape(c), np.float32)
        self.acts = params(_epilogue(node.attrs["squeeze"]))[0] + params(_epilogue(node.attrs["excite"]))[0]
        self.work = np.empty(2 * c + r, np.float32)

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        n, c = inputs[0].shape[:2]
        x, y = inputs[0].reshape(n, c, -1), outputs[0].reshape(n, c, -1)
        self.images = [(x[i], y[i]) for i in range(n)]

    def run(self):
        for x, y in self.images:
            self.kernel(x, self.w1, self.b1, self.w2, self.b2, y, self.work, *self.acts)
