"""Data movement: the Reshape family (aliases), every op geometry lowers to region copies (one
raster shader), and Resize (a separable gather through host-computed tables)."""
import numpy as np

from engine import geometry

from . import GLBackend
from .dispatch import Dispatch, GLExecutor, grid, unsupported_dtype

ALIASES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
RASTER_OPS = [op for op in geometry.LOWERINGS if op not in ALIASES]


def region_dispatch(prog, region, src, dst):
    size, ss, ds = region.padded(geometry.MAX_DIMS)
    n = int(np.prod(region.size))
    uniforms = {"u_n": n, "u_rank": len(region.size), "u_size": size, "u_ss": ss, "u_ds": ds,
                "u_offsets": (region.src_offset, region.dst_offset)}
    return Dispatch(prog, grid(n), [src, dst], uniforms)


@GLBackend.op(*ALIASES)
class ReshapeGL(GLExecutor):
    """Same bytes, new shape: shares the input's arena block; copies when the planner could not."""
    alias = True

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len([o for o in outs if o is not None]) > 1:
            return "Dropout mask output"
        if node.op == "Dropout" and len(ins) > 2 and ins[2] is not None and \
                (ins[2].value is None or bool(np.asarray(ins[2].value))):
            return "Dropout in training mode"
        return unsupported_dtype(ins, outs, [0])

    def stages(self):
        if self.aliased:
            return []
        n = int(np.prod(self.outs[0].shape))
        region = geometry.Region(0, 0, (n,), 0, (1,), 0, (1,))
        return [[region_dispatch(self.program("raster"), region, self.inputs[0], self.outputs[0])]]


@GLBackend.op(*RASTER_OPS)
class RasterGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        raster = geometry.lower(node, ins, outs)
        if raster is None:
            return "no region-copy form for these attributes"
        return unsupported_dtype(ins, outs, sorted({r.src for r in raster.regions}))

    def stages(self):
        raster = geometry.lower(self.node, self.ins, self.outs)
        fills = []
        for k, value in raster.fills.items():
            n = int(np.prod(self.outs[k].shape))
            bits = int(np.float32(value).view(np.uint32))
            fills.append(Dispatch(self.program("fill"), grid(n), [self.outputs[k]], {"u_n": n, "u_value": bits}))
        prog = self.program("raster")
        copies = [region_dispatch(prog, r, self.inputs[r.src], self.outputs[r.dst]) for r in raster.regions]
        return [fills, copies]


def resize_tables(node, ins):
    """{axis: (indices, weights)}, each (n_out, taps), for the axes the node resamples, from the
    CPU backend's resize_plan (same pixels, same weights); None for crop-and-resize."""
    from backends.cpu.kernels_resize import resize_plan
    value = lambda k: ins[k].value if len(ins) > k and ins[k] is not None else None  # noqa: E731
    _, tables = resize_plan(node, ins[0].shape, value(1), value(2), value(3))
    if any(outside is not None for _, _, outside in tables.values()):
        return None
    return {a: (idx, np.ones(idx.shape, np.float32) if w is None else w) for a, (idx, w, _) in tables.items()}


def _identity_table(n):
    return np.arange(n)[:, None], np.ones((n, 1), np.float32)


@GLBackend.op("Resize")
class ResizeGL(GLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if len(ins[0].shape) < 2:
            return "rank < 2"
        tables = resize_tables(node, ins)
        if tables is None:
            return "tf_crop_and_resize"
        if any(a < len(ins[0].shape) - 2 for a in tables):
            return "resizes an axis other than the last two"
        return unsupported_dtype(ins, outs, [0])

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        tables = resize_tables(node, ins)
        rank = len(ins[0].shape)
        (iy, wy), (ix, wx) = [tables.get(a) or _identity_table(ins[0].shape[a]) for a in (rank - 2, rank - 1)]
        self.taps = max(iy.shape[1], ix.shape[1])

        def widen(t):  # narrower tables get extra taps of weight 0
            return np.pad(t, [(0, 0), (0, self.taps - t.shape[1])])
        parts = [widen(iy), widen(wy), widen(ix), widen(wx)]
        self.table = backend.upload(np.concatenate([p.astype(np.float32).reshape(-1) for p in parts]))

    def stages(self):
        x, y = self.ins[0].shape, self.outs[0].shape
        n = int(np.prod(y))
        uniforms = {"u_n": n, "u_in": x[-2:], "u_out": y[-2:]}
        prog = self.program("resize", {"TAPS": self.taps})
        return [[Dispatch(prog, grid(n), [self.inputs[0], self.table, self.outputs[0]], uniforms)]]
