"""Elementwise ops: unary functions and activations, broadcast binary ops, BatchNormalization."""
import numpy as np

from . import OpenCLBackend
from .base import BINARY, GROUP, UNARY, CLExecutor, box_local, f32, float32_only, i32
from engine.geometry import broadcast_strides, merge_dims

from .shapes import pad_left

# Attribute defaults of the parametrized unary ops: op -> ((attr, default) for a, for b).
_PARAMS = {"LeakyRelu": (("alpha", 0.01), None), "HardSigmoid": (("alpha", 0.2), ("beta", 0.5)),
           "Elu": (("alpha", 1.0), None), "Celu": (("alpha", 1.0), None),
           "Selu": (("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875)),
           "ThresholdedRelu": (("alpha", 1.0), None), "Shrink": (("lambd", 0.5), ("bias", 0.0))}


def _const(info, default):
    if info is None or info.value is None or np.size(info.value) == 0:
        return default
    return float(np.asarray(info.value).reshape(-1)[0])


@OpenCLBackend.op(*[op for op in UNARY if op and op != "Gelu_tanh"])
class UnaryCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.op == "Clip" and any(i is not None and i.value is None for i in ins[1:]):
            return "Clip bounds computed at run time"
        return float32_only(ins[:1], outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        op, a, b = node.op, 0.0, 0.0
        if op == "Clip":
            a = _const(ins[1] if len(ins) > 1 else None, -np.inf)
            b = _const(ins[2] if len(ins) > 2 else None, np.inf)
        elif op == "Gelu" and node.attrs.get("approximate", "none") in ("tanh", b"tanh"):
            op = "Gelu_tanh"
        elif op in _PARAMS:
            pa, pb = _PARAMS[op]
            a = node.attrs.get(*pa)
            b = node.attrs.get(*pb) if pb else 0.0
        self.args = (i32(UNARY[op]), f32(a), f32(b))
        self.k = self.kernel("eltwise.cl", "unary")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, i32(y.size), *self.args)
            self.launch(self.k, (y.size,), (GROUP,))


def _binary_code(node):
    if node.op == "Mod":
        return BINARY["Fmod"] if node.attrs.get("fmod", 0) else None
    return BINARY.get(node.op)


@OpenCLBackend.op("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Mod")
class BinaryCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins) != 2 or ins[0] is None or ins[1] is None:
            return f"{node.op} of {len(ins)} inputs (opencl runs two)"
        if _binary_code(node) is None:
            return "integer Mod (fmod=0)"
        if len(outs[0].shape) > 6:
            return "rank above 6"
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        out = outs[0].shape
        sizes, (sa, sb) = merge_dims(out, broadcast_strides(ins[0].shape, out),
                                     broadcast_strides(ins[1].shape, out))
        rank = 3 if len(sizes) <= 3 else 6  # three dims or fewer: the kernel without loops
        self.dims = [pad_left(sizes, rank, 1), pad_left(sa, rank, 0), pad_left(sb, rank, 0)]
        self.code = i32(_binary_code(node))
        self.k = self.kernel("eltwise.cl", "binary" if rank == 3 else "binary_nd")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        (a, b), y, d = inputs, outputs[0], self.dims[0]
        if not y.size:
            return
        self.k.set_args(a.buf, a.off, b.buf, b.off, y.buf, y.off, self.code,
                        *[i32(v) for dims in self.dims for v in dims])
        self.launch(self.k, (d[-1], d[-2], d[-3]), box_local(d[-1]))


@OpenCLBackend.op("BatchNormalization")
class BatchNormCL(CLExecutor):
    """Inference BatchNormalization (when the frontend could not fold it): y = x * s[c] + t[c]."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.attrs.get("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
            return "training mode"
        if any(i.value is None for i in ins[1:5]) or len(ins[0].shape) < 2:
            return "statistics computed at run time"
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        scale, bias, mean, var = (np.asarray(i.value, np.float64) for i in ins[1:5])
        s = scale / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
        self.s = backend.upload(s.astype(np.float32))
        self.t = backend.upload((bias - mean * s).astype(np.float32))
        self.k = self.kernel("eltwise.cl", "channel_affine")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        c = x.shape[1]
        inner, rows = int(np.prod(x.shape[2:])), x.shape[0] * c
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, self.s.buf, self.t.buf, i32(c), i32(inner), i32(rows))
            self.launch_2d(self.k, inner, rows)
