"""MaxPool / AveragePool, 1-D and 2-D: pads, strides, dilations, ceil_mode, count_include_pad."""
import numpy as np

from engine.ops.nn import resolve_pads

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, grid, unsupported_dtype


@GLBackend.op("MaxPool", "AveragePool")
class PoolGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins[0].shape) not in (3, 4):
            return f"rank {len(ins[0].shape)} (gl pools are 1-D or 2-D)"
        if len([o for o in outs if o is not None]) > 1:
            return "MaxPool Indices output"
        return unsupported_dtype(ins, outs[:1])

    def stages(self):
        x, y = self.ins[0].shape, self.outs[0].shape
        attrs = self.node.attrs
        ksz = list(attrs["kernel_shape"])
        nd = len(ksz)
        strides = list(attrs.get("strides", [1] * nd))
        dil = list(attrs.get("dilations", [1] * nd))
        pads = resolve_pads(self.node, x[2:], ksz, strides, dil)
        if nd == 1:
            ksz, strides, dil, pads = [1] + ksz, [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        n = int(np.prod(y))
        uniforms = {"u_n": n, "u_in": x[-2:] if nd == 2 else (1, x[-1]), "u_out": y[-2:] if nd == 2 else (1, y[-1]),
                    "u_kernel": ksz, "u_step": (strides[0], strides[1], dil[0], dil[1]), "u_pad": pads,
                    "u_include_pad": int(attrs.get("count_include_pad", 0))}
        prog = self.program("pool", {"POOL_MAX" if self.node.op == "MaxPool" else "POOL_AVG": 1})
        return [[Dispatch(prog, grid(n), [self.inputs[0], self.outputs[0]], uniforms)]]
