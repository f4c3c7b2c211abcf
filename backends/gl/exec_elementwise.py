"""Elementwise executors: unary math/activations, broadcasting binary ops, inference BatchNorm."""
import numpy as np

from engine.geometry import simplify, strides_of

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, grid, unsupported_dtype
from .programs import variants_used

FLT_MAX = float(np.finfo(np.float32).max)

# Op parameters as (u_a, u_b) from attributes, with the ONNX defaults.
_PARAMS = {
    "HardSigmoid": lambda a: (a.get("alpha", 0.2), a.get("beta", 0.5)),
    "LeakyRelu": lambda a: (a.get("alpha", 0.01), 0.0),
    "Elu": lambda a: (a.get("alpha", 1.0), 0.0),
    "Selu": lambda a: (a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)),
    "Celu": lambda a: (a.get("alpha", 1.0), 0.0),
    "ThresholdedRelu": lambda a: (a.get("alpha", 1.0), 0.0),
    "Shrink": lambda a: (a.get("bias", 0.0), a.get("lambd", 0.5)),
}
UNARY_OPS = [op for op in variants_used("unary", "OP_") if op != "GeluTanh"]  # Gelu picks it
BINARY_OPS = variants_used("binary", "OP_")
# One merged dim: the index patterns binary.comp has without per-element index arithmetic.
LAYOUTS = {((1,), (1,)): "SAME_LAYOUT", ((0,), (1,)): "A_SCALAR", ((1,), (0,)): "B_SCALAR"}


def _bound(info, default):
    return default if info is None else float(np.asarray(info.value, dtype=np.float32).reshape(-1)[0])


@GLBackend.op(*UNARY_OPS)
class UnaryGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.op == "Clip" and any(i is not None and i.value is None for i in ins[1:]):
            return "Clip bounds computed at run time"
        if node.op == "Clip" and any(i is not None and i.value.size != 1 for i in ins[1:]):
            return "Clip bounds are not scalars"
        return unsupported_dtype(ins, outs, [0])

    def stages(self):
        op, attrs = self.node.op, self.node.attrs
        if op == "Gelu" and attrs.get("approximate", "none") == "tanh":
            op = "GeluTanh"
        if op == "Clip":
            bounds = list(self.ins[1:]) + [None, None]
            a, b = _bound(bounds[0], -FLT_MAX), _bound(bounds[1], FLT_MAX)
        else:
            a, b = _PARAMS.get(op, lambda _: (0.0, 0.0))(attrs)
        n = int(np.prod(self.outs[0].shape))
        prog = self.program("unary", {f"OP_{op}": 1})
        return [[Dispatch(prog, grid(n), [self.inputs[0], self.outputs[0]],
                          {"u_n": n, "u_a": a, "u_b": b})]]


def broadcast_layout(out_shape, a_shape, b_shape):
    """(dims, a strides, b strides) with numpy broadcasting, unit dims dropped and contiguous
    dims merged; strides are 0 along broadcast dims."""
    rank = len(out_shape)
    strides = []
    for s in (a_shape, b_shape):
        s = (1,) * (rank - len(s)) + tuple(s)
        strides.append([0 if d == 1 and o != 1 else x for d, o, x in zip(s, out_shape, strides_of(s))])
    return simplify(out_shape, strides[0], strides[1])


@GLBackend.op(*BINARY_OPS)
class BinaryGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins) != 2:
            return f"{len(ins)} inputs"
        if len(outs[0].shape) > 6:
            return f"rank {len(outs[0].shape)} > 6"
        return unsupported_dtype(ins, outs)

    def stages(self):
        out = self.outs[0].shape
        dims, sa, sb = broadcast_layout(out, self.ins[0].shape, self.ins[1].shape)
        n = int(np.prod(out))
        defines = {f"OP_{self.node.op}": 1}
        if len(dims) == 1 and (sa, sb) in LAYOUTS:
            defines[LAYOUTS[sa, sb]] = 1
        pad = 6 - len(dims)
        prog = self.program("binary", defines)
        uniforms = {"u_n": n, "u_rank": len(dims), "u_shape": (1,) * pad + tuple(dims),
                    "u_sa": (0,) * pad + tuple(sa), "u_sb": (0,) * pad + tuple(sb)}
        return [[Dispatch(prog, grid(n), [self.inputs[0], self.inputs[1], self.outputs[0]], uniforms)]]


@GLBackend.op("BatchNormalization")
class BatchNormGL(GLExecutor):
    """Inference BatchNorm with constant statistics (when the frontend did not fold it)."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.attrs.get("training_mode", 0) or len([o for o in outs if o is not None]) > 1:
            return "training mode"
        if len(ins) != 5 or any(i is None or i.value is None for i in ins[1:]):
            return "statistics computed at run time"
        if len(ins[0].shape) < 2:
            return "rank < 2"
        return unsupported_dtype(ins, outs, [0])

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        scale, bias, mean, var = (np.asarray(i.value, dtype=np.float32) for i in ins[1:])
        factor = scale / np.sqrt(var + np.float32(node.attrs.get("epsilon", 1e-5)))
        sources = [i.value for i in ins[1:]]
        self.factor = backend.upload_derived(("bn factor", node.name), sources, lambda: factor)
        self.shift = backend.upload_derived(("bn shift", node.name), sources, lambda: bias - mean * factor)

    def stages(self):
        shape = self.outs[0].shape
        n = int(np.prod(shape))
        prog = self.program("affine")
        uniforms = {"u_n": n, "u_c": shape[1], "u_inner": int(np.prod(shape[2:]))}
        return [[Dispatch(prog, grid(n), [self.inputs[0], self.factor, self.shift, self.outputs[0]], uniforms)]]
