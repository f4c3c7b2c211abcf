"""MaxPool and AveragePool over NCHW (and NCW as H = 1): pool2d.comp, one output per invocation.
Global pools are reductions (ops_reduce.py)."""
from engine.ops.nn import resolve_pads

from . import VulkanBackend
from .kernel import VkExecutor, check_float, pack


@VulkanBackend.op("MaxPool", "AveragePool")
class PoolVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins[0].shape) not in (3, 4):
            return f"{len(ins[0].shape) - 2}-d pooling (1-d and 2-d only)"
        if len([o for o in node.outputs if o]) > 1:
            return "MaxPool with an Indices output"
        return check_float(node, ins, outs, backend)

    def record(self):
        node, x, y = self.node, self.inputs[0], self.outputs[0]
        kernel = list(node.attrs["kernel_shape"])
        nd = len(kernel)
        strides = list(node.attrs.get("strides", [1] * nd))
        dil = list(node.attrs.get("dilations", [1] * nd))
        pads = resolve_pads(node, x.shape[2:], kernel, strides, dil)
        if nd == 1:  # NCW as NC1W
            kernel, strides, dil, pads = [1] + kernel, [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        h, w = ([1] + list(x.shape[2:]))[-2:]
        oh, ow = ([1] + list(y.shape[2:]))[-2:]
        mode = 0 if node.op == "MaxPool" else 2 if node.attrs.get("count_include_pad", 0) else 1
        push = pack(y.size, h, w, oh, ow, *kernel, *strides, *dil, pads[0], pads[1], h + pads[2], w + pads[3])
        return [self.dispatch("pool2d", [x], [y], push, y.size, spec=(mode,))]
