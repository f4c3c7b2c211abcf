"""Convolution executors: Conv (direct, depthwise, pointwise) and ConvTranspose, 1-D and 2-D,
with the bias and the activation the optimizer fuses into them."""
import numpy as np

from engine.ops.nn import conv_geometry

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, grid, unsupported_dtype
from .programs import shader_text

FLT_MAX = float(np.finfo(np.float32).max)


def activation(node):
    """(defines, uniforms) selecting the node's fused activation in act.glsl, and its parameters."""
    act = node.attrs.get("activation", "") or ""
    a = node.attrs
    params = {"Clip": (a.get("act_min", -FLT_MAX), a.get("act_max", FLT_MAX)),
              "LeakyRelu": (a.get("act_alpha", 0.01), 0.0),
              "HardSigmoid": (a.get("act_alpha", 0.2), a.get("act_beta", 0.5))}
    lo, hi = params.get(act, (0.0, 0.0))
    return ({f"ACT_{act}": 1} if act else {}), {"u_act_a": max(lo, -FLT_MAX), "u_act_b": min(hi, FLT_MAX)}


def check_activation(node):
    """A reason to decline a fused epilogue act.glsl does not have; None otherwise."""
    act = node.attrs.get("activation", "") or ""
    if act and f"defined(ACT_{act})" not in shader_text("act.glsl"):
        return f"fused activation {act}"
    if node.attrs.get("residual"):
        return "fused residual"
    return None


def _as_2d(shape):
    """(N, C, H, W) of an NCW or NCHW shape."""
    return tuple(shape) if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def _geometry_2d(strides, dil, pads, nd):
    if nd == 1:
        return (1, strides[0], 1, dil[0]), (0, pads[0])
    return (strides[0], strides[1], dil[0], dil[1]), (pads[0], pads[1])


def _conv_supports(node, ins, outs):
    if len(ins[0].shape) not in (3, 4):
        return f"rank {len(ins[0].shape)} (gl convolutions are 1-D or 2-D)"
    if ins[1].value is None or (len(ins) > 2 and ins[2] is not None and ins[2].value is None):
        return "weights computed at run time"
    return check_activation(node) or unsupported_dtype(ins, outs)


def _depthwise(x_shape, w_shape, group):
    return group == x_shape[1] and w_shape[1] == 1 and group > 1


def _pack(w, group):
    """Weights as vec4s of 4 output channels: [group][channel block][C/group * KH * KW][4]; the
    last block of a group is padded with copies of its last channel."""
    w = np.asarray(w, np.float32)
    mg = w.shape[0] // group
    blocks = -(-mg // 4)
    w = np.pad(w.reshape(group, mg, -1), [(0, 0), (0, blocks * 4 - mg), (0, 0)], mode="edge")
    return w.reshape(group, blocks, 4, -1).transpose(0, 1, 3, 2)


@GLBackend.op("Conv")
class ConvGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return _conv_supports(node, ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        group = node.attrs.get("group", 1)
        self.packed = None
        if not _depthwise(ins[0].shape, ins[1].shape, group):
            self.packed = backend.upload_derived("conv2d", [ins[1].value], lambda: _pack(ins[1].value, group))

    def stages(self):
        x, wt, y = self.ins[0].shape, self.ins[1].shape, self.outs[0].shape
        nd = len(x) - 2
        strides, dil, pads = conv_geometry(self.node, x, wt[2:])
        step, pad = _geometry_2d(strides, dil, pads, nd)
        n, c, h, w = _as_2d(x)
        _, m, oh, ow = _as_2d(y)
        kh, kw = _as_2d(wt)[2:]
        group = self.node.attrs.get("group", 1)
        cg, mg = c // group, m // group
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        defines, uniforms = activation(self.node)
        if bias is not None:
            defines["BIAS"] = 1
        uniforms.update({"u_in": (c, h, w), "u_kernel": (kh, kw, cg, mg), "u_step": step, "u_pad": pad})
        if self.packed is None:
            if (kh, kw) == (3, 3) and step[2:] == (1, 1) and step[1] in (1, 2):
                defines["K3_STRIDE"] = step[1]
            blocks = oh * -(-ow // 4)
            uniforms["u_out"] = (m, oh, ow, blocks)
            prog = self.program("conv_dw", defines)
            tensors = [self.inputs[0], self.inputs[1], bias, self.outputs[0]]
            return [[Dispatch(prog, (-(-blocks // 64), m, n), tensors, uniforms)]]
        pointwise = kh == kw == 1 and step[:2] == (1, 1) and not any(pads)
        blocks = -(-(oh * ow) // 4) if pointwise else oh * -(-ow // 4)
        if pointwise:
            defines["POINTWISE_VEC4" if (h * w) % 4 == 0 else "POINTWISE"] = 1
        elif (kh, kw) == (3, 3) and step == (1, 1, 1, 1):
            defines["K3S1"] = 1
        mblocks = -(-mg // 4)
        uniforms.update({"u_out": (m, oh, ow, blocks), "u_mblocks": mblocks})
        prog = self.program("conv2d", defines)
        tensors = [self.inputs[0], self.packed, bias, self.outputs[0]]
        return [[Dispatch(prog, (-(-blocks // 64), group * mblocks, n), tensors, uniforms)]]


@GLBackend.op("ConvTranspose")
class ConvTransposeGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return _conv_supports(node, ins, outs)

    def stages(self):
        from backends.cpu.kernels_conv import _transpose_geometry
        x, wt, y = self.ins[0].shape, self.ins[1].shape, self.outs[0].shape
        nd = len(x) - 2
        attrs = self.node.attrs
        strides = list(attrs.get("strides", [1] * nd))
        dil = list(attrs.get("dilations", [1] * nd))
        _, begin = _transpose_geometry(self.node, x[2:], wt[2:], strides, dil)
        step, pad = _geometry_2d(strides, dil, list(begin) * 2, nd)
        n, c, h, w = _as_2d(x)
        _, m, oh, ow = _as_2d(y)
        kh, kw = _as_2d(wt)[2:]
        group = attrs.get("group", 1)
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        defines, uniforms = activation(self.node)
        if bias is not None:
            defines["BIAS"] = 1
        total = int(np.prod(y))
        uniforms.update({"u_in": (c, h, w), "u_out": (m, oh, ow), "u_kernel": (kh, kw, c // group, m // group),
                         "u_step": step, "u_pad": pad, "u_n": total})
        prog = self.program("conv_transpose", defines)
        return [[Dispatch(prog, grid(total), [self.inputs[0], self.inputs[1], bias, self.outputs[0]], uniforms)]]
