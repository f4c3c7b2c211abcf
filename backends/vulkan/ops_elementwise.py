"""Elementwise executors: unary ops and activations (unary.comp), binary ops with broadcasting
(binary.comp), and BatchNormalization when the optimizer left it unfolded (channel_affine.comp)."""
import numpy as np

from engine.geometry import broadcast_strides, merge_dims

from . import VulkanBackend
from .kernel import OPS, VkExecutor, attr, check_float, pack

# op -> (attribute defaults of the two parameters a, b)
UNARY = {"Relu": (), "Sigmoid": (), "Tanh": (), "Exp": (), "Log": (), "Sqrt": (), "Erf": (),
         "Abs": (), "Neg": (), "Reciprocal": (), "Softplus": (), "Floor": (), "Ceil": (), "SiLU": (),
         "HardSwish": (), "Gelu": (), "Sin": (), "Cos": (), "Softsign": (), "Round": (), "Sign": (),
         "Mish": (), "LeakyRelu": (("alpha", 0.01),), "Elu": (("alpha", 1.0),),
         "Celu": (("alpha", 1.0),), "ThresholdedRelu": (("alpha", 1.0),),
         "HardSigmoid": (("alpha", 0.2), ("beta", 0.5)),
         "Selu": (("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875)),
         "Clip": ()}
BINARY = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Pow": 4, "Max": 5, "Min": 6, "PRelu": 7}
MAX_DIMS = 6


@VulkanBackend.op(*UNARY)
class UnaryVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.op == "Clip" and any(i is not None and i.value is None for i in ins[1:]):
            return "Clip bounds computed from data"
        if node.op == "Gelu" and attr(node, "approximate", "none") not in ("none", "tanh"):
            return f"Gelu approximate='{attr(node, 'approximate', '')}'"
        return check_float(node, ins, outs, backend, inputs={0})

    def params(self):
        node = self.node
        if node.op == "Clip":
            lo, hi = (self.ins[k].value if len(self.ins) > k and self.ins[k] is not None else None for k in (1, 2))
            return (float(np.asarray(lo).reshape(-1)[0]) if lo is not None else -3.4e38,
                    float(np.asarray(hi).reshape(-1)[0]) if hi is not None else 3.4e38)
        values = [float(node.attrs.get(k, d)) for k, d in UNARY[node.op]]
        return tuple(values + [0.0] * (2 - len(values)))

    def record(self):
        op = "GeluTanh" if self.node.op == "Gelu" and attr(self.node, "approximate", "none") == "tanh" \
            else self.node.op
        x, y = self.inputs[0], self.outputs[0]
        return [self.dispatch("unary", [x], [y], pack(y.size, *self.params()), y.size, spec=(OPS[op],))]


@VulkanBackend.op(*BINARY)
class BinaryVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins) != 2 or ins[1] is None:
            return f"{node.op} of {len(ins)} inputs (binary only)"
        why = check_float(node, ins, outs, backend)
        if why:
            return why
        shape, _ = cls.layout(ins, outs)
        return None if len(shape) <= MAX_DIMS else f"{len(shape)} dims after collapsing (max {MAX_DIMS})"

    @staticmethod
    def layout(ins, outs):
        out = outs[0].shape
        return merge_dims(out, broadcast_strides(ins[0].shape, out), broadcast_strides(ins[1].shape, out))

    def record(self):
        shape, (sa, sb) = self.layout(self.ins, self.outs)
        pad = MAX_DIMS - len(shape)
        y = self.outputs[0]
        push = pack(y.size, shape + [1] * pad, sa + [0] * pad, sb + [0] * pad)
        return [self.dispatch("binary", self.inputs, [y], push, y.size, spec=(BINARY[self.node.op], len(shape)))]


@VulkanBackend.op("BatchNormalization")
class BatchNormVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.attrs.get("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
            return "training mode"
        if any(i is None or i.value is None for i in ins[1:5]):
            return "BatchNormalization parameters computed from data"
        if len(ins[0].shape) < 2:
            return "BatchNormalization of rank < 2"
        return check_float(node, ins, outs, backend, inputs={0})

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        scale, bias, mean, var = (np.asarray(i.value, np.float32) for i in ins[1:5])
        factor = (scale / np.sqrt(var + np.float32(node.attrs.get("epsilon", 1e-5)))).astype(np.float32)
        self.factor = backend.upload_once(factor)
        self.shift = backend.upload_once((bias - mean * factor).astype(np.float32))

    def record(self):
        x, y = self.inputs[0], self.outputs[0]
        inner = int(np.prod(x.shape[2:]))
        return [self.dispatch("channel_affine", [x, self.factor, self.shift], [y],
                              pack(y.size, x.shape[1], inner), y.size)]
