"""MatMul: batched, with numpy batch broadcasting, 1-D operands, and the optimizer's fused bias
(a third input broadcast over the last dim) and activation."""
import numpy as np

from engine.geometry import simplify, strides_of

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, unsupported_dtype
from .exec_conv import activation, check_activation

MAX_BATCH_DIMS = 4


def _operands(node, ins):
    a, b = tuple(ins[0].shape), tuple(ins[1].shape)
    a = (1,) + a if len(a) == 1 else a
    b = b + (1,) if len(b) == 1 else b
    return a, b


def _batch_layout(a, b):
    """Output batch dims and A's/B's element strides along them (0 where broadcast), merged."""
    batch = tuple(int(d) for d in np.broadcast_shapes(a[:-2], b[:-2]))
    strides = []
    for shape in (a, b):
        own = (1,) * (len(batch) - len(shape[:-2])) + shape[:-2]
        mat = shape[-2] * shape[-1]
        strides.append([0 if d == 1 and o != 1 else s * mat for d, o, s in zip(own, batch, strides_of(own))])
    return simplify(batch, strides[0], strides[1])


@GLBackend.op("MatMul")
class MatMulGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = unsupported_dtype(ins, outs) or check_activation(node)
        if why:
            return why
        a, b = _operands(node, ins)
        if len(_batch_layout(a, b)[0]) > MAX_BATCH_DIMS:
            return f"more than {MAX_BATCH_DIMS} batch dims"
        if len(ins) > 2 and ins[2] is not None:
            bias = ins[2].shape
            if int(np.prod(bias)) != b[-1] or (bias and bias[-1] != b[-1]):
                return f"bias of shape {bias} is not broadcast over the last dim"
        return None

    def stages(self):
        a, b = _operands(self.node, self.ins)
        dims, sa, sb = _batch_layout(a, b)
        m, k, n = a[-2], a[-1], b[-1]
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        defines, uniforms = activation(self.node)
        if bias is not None:
            defines["BIAS"] = 1
        pad = MAX_BATCH_DIMS - len(dims)
        uniforms.update({"u_mkn": (m, k, n), "u_batch": (1,) * pad + tuple(dims),
                         "u_sa": (0,) * pad + tuple(sa), "u_sb": (0,) * pad + tuple(sb)})
        groups = (-(-n // 64), -(-m // 16), int(np.prod(dims)))
        prog = self.program("matmul", defines)
        return [[Dispatch(prog, groups, [self.inputs[0], self.inputs[1], bias, self.outputs[0]], uniforms)]]
