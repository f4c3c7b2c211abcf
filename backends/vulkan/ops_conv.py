"""Convolutions and matrix products, with the optimizer's fused bias + activation epilogue.

Conv picks one of three kernels at resize: depthwise (conv_dw.comp) when every channel is its
own group, a pointwise 1x1 as a GEMM of the weights (C_out x C_in) by each image (C_in x HW),
and direct convolution (conv2d.comp) for the rest. 1-d convolutions run as
2-d with H = 1. ConvTranspose gathers (conv_transpose.comp); MatMul is tiled (matmul.comp), or
register-blocked without shared memory for thin shapes (matmul_small.comp).
"""
import numpy as np

from engine.ops.nn import conv_geometry

from . import VulkanBackend
from .kernel import LOCAL, VkExecutor, attr, cdiv, check_float, fused, fused_reason, grid, pack
from engine.geometry import broadcast_strides, merge_dims

BATCH_DIMS = 4
# matmul.comp's tile: thinner products run in matmul_small.comp, and so does everything on a
# CPU device (lavapipe), where shared memory and barriers cost more than they save (measured:
# 1.0 vs 0.33 GFLOP/s at 512x512x196).
TILE = 64
TILED_ON_SOFTWARE = False  # tests set it to run matmul.comp on lavapipe too


def as_2d(shape):
    """NCW -> NC1W; NCHW unchanged."""
    return tuple(shape[:2]) + (1,) + tuple(shape[2:]) if len(shape) == 3 else tuple(shape)


def conv_check(backend, node, ins, outs):
    if len(ins) > 3 or node.attrs.get("residual"):
        return "fused residual input"
    if len(ins[0].shape) not in (3, 4):
        return f"{len(ins[0].shape) - 2}-d convolution (1-d and 2-d only)"
    return fused_reason(node) or check_float(node, ins, outs, backend)


def matmul_dispatches(exe, a, b, bias, c, m, n, k, batch, sa, sb, bias_mode):
    """C[z] = A[z] @ B[z] over the collapsed batch dims `batch` with element strides sa, sb."""
    pad = BATCH_DIMS - len(batch)
    act, alpha, beta = fused(exe.node)
    nbatch = int(np.prod(batch))
    push = pack(m, n, k, nbatch, [1] * pad + list(batch), [0] * pad + list(sa), [0] * pad + list(sb),
                alpha, beta)
    ops = [a, b, bias if bias is not None else exe.backend.dummy]
    spec = (act, bias_mode)
    if min(m, n) < TILE or (exe.backend.dev.software and not TILED_ON_SOFTWARE):
        gx, gy, _ = grid(cdiv(cdiv(m, 4) * cdiv(n, 4), LOCAL), exe.backend.dev.max_groups)  # 4x4 blocks
        return [exe.dispatch("matmul_small", ops, [c], push, groups=(gx, gy, nbatch), spec=spec)]
    return [exe.dispatch("matmul", ops, [c], push, groups=(cdiv(n, TILE), cdiv(m, TILE), nbatch), spec=spec)]


@VulkanBackend.op("Conv")
class ConvVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return conv_check(backend, node, ins, outs)

    def geometry(self):
        x, w = self.ins[0].shape, self.ins[1].shape
        strides, dil, pads = conv_geometry(self.node, x, w[2:])
        if len(x) == 3:
            strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        return strides, dil, pads

    def record(self):
        x, w, y = self.inputs[0], self.inputs[1], self.outputs[0]
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        group = self.node.attrs.get("group", 1)
        n, cin, h, wd = as_2d(x.shape)
        _, cout, oh, ow = as_2d(y.shape)
        kh, kw = as_2d(w.shape)[2:]
        strides, dil, pads = self.geometry()
        act, alpha, beta = fused(self.node)
        ops, spec = [x, w, bias if bias is not None else self.backend.dummy], (act, int(bias is not None))
        if group == 1 and (kh, kw) == (1, 1) and strides == [1, 1] and not any(pads):
            return matmul_dispatches(self, w, x, bias, y, cout, h * wd, cin, (n,), (0,), (cin * h * wd,),
                                     2 if bias is not None else 0)
        if group == cin == cout and w.shape[1] == 1:
            push = pack(cin, h, wd, oh, ow, kh, kw, *strides, *dil, pads[0], pads[1], y.size, alpha, beta)
            return [self.dispatch("conv_dw", ops, [y], push, y.size, spec=spec)]
        cout_g = cout // group
        ocb = cdiv(cout_g, 4)
        npix = n * oh * cdiv(ow, 4)
        push = pack(cin, h, wd, cout, oh, ow, kh, kw, *strides, *dil, pads[0], pads[1], cin // group, cout_g,
                    npix, ocb, alpha, beta)
        return [self.dispatch("conv2d", ops, [y], push, npix * group * ocb, spec=spec)]


