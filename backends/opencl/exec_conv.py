"""Conv and ConvTranspose: 1x1 stride-1 convolutions run as a packed GEMM, depthwise ones on
their own kernel, everything else (groups, dilation, strides, asymmetric pads) on the direct
kernel; weights are packed once per weight array, bias and activation fused in the epilogue.
1-D convolutions run as 2-D ones of height 1."""
import numpy as np

from engine.ops.nn import conv_geometry

from . import OpenCLBackend
from .base import ROWS, CLExecutor, box_local, float32_only, fused_activation, i32

TM = 8  # output channels per work-item: the block size of the packed weights (conv.cl, gemm.cl)


def pack_blocks(w, groups):
    """(M, C/groups, KH, KW) -> [groups * MB][KH][KW][C/groups][TM], each group's M/groups
    output channels zero-padded to MB blocks of TM."""
    m, cg, kh, kw = w.shape
    mg = m // groups
    mb = -(-mg // TM)
    wp = np.zeros((groups, mb * TM, cg, kh, kw), np.float32)
    wp[:, :mg] = w.reshape(groups, mg, cg, kh, kw)
    return wp.reshape(groups * mb, TM, cg, kh, kw).transpose(0, 3, 4, 2, 1)


def pack_bias(b, m, groups):
    mg = m // groups
    mb = -(-mg // TM)
    bp = np.zeros((groups, mb * TM), np.float32)
    if b is not None:
        bp[:, :mg] = np.asarray(b, np.float32).reshape(groups, mg)
    return bp


def _as_2d(shape):
    """N, C, L -> N, C, 1, L."""
    return tuple(shape) if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def conv_supports(node, ins, outs):
    if len(ins[0].shape) not in (3, 4):
        return f"rank {len(ins[0].shape)} convolution (opencl runs 1-D and 2-D)"
    if ins[1].value is None or (len(ins) > 2 and ins[2] is not None and ins[2].value is None):
        return "weights computed at run time"
    if len(ins) > 3 or node.attrs.get("residual"):
        return "fused residual input"
    if fused_activation(node) is None:
        return f"unknown fused activation {node.attrs.get('activation')!r}"
    return float32_only(ins, outs)


class _ConvBase(CLExecutor):
    pixels_per_item = 1  # of the direct kernel

    def _bind_direct(self, x, y):
        (n, c, h, w), (_, m, oh, ow) = _as_2d(x.shape), _as_2d(y.shape)
        g, mb = self.groups, self.blocks
        self.k.set_args(x.buf, x.off, self.w.buf, self.b.buf, y.buf, y.off,
                        i32(c // g), i32(h), i32(w), i32(m // g), i32(mb), i32(g), i32(n * g * mb),
                        i32(oh), i32(ow), *[i32(v) for v in self.geometry], *fused_activation(self.node))
        self.launch_2d(self.k, -(-oh * ow // self.pixels_per_item), n * g * mb, ROWS)


@OpenCLBackend.op("Conv")
class ConvCL(_ConvBase):
    pixels_per_item = 2  # conv2d computes two adjacent pixels

    @classmethod
    def supports(cls, backend, node, ins, outs):
        return conv_supports(node, ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        w = ins[1].value
        m, cin = w.shape[0], ins[0].shape[1]
        self.groups = g = node.attrs.get("group", 1)
        strides, dil, pads = conv_geometry(node, ins[0].shape, w.shape[2:])
        if len(strides) == 1:
            strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        kh, kw = _as_2d(w.shape)[2:]
        self.geometry = (kh, kw, strides[0], strides[1], pads[0], pads[1], dil[0], dil[1])
        bias = ins[2].value if len(ins) > 2 and ins[2] is not None else None
        self.kind = "direct"
        if g == cin and g > 1 and w.shape[1] == 1:
            self.kind = "depthwise"
            self.w = backend.constant(node, "w", w, lambda a: a.astype(np.float32))
            self.b = backend.constant(node, "b", bias, lambda a: a) if bias is not None \
                else backend.upload(np.zeros(m, np.float32))
            self.k = self.kernel("conv_dw.cl", "conv_dw", f"-D KH={kh} -D KW={kw}")
            return
        self.w = backend.constant(node, "w", w, lambda a: pack_blocks(a.reshape(m, -1, kh, kw), g))
        self.b = backend.constant(node, "b", bias, lambda a: pack_bias(a, m, g)) if bias is not None \
            else backend.upload(pack_bias(None, m, g))
        self.blocks = -(-(m // g) // TM)
        if g == 1 and (kh, kw) == (1, 1) and strides == [1, 1] and not any(pads):
            self.kind = "gemm"
            self.k = self.kernel("gemm.cl", "gemm_packed")
        else:
            self.k = self.kernel("conv.cl", "conv2d")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        if y.size:
            {"direct": self._bind_direct, "depthwise": self._bind_depthwise, "gemm": self._bind_gemm}[self.kind](x, y)

    def _bind_depthwise(self, x, y):
        (n, c, h, w), (_, m, oh, ow) = _as_2d(x.shape), _as_2d(y.shape)
        self.k.set_args(x.buf, x.off, self.w.buf, self.b.buf, y.buf, y.off, i32(c), i32(m // c),
                        i32(h), i32(w), i32(oh), i32(ow), *[i32(v) for v in self.geometry[2:]],
                        *fused_activation(self.node))
        blocks = -(-ow // 8)  # conv_dw computes 8 adjacent outputs of a row
        self.launch(self.k, (blocks, oh, n * m), box_local(blocks, ROWS))

    def _bind_gemm(self, x, y):
        (n, c, h, w), m = _as_2d(x.shape), y.shape[1]
        hw = h * w
        self.k.set_args(x.buf, x.off, i32(c * hw), i32(hw), i32(1), self.w.buf, self.b.buf,
                        y.buf, y.off, i32(m * hw), i32(hw), i32(1),
                        i32(m), i32(hw), i32(c), i32(self.blocks), *fused_activation(self.node))
        self.launch(self.k, (-(-hw // 2), self.blocks, n), (ROWS, 1, 1))


def transpose_geometry(node, in_sp, ksz, strides, dil, out):
    """Begin crop of the full transposed-convolution output, per the ONNX spec."""
    nd = len(ksz)
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        outpad = list(node.attrs.get("output_padding", [0] * nd))
        total = [s * (i - 1) + op + (k - 1) * d + 1 - o
                 for i, k, s, d, op, o in zip(in_sp, ksz, strides, dil, outpad, out)]
        return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return list(node.attrs.get("pads", [0] * (2 * nd)))[:nd]


@OpenCLBackend.op("ConvTranspose")
class ConvTransposeCL(_ConvBase):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return conv_supports(node, ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        w = ins[1].value
        nd = w.ndim - 2
        strides = list(node.attrs.get("strides", [1] * nd))
        dil = list(node.attrs.get("dilations", [1] * nd))
        begin = transpose_geometry(node, ins[0].shape[2:], w.shape[2:], strides, dil, outs[0].shape[2:])
        if nd == 1:
            strides, dil, begin = [1] + strides, [1] + dil, [0] + begin
        self.groups = g = node.attrs.get("group", 1)
        c, mg = w.shape[0], w.shape[1]
        kh, kw = _as_2d(w.shape)[2:]
        self.geometry = (kh, kw, strides[0], strides[1], begin[0], begin[1], dil[0], dil[1])
        self.w = backend.constant(node, "w", w, lambda a: pack_blocks(
            a.reshape(g, c // g, mg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(g * mg, c // g, kh, kw), g))
        bias = ins[2].value if len(ins) > 2 and ins[2] is not None else None
        self.b = backend.constant(node, "b", bias, lambda a: pack_bias(a, g * mg, g)) if bias is not None \
            else backend.upload(pack_bias(None, g * mg, g))
        self.blocks = -(-mg // TM)
        self.k = self.kernel("conv.cl", "deconv2d")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        if outputs[0].size:
            self._bind_direct(inputs[0], outputs[0])
