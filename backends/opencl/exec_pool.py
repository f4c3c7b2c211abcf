"""Pooling: MaxPool / AveragePool (pads, strides, dilations, ceil_mode, count_include_pad) and
the global forms. 1-D pools run as 2-D ones of height 1."""
import numpy as np

from engine.ops.nn import resolve_pads

from . import OpenCLBackend
from .base import GROUP, CLExecutor, float32_only, i32


def _as_2d(shape):
    return tuple(shape) if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


@OpenCLBackend.op("MaxPool", "AveragePool")
class PoolCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins[0].shape) not in (3, 4):
            return f"rank {len(ins[0].shape)} pooling (opencl runs 1-D and 2-D)"
        if len([o for o in node.outputs if o]) > 1:
            return "MaxPool Indices output"
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        x = ins[0].shape
        k = list(node.attrs["kernel_shape"])
        nd = len(k)
        strides = list(node.attrs.get("strides", [1] * nd))
        dil = list(node.attrs.get("dilations", [1] * nd))
        pads = resolve_pads(node, x[2:], k, strides, dil)
        begin, end = pads[:nd], pads[nd:]
        include = node.attrs.get("count_include_pad", 0)
        # the window positions an average counts, per axis: [lo, hi)
        span = [(-b, n + e) if include else (0, n) for b, e, n in zip(begin, end, x[2:])]
        if nd == 1:
            k, strides, dil, begin, span = [1] + k, [1] + strides, [1] + dil, [0] + begin, [(0, 1)] + span
        self.args = [i32(v) for v in (k[0], k[1], strides[0], strides[1], begin[0], begin[1],
                                      dil[0], dil[1], node.op == "MaxPool",
                                      span[0][0], span[0][1], span[1][0], span[1][1])]
        self.k = self.kernel("pool.cl", "pool2d")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        (n, c, h, w), (_, _, oh, ow) = _as_2d(x.shape), _as_2d(y.shape)
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, i32(h), i32(w), i32(oh), i32(ow),
                            i32(n * c), *self.args)
            self.launch_2d(self.k, oh * ow, n * c)


@OpenCLBackend.op("GlobalAveragePool", "GlobalMaxPool")
class GlobalPoolCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins[0].shape) < 3:
            return "rank below 3"
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        self.k = self.kernel("pool.cl", "global_pool")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        hw = int(np.prod(x.shape[2:]))
        if y.size and hw:
            self.k.set_args(x.buf, x.off, y.buf, y.off, i32(hw), i32(self.node.op == "GlobalMaxPool"))
            self.launch(self.k, (GROUP, y.size), (GROUP, 1))