@VulkanBackend.op("ConvTranspose")
class ConvTransposeVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return conv_check(backend, node, ins, outs)

    def begin_pads(self, in_sp, ksz, strides, dil, out_sp):
        """Where the output window starts inside the full transposed output, per axis (ONNX)."""
        node, nd = self.node, len(ksz)
        auto = attr(node, "auto_pad", "NOTSET")
        if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
            outpad = list(node.attrs.get("output_padding", [0] * nd))
            full = [s * (i - 1) + op + (k - 1) * d + 1 for i, k, s, d, op in zip(in_sp, ksz, strides, dil, outpad)]
            total = [f - o for f, o in zip(full, out_sp)]
            return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return list(node.attrs.get("pads", [0] * (2 * nd)))[:nd]

    def record(self):
        x, w, y = self.inputs[0], self.inputs[1], self.outputs[0]
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        nd = len(x.shape) - 2
        strides = list(self.node.attrs.get("strides", [1] * nd))
        dil = list(self.node.attrs.get("dilations", [1] * nd))
        begin = self.begin_pads(x.shape[2:], w.shape[2:], strides, dil, y.shape[2:])
        if nd == 1:
            strides, dil, begin = [1] + strides, [1] + dil, [0] + begin
        group = self.node.attrs.get("group", 1)
        n, cin, h, wd = as_2d(x.shape)
        _, cout, oh, ow = as_2d(y.shape)
        kh, kw = as_2d(w.shape)[2:]
        act, alpha, beta = fused(self.node)
        push = pack(cin, h, wd, cout, oh, ow, kh, kw, *strides, *dil, *begin, cin // group, cout // group,
                    y.size, alpha, beta)
        ops = [x, w, bias if bias is not None else self.backend.dummy]
        return [self.dispatch("conv_transpose", ops, [y], push, y.size, spec=(act, int(bias is not None)))]


@VulkanBackend.op("MatMul")
class MatMulVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = fused_reason(node) or check_float(node, ins, outs, backend)
        if why:
            return why
        if len(ins) > 2 and ins[2] is not None:
            n = outs[0].shape[-1] if len(outs[0].shape) else 1
            if any(d != 1 for d in ins[2].shape[:-1]) or tuple(ins[2].shape[-1:]) != (n,):
                return f"MatMul bias of shape {ins[2].shape} (one value per column only)"
        batch, _, _, _, _, _ = cls.layout(ins)
        if len(batch) > BATCH_DIMS or int(np.prod(batch)) > 65535:
            return f"batch dims {batch} do not collapse to {BATCH_DIMS}"
        return None

    @staticmethod
    def layout(ins):
        a, b = ins[0].shape, ins[1].shape
        a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
        b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
        m, k, n = a2[-2], a2[-1], b2[-1]
        out = tuple(int(d) for d in np.broadcast_shapes(a2[:-2], b2[:-2]))
        sa = [s * m * k for s in broadcast_strides(a2[:-2], out)]
        sb = [s * k * n for s in broadcast_strides(b2[:-2], out)]
        batch, (sa, sb) = merge_dims(out, sa, sb)
        return batch, sa, sb, m, n, k

    def record(self):
        a, b, c = self.inputs[0], self.inputs[1], self.outputs[0]
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        batch, sa, sb, m, n, k = self.layout(self.ins)
        return matmul_dispatches(self, a, b, bias, c, m, n, k, batch, sa, sb, 0 if bias is None else 1)
