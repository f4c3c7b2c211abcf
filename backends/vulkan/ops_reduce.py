"""Reductions: Reduce* over any axes and the global pools (reduce.comp), Softmax/LogSoftmax
along any axis (softmax.comp), LayerNormalization (layernorm.comp).

Rows that are long get a 64-wide workgroup each (shared-memory tree), short rows one
invocation each: one shader, a specialization constant picks the mode.
"""
import numpy as np

from engine.ops.reduce import reduce_axes

from . import VulkanBackend
from engine.geometry import strides_of

from .kernel import VkExecutor, check_float, grid, pack

REDUCE = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4,
          "ReduceL1": 5, "ReduceL2": 6, "ReduceLogSum": 7, "ReduceLogSumExp": 8,
          "ReduceSumSquare": 9, "GlobalAveragePool": 1, "GlobalMaxPool": 2}
RUNS = 3  # kept and reduced dims, each after merging neighbours


def use_workgroups(rows, length):
    return length >= 128 or (length >= 32 and rows <= 2048)


def runs(shape, axes):
    """([kept sizes], [kept strides], [reduced sizes], [reduced strides]): consecutive dims of the
    same kind merged (they are contiguous in a row-major tensor), unit dims dropped."""
    st = strides_of(shape)
    groups = {True: ([], []), False: ([], [])}
    last = None
    for k, d in enumerate(shape):
        if d == 1:
            continue
        kind = k not in axes
        sizes, strides = groups[kind]
        if last == kind:
            sizes[-1] *= d
            strides[-1] = st[k]
        else:
            sizes.append(d)
            strides.append(st[k])
        last = kind
    return groups[True] + groups[False]


def reduce_layout(node, ins):
    shape = ins[0].shape
    axes = list(range(2, len(shape))) if node.op.startswith("Global") else reduce_axes(node, ins)
    return runs(shape, set(axes))


@VulkanBackend.op(*REDUCE)
class ReduceVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = check_float(node, ins, outs, backend, inputs={0})
        if why:
            return why
        ks, _, rs, _ = reduce_layout(node, ins)
        return None if len(ks) <= RUNS and len(rs) <= RUNS else "reduced axes interleave too much"

    def record(self):
        x, y = self.inputs[0], self.outputs[0]
        ks, kst, rs, rst = reduce_layout(self.node, self.ins)
        nred = int(np.prod(rs))
        lead = lambda v, fill: [fill] * (RUNS - len(v)) + list(v)  # noqa: E731
        push = pack(y.size, nred, lead(ks, 1), lead(kst, 0), lead(rs, 1), lead(rst, 0), 1.0 / max(nred, 1))
        wg = use_workgroups(y.size, nred)
        spec = (REDUCE[self.node.op], int(wg))
        if wg:
            return [self.dispatch("reduce", [x], [y], push, groups=grid(y.size, self.backend.dev.max_groups),
                                  spec=spec)]
        return [self.dispatch("reduce", [x], [y], push, y.size, spec=spec)]


@VulkanBackend.op("Softmax", "LogSoftmax")
class SoftmaxVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return check_float(node, ins, outs, backend)

    def record(self):
        x, y = self.inputs[0], self.outputs[0]
        axis = self.node.attrs.get("axis", -1)
        axis += len(x.shape) if axis < 0 else 0
        length, inner = x.shape[axis], int(np.prod(x.shape[axis + 1:]))
        rows = x.size // length
        wg = use_workgroups(rows, length)
        push = pack(rows, length, inner)
        spec = (int(self.node.op == "LogSoftmax"), int(wg))
        if wg:
            return [self.dispatch("softmax", [x], [y], push, groups=grid(rows, self.backend.dev.max_groups),
                                  spec=spec)]
        return [self.dispatch("softmax", [x], [y], push, rows, spec=spec)]


def _trailing(param, normalized):
    """True if `param` (shape) broadcasts over the normalized dims only along leading ones."""
    shape = list(param)
    while shape and shape[0] == 1 and len(shape) > 1:
        shape.pop(0)
    if shape == [1]:
        return True
    return len(shape) <= len(normalized) and list(normalized[len(normalized) - len(shape):]) == shape


@VulkanBackend.op("LayerNormalization")
class LayerNormVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len([o for o in node.outputs if o]) > 1:
            return "LayerNormalization with Mean/InvStdDev outputs"
        why = check_float(node, ins, outs, backend)
        if why:
            return why
        normalized = ins[0].shape[cls.axis(node, ins):]
        if not all(_trailing(i.shape, normalized) for i in ins[1:] if i is not None):
            return "scale/bias broadcast in a way other than over leading dims"
        return None

    @staticmethod
    def axis(node, ins):
        axis = node.attrs.get("axis", -1)
        return axis + len(ins[0].shape) if axis < 0 else axis

    def record(self):
        x, scale, y = self.inputs[0], self.inputs[1], self.outputs[0]
        bias = self.inputs[2] if len(self.inputs) > 2 and self.inputs[2] is not None else None
        d = int(np.prod(x.shape[self.axis(self.node, self.ins):]))
        rows = x.size // d
        push = pack(rows, d, scale.size, bias.size if bias is not None else 1,
                    float(self.node.attrs.get("epsilon", 1e-5)))
        return [self.dispatch("layernorm", [x, scale, bias if bias is not None else self.backend.dummy], [y], push,
                              groups=grid(rows, self.backend.dev.max_groups), spec=(int(bias is not None),))]
