"""MatMul and Gemm: batched, with numpy batch broadcasting, 1-D operands, Gemm's transposes,
alpha/beta and C, and the optimizer's fused bias (broadcast over the last dim) and activation."""
import numpy as np

from engine.geometry import simplify, strides_of

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, unsupported_dtype
from .exec_conv import activation, check_activation

MAX_BATCH_DIMS = 4


def _operands(node, ins):
    """A and B as stored, seen as (..., M, K) and (..., K, N) matrices (1-D ones widened)."""
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


def _bias_strides(shape, m, n):
    """Row and column strides of C broadcast to (M, N); None if it does not broadcast."""
    shape = (1, 1) + tuple(shape)
    if int(np.prod(shape[:-2])) != 1 or shape[-2] not in (1, m) or shape[-1] not in (1, n):
        return None
    return (shape[-1] if shape[-2] == m and m > 1 else 0, 1 if shape[-1] == n and n > 1 else 0)


@GLBackend.op("MatMul", "Gemm")
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
            m, n = cls.dims(node, ins)[:2]
            over_last_dim = int(np.prod(ins[2].shape)) == n and ins[2].shape[-1:] == (n,)
            if _bias_strides(ins[2].shape, m, n) is None or (node.op == "MatMul" and not over_last_dim):
                return f"bias of shape {ins[2].shape} for a {m}x{n} product"
        return None

    @staticmethod
    def dims(node, ins):
        """(M, N, K, A strides (row, k), B strides (k, column)) of the 2-D product."""
        a, b = _operands(node, ins)
        ta, tb = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
        m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
        n = b[-2] if tb else b[-1]
        astr = (1, a[-1]) if ta else (a[-1], 1)
        bstr = (1, b[-1]) if tb else (b[-1], 1)
        return m, n, k, astr, bstr

    def stages(self):
        a, b = _operands(self.node, self.ins)
        dims, sa, sb = _batch_layout(a, b)
        m, n, k, astr, bstr = self.dims(self.node, self.ins)
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        defines, uniforms = activation(self.node)
        alpha, beta = self.node.attrs.get("alpha", 1.0), self.node.attrs.get("beta", 1.0)
        if bias is not None and (self.node.op == "MatMul" or beta != 0.0):
            defines["BIAS"] = 1
            uniforms["u_cstr"] = _bias_strides(self.ins[2].shape, m, n)
        else:
            bias = None
        pad = MAX_BATCH_DIMS - len(dims)
        uniforms.update({"u_mkn": (m, k, n), "u_astr": astr + bstr, "u_scale": (alpha, beta),
                         "u_batch": (1,) * pad + tuple(dims), "u_sa": (0,) * pad + tuple(sa),
                         "u_sb": (0,) * pad + tuple(sb)})
        groups = (-(-n // 64), -(-m // 16), int(np.prod(dims)))
        prog = self.program("matmul", defines)
        return [[Dispatch(prog, groups, [self.inputs[0], self.inputs[1], bias, self.outputs[0]], uniforms)]]
