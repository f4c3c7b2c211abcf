"""Data movement: Reshape-like ops share their input's memory; every other layout op is lowered
by engine.geometry to region copies, all run by the one `raster` kernel (and `fill`)."""
import numpy as np

from engine.geometry import MAX_DIMS, Region, lower

from . import OpenCLBackend
from .base import GROUP, CLExecutor, box_local, i32


def word_dtypes(tensors):
    """The raster kernels move 32-bit words: float32 and int32 tensors."""
    for t in tensors:
        if t is not None and np.dtype(t.dtype) not in (np.float32, np.int32):
            return f"dtype {np.dtype(t.dtype)} (opencl moves 32-bit tensors)"
    return None


def launch_region(exe, r, inputs, outputs):
    size, ss, ds = r.padded(MAX_DIMS)
    if min(size) == 0:
        return
    x, y = inputs[r.src], outputs[r.dst]
    if max(size[:3]) == 1:  # the usual case: three dims or fewer
        size, ss, ds = size[3:], ss[3:], ds[3:]
    k = exe.kernel("raster.cl", "raster" if len(size) == 3 else "raster_nd")
    k.set_args(x.buf, i32(x.off + r.src_offset), y.buf, i32(y.off + r.dst_offset),
               *[i32(v) for v in size + ss + ds])
    exe.launch(k, (size[-1], size[-2], size[-3]), box_local(size[-1]))


@OpenCLBackend.op("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
class ReshapeCL(CLExecutor):
    """Same bytes, new shape: the planner merges output and input blocks (no launch at all);
    when it could not, one contiguous copy."""
    alias = True

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len([o for o in node.outputs if o]) != 1 or not node.outputs[0]:
            return "only the data output (no Dropout mask)"
        if node.op == "Dropout" and len(ins) > 2 and ins[2] is not None and \
                (ins[2].value is None or bool(np.asarray(ins[2].value).any())):
            return "Dropout in training mode"
        return word_dtypes([ins[0], outs[0]])

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        if not self.aliased:
            n = outputs[0].size
            launch_region(self, Region(0, 0, (n,), 0, (1,), 0, (1,)), inputs, outputs)


@OpenCLBackend.op("Transpose", "Slice", "Concat", "Split", "Pad", "Tile", "Expand",
                  "DepthToSpace", "SpaceToDepth", "Gather")
class RasterCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        data = [i for i in ins if i is not None] if node.op == "Concat" else ins[:1]
        why = word_dtypes(data + list(outs))
        if why:
            return why
        if lower(node, ins, outs) is None:
            return f"{node.op} with these attributes is not a region copy (e.g. Pad reflect/edge, " \
                   f"Gather of data-dependent or many indices)"
        return None

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        self.raster = lower(node, ins, outs)

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        for k, value in self.raster.fills.items():
            y = outputs[k]
            if not y.size:
                continue
            word = np.array(value, dtype=y.dtype).view(np.uint32)
            fill = self.kernel("raster.cl", "fill")
            fill.set_args(y.buf, y.off, i32(y.size), np.uint32(word))
            self.launch(fill, (y.size,), (GROUP,))
        for r in self.raster.regions:
            launch_region(self, r, inputs, outputs)
