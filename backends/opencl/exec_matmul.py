"""MatMul (batched, broadcast, optional fused bias and activation) and Gemm.

A constant 2-D right operand is packed once and the product runs on the packed GEMM kernel
(the rows of A, all batches together, stream through it); otherwise the general strided kernel
handles transposes, broadcast batch dims (up to two after merging) and Gemm's alpha/beta/C.
"""
import numpy as np

from . import OpenCLBackend
from .base import ROWS, CLExecutor, f32, float32_only, fused_activation, i32
from engine.geometry import broadcast_strides, merge_dims

from .shapes import pad_left
from .exec_conv import TM, pack_bias, pack_blocks


def _operands(a_shape, b_shape):
    """(M, K, N, batch sizes, A batch strides, B batch strides) after merging batch dims."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    sa = broadcast_strides(a2[:-2], batch) if batch else []
    sb = broadcast_strides(b2[:-2], batch) if batch else []
    # broadcast_strides counts in batch elements; a batch element is a whole matrix
    sa, sb = [s * a2[-2] * a2[-1] for s in sa], [s * b2[-2] * b2[-1] for s in sb]
    sizes, (sa, sb) = merge_dims(batch or (1,), sa or [0], sb or [0])
    return a2[-2], a2[-1], b2[-1], sizes, sa, sb


def _bias_ok(node, ins, n):
    if len(ins) < 3 or ins[2] is None:
        return True
    return len(ins[2].shape) <= 1 and int(np.prod(ins[2].shape)) in (1, n)


@OpenCLBackend.op("MatMul")
class MatMulCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = float32_only(ins, outs)
        if why:
            return why
        if fused_activation(node) is None:
            return f"unknown fused activation {node.attrs.get('activation')!r}"
        m, k, n, sizes, _, _ = _operands(ins[0].shape, ins[1].shape)
        if k == 0:
            return "empty inner dimension"
        if len(sizes) > 2:
            return "more than two broadcast batch dims"
        if not _bias_ok(node, ins, n):
            return "bias that is not a vector over the last dim"
        return None

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        a, b = ins[0], ins[1]
        self.m, self.kk, self.n, self.bsizes, self.sa, self.sb = _operands(a.shape, b.shape)
        bias = ins[2] if len(ins) > 2 else None
        self.packed = b.value is not None and len(b.shape) == 2 and (bias is None or bias.value is not None)
        if self.packed:
            n, k = self.n, self.kk
            self.w = backend.constant(node, "w", b.value, lambda v: pack_blocks(v.T.reshape(n, k, 1, 1), 1))
            bv = None if bias is None else np.broadcast_to(np.asarray(bias.value, np.float32).reshape(-1), (n,))
            self.b = backend.upload(pack_bias(bv, n, 1))
            self.k = self.kernel("gemm.cl", "gemm_packed")
        else:
            self.k = self.kernel("gemm.cl", "matmul")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y, act = inputs[0], outputs[0], fused_activation(self.node)
        if not y.size:
            return
        k, n = self.kk, self.n
        if self.packed:
            rows, blocks = x.size // k, -(-n // TM)
            self.k.set_args(x.buf, x.off, i32(0), i32(1), i32(k), self.w.buf, self.b.buf,
                            y.buf, y.off, i32(0), i32(1), i32(n), i32(n), i32(rows), i32(k),
                            i32(blocks), *act)
            self.launch(self.k, (-(-rows // 2), blocks, 1), (ROWS, 1, 1))
            return
        bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        c, scn, beta = (bias, int(bias.size > 1), 1.0) if bias is not None else (self.backend.dummy, 0, 0.0)
        self._bind_general(inputs[1], (n, 1), c, (0, scn), 1.0, beta, act)

    def _bind_general(self, b, b_strides, c, c_strides, alpha, beta, act, a_strides=None):
        x, y = self.inputs[0], self.outputs[0]
        m, k, n = self.m, self.kk, self.n
        sam, sak = a_strides or (k, 1)
        sbk, sbn = b_strides
        (b0, b1), sa, sb = pad_left(self.bsizes, 2, 1), pad_left(self.sa, 2, 0), pad_left(self.sb, 2, 0)
        self.k.set_args(x.buf, x.off, i32(sa[0]), i32(sa[1]), i32(sam), i32(sak),
                        b.buf, b.off, i32(sb[0]), i32(sb[1]), i32(sbk), i32(sbn),
                        y.buf, y.off, i32(m), i32(n), i32(k), i32(b1), i32(b0 * b1),
                        c.buf, c.off, i32(c_strides[0]), i32(c_strides[1]), f32(alpha), f32(beta), *act)
        self.launch(self.k, (n, -(-m // TM), b0 * b1), (ROWS, 1, 1))


@OpenCLBackend.op("Gemm")
class GemmCL(MatMulCL):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = float32_only(ins, outs)
        if why:
            return why
        if len(ins) > 2 and ins[2] is not None and len(ins[2].shape) > 2:
            return "C of rank above 2"
        return None if fused_activation(node) is not None else "unknown fused activation"

    def __init__(self, backend, node, ins, outs):
        CLExecutor.__init__(self, backend, node, ins, outs)
        a, b = ins[0].shape, ins[1].shape
        ta, tb = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
        self.m, self.kk = (a[1], a[0]) if ta else a
        self.n = b[0] if tb else b[1]
        self.a_strides = (1, a[1]) if ta else (a[1], 1)
        self.b_strides = (1, b[1]) if tb else (b[1], 1)
        self.bsizes, self.sa, self.sb = [1], [0], [0]
        self.k = self.kernel("gemm.cl", "matmul")

    def bind(self, inputs, outputs, scratch=None):
        CLExecutor.bind(self, inputs, outputs, scratch)
        if not outputs[0].size:
            return
        a = self.node.attrs
        c = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        beta = a.get("beta", 1.0) if c is not None else 0.0
        if c is None:
            c, cs = self.backend.dummy, (0, 0)
        else:
            cs = broadcast_strides(c.shape, (self.m, self.n))
        self._bind_general(inputs[1], self.b_strides, c, cs, a.get("alpha", 1.0), beta,
                           fused_activation(self.node), self.a_strides)
