"""Row-wise executors: Reduce* over any axes, global pools, Softmax/LogSoftmax, LayerNormalization."""
import numpy as np

from engine.geometry import strides_of
from engine.ops import norm_axis
from engine.ops.reduce import reduce_axes

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, grid, unsupported_dtype

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
MAX_GROUPS = 4       # kept / reduced dim groups after merging
WORKGROUP_MIN = 64   # from this many values per output, 64 invocations share each output


def dim_groups(shape, reduced):
    """Adjacent dims merged into ([(size, stride)] kept, [(size, stride)] reduced)."""
    kept, red = [], []
    prev = None
    for axis, (d, s) in enumerate(zip(shape, strides_of(shape))):
        if d == 1:
            continue
        kind = axis in reduced
        groups = red if kind else kept
        if prev == kind:
            size, _ = groups[-1]
            groups[-1] = (size * d, s)
        else:
            groups.append((d, s))
        prev = kind
    return kept, red


def _padded(groups):
    groups = [(1, 0)] * (MAX_GROUPS - len(groups)) + list(groups)
    return tuple(g[0] for g in groups), tuple(g[1] for g in groups)


def _reduced_axes(node, ins):
    if node.op.startswith("Global"):
        return list(range(2, len(ins[0].shape)))
    return reduce_axes(node, ins)


@GLBackend.op(*REDUCE_OPS, "GlobalAveragePool", "GlobalMaxPool")
class ReduceGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = unsupported_dtype(ins, outs, [0])
        if why:
            return why
        kept, red = dim_groups(ins[0].shape, set(_reduced_axes(node, ins)))
        if len(kept) > MAX_GROUPS or len(red) > MAX_GROUPS:
            return "axes interleave in more than 4 groups"
        return None

    def stages(self):
        shape = self.ins[0].shape
        kept, red = dim_groups(shape, set(_reduced_axes(self.node, self.ins)))
        op = {"GlobalAveragePool": "Mean", "GlobalMaxPool": "Max"}.get(self.node.op, self.node.op[len("Reduce"):])
        n = int(np.prod(self.outs[0].shape))
        r = int(np.prod([g[0] for g in red]))
        kdims, kstr = _padded(kept)
        rdims, rstr = _padded(red)
        defines = {f"REDUCE_{op}": 1}
        if r >= WORKGROUP_MIN:
            defines["WORKGROUP"] = 1
        uniforms = {"u_n": n, "u_r": r, "u_kdims": kdims, "u_kstr": kstr, "u_rdims": rdims, "u_rstr": rstr}
        groups = grid(n, 1) if r >= WORKGROUP_MIN else grid(n)
        return [[Dispatch(self.program("reduce", defines), groups, [self.inputs[0], self.outputs[0]], uniforms)]]


@GLBackend.op("Softmax", "LogSoftmax")
class SoftmaxGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        return unsupported_dtype(ins, outs)

    def stages(self):
        shape = self.ins[0].shape
        axis = norm_axis(self.node, self.ins, self.node.attrs.get("axis", -1), len(shape))
        inner = int(np.prod(shape[axis + 1:]))
        n = int(np.prod(shape[:axis])) * inner
        defines = {"LOG_SOFTMAX": 1} if self.node.op == "LogSoftmax" else {}
        wide = shape[axis] >= WORKGROUP_MIN
        if wide:
            defines["WORKGROUP"] = 1
        prog = self.program("softmax", defines)
        uniforms = {"u_n": n, "u_len": shape[axis], "u_inner": inner}
        return [[Dispatch(prog, grid(n, 1) if wide else grid(n), [self.inputs[0], self.outputs[0]], uniforms)]]


@GLBackend.op("LayerNormalization")
class LayerNormGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len([o for o in outs if o is not None]) > 1:
            return "mean / inv_std outputs"
        shape = ins[0].shape
        axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(shape))
        n = int(np.prod(shape[axis:]))
        for t in ins[1:]:
            if t is not None and int(np.prod(t.shape)) != n:
                return f"scale/bias of shape {t.shape} for rows of {n}"
        return unsupported_dtype(ins, outs)

    def stages(self):
        shape = self.ins[0].shape
        axis = norm_axis(self.node, self.ins, self.node.attrs.get("axis", -1), len(shape))
        n = int(np.prod(shape[axis:]))
        rows = int(np.prod(shape[:axis]))
        bias = self.inputs[2] if len(self.inputs) > 2 else None
        prog = self.program("layernorm", {"BIAS": 1} if bias is not None else {})
        uniforms = {"u_rows": rows, "u_len": n, "u_eps": self.node.attrs.get("epsilon", 1e-5)}
        return [[Dispatch(prog, grid(rows, 1), [self.inputs[0], self.inputs[1], bias, self.outputs[0]], uniforms)]]
