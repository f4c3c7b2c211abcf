"""Softmax / LogSoftmax (any axis), LayerNormalization and the Reduce* family (any axes): one
work-group per output line, reducing in local memory."""
import numpy as np

from engine.ops import norm_axis
from engine.ops.reduce import reduce_axes

from . import OpenCLBackend
from .base import GROUP, REDUCE, CLExecutor, f32, float32_only, i32


def _group_launch(exe, kernel, groups):
    """One work-group per output line."""
    exe.launch(kernel, (GROUP, groups), (GROUP, 1))


@OpenCLBackend.op("Softmax", "LogSoftmax")
class SoftmaxCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        shape = ins[0].shape
        axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(shape))
        self.length, self.inner = shape[axis], int(np.prod(shape[axis + 1:]))
        self.k = self.kernel("reduce.cl", "softmax")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, i32(self.length), i32(self.inner),
                            i32(self.node.op == "LogSoftmax"))
            _group_launch(self, self.k, y.size // self.length)


@OpenCLBackend.op("LayerNormalization")
class LayerNormCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len([o for o in node.outputs if o]) > 1:
            return "Mean/InvStdDev outputs"
        shape = ins[0].shape
        axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(shape))
        inner = int(np.prod(shape[axis:]))
        if any(i is not None and int(np.prod(i.shape)) != inner for i in ins[1:3]):
            return "scale/bias broadcast over the normalized axes"
        return float32_only(ins, outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        shape = ins[0].shape
        axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(shape))
        self.inner = int(np.prod(shape[axis:]))
        self.k = self.kernel("reduce.cl", "layernorm")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y, s = inputs[0], outputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        bb = b if b is not None else self.backend.dummy
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, s.buf, s.off, bb.buf, bb.off, i32(self.inner),
                            f32(self.node.attrs.get("epsilon", 1e-5)), i32(b is not None))
            _group_launch(self, self.k, y.size // self.inner)


def reduce_groups(shape, axes):
    """Runs of kept and of reduced dims (unit dims dropped), each as (size, stride of its last dim)."""
    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    kept, red, last = [], [], None
    for i, d in enumerate(shape):
        if d == 1:
            continue
        role = i in axes
        runs = red if role else kept
        if last == role:
            runs[-1] = (runs[-1][0] * d, strides[i])
        else:
            runs.append((d, strides[i]))
        last = role
    return kept, red


@OpenCLBackend.op(*REDUCE)
class ReduceCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins) > 1 and ins[1] is not None and ins[1].value is None:
            return "axes computed at run time"
        axes = reduce_axes(node, ins)
        if not axes:
            return "empty axes (no-op)"
        if int(np.prod([ins[0].shape[a] for a in axes])) == 0:
            return "reduction over an empty axis"
        kept, red = reduce_groups(ins[0].shape, axes)
        if len(kept) > 3 or len(red) > 3:
            return "axes interleaved more than three times"
        return float32_only(ins[:1], outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        kept, red = reduce_groups(ins[0].shape, reduce_axes(node, ins))
        kept, red = [(1, 0)] * (3 - len(kept)) + kept, [(1, 0)] * (3 - len(red)) + red
        self.count = int(np.prod([r[0] for r in red]))
        self.args = [i32(v) for v in (kept[1][0], kept[2][0], kept[0][1], kept[1][1], kept[2][1],
                                      red[1][0], red[2][0], red[0][1], red[1][1], red[2][1],
                                      self.count, REDUCE[node.op])]
        self.k = self.kernel("reduce.cl", "reduce")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, *self.args)
            _group_launch(self, self.k, y.size)
