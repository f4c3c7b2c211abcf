"""Data movement: the Reshape family (aliases), every op engine/geometry.py lowers to region
copies (raster.comp, one dispatch per region, after fill.comp for Pad's background), and Resize
of the last two axes (resize.comp, with per-axis tables computed here)."""
import numpy as np

from engine.geometry import MAX_REGIONS, lower

from . import VulkanBackend
from .kernel import VkExecutor, attr, check_float, pack

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
RASTERS = ("Transpose", "Slice", "Concat", "Split", "Pad", "Tile", "Expand", "DepthToSpace",
           "SpaceToDepth", "Gather")
MAX_DIMS = 6


def region_dispatch(exe, src, dst, size, soff, ss, doff, ds, disjoint=None):
    pad = MAX_DIMS - len(size)
    n = int(np.prod(size))
    push = pack(n, list(size) + [1] * pad, soff, list(ss) + [0] * pad, doff, list(ds) + [0] * pad)
    return exe.dispatch("raster", [src], [dst], push, n, spec=(len(size),), disjoint=disjoint)


@VulkanBackend.op(*RESHAPES)
class ReshapeVK(VkExecutor):
    """Same bytes, new shape: shares input 0's block; a plain copy when the planner could not."""
    alias = True

    @classmethod
    def supports(cls, backend, node, ins, outs):
        if node.op == "Dropout" and (len([o for o in node.outputs if o]) > 1 or
                                     (len(ins) > 2 and ins[2] is not None and
                                      (ins[2].value is None or bool(np.asarray(ins[2].value))))):
            return "Dropout with a mask output or training mode"
        return check_float(node, ins, outs, backend, inputs={0})

    def record(self):
        x, y = self.inputs[0], self.outputs[0]
        return [region_dispatch(self, x, y, (y.size,), 0, (1,), 0, (1,))]


@VulkanBackend.op(*RASTERS)
class RasterVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        data = set(range(len(ins))) if node.op == "Concat" else {0}  # the rest: constant ints
        why = check_float(node, ins, outs, backend, inputs=data)
        if why:
            return why
        raster = lower(node, ins, outs)
        if raster is None:
            return f"{node.op} with these attributes/inputs does not lower to region copies"
        if len(raster.regions) > MAX_REGIONS:
            return f"{len(raster.regions)} regions"
        return None

    def record(self):
        raster = lower(self.node, self.ins, self.outs)
        out = []
        for k, value in raster.fills.items():
            y = self.outputs[k]
            out.append(self.dispatch("fill", [], [y], pack(y.size, float(value)), y.size))
        for r in raster.regions:
            out.append(region_dispatch(self, self.inputs[r.src], self.outputs[r.dst], r.size, r.src_offset,
                                       r.src_strides, r.dst_offset, r.dst_strides, disjoint=id(self)))
        return out


COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
          "half_pixel_symmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def resize_targets(node, ins):
    """[(output size, scale)] of the last two axes, or a reason this resize is not handled."""
    shape = ins[0].shape
    rank = len(shape)
    sizes = ins[3].value if len(ins) > 3 and ins[3] is not None else None
    scales = ins[2].value if len(ins) > 2 and ins[2] is not None else None
    axes = [a + rank if a < 0 else a for a in (node.attrs.get("axes") or range(rank))]
    if sizes is not None and np.size(sizes):
        if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            return "keep_aspect_ratio_policy"
        targets = {a: (int(s), float(np.float32(s) / np.float32(shape[a])))
                   for a, s in zip(axes, np.reshape(sizes, -1))}
    elif scales is not None and np.size(scales):
        scales = np.reshape(scales, -1).astype(np.float32)
        targets = {a: (int(np.floor(shape[a] * float(s))), float(s)) for a, s in zip(axes, scales)}
    else:
        return "Resize without constant scales or sizes"
    if any(targets.get(a, (shape[a],))[0] != shape[a] for a in range(rank - 2)):
        return "Resize of an axis other than the last two"
    return [targets.get(a, (shape[a], 1.0)) for a in (rank - 2, rank - 1)]


def axis_table(node, n_in, n_out, scale):
    """(index 0, index 1, weight 0, weight 1) per output position, ONNX Runtime's float32 math."""
    f = np.float32
    ctm = attr(node, "coordinate_transformation_mode", "half_pixel")
    xr, s = np.arange(n_out, dtype=f), f(scale)
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        c = (xr + f(0.5)) / s - f(0.5)
        if ctm == "pytorch_half_pixel" and n_out == 1:
            c = np.zeros(1, f)
    elif ctm == "half_pixel_symmetric":
        adjust = f(n_out) / (s * f(n_in))
        c = f(n_in) / f(2) * (f(1) - adjust) + (xr + f(0.5)) / s - f(0.5)
    elif ctm == "align_corners":
        c = xr * f(n_in - 1) / f(n_out - 1) if n_out > 1 else np.zeros(n_out, f)
    elif ctm == "asymmetric":
        c = xr / s
    else:  # tf_half_pixel_for_nn
        c = (xr + f(0.5)) / s
    if attr(node, "mode", "nearest") == "nearest":
        mode, c = attr(node, "nearest_mode", "round_prefer_floor"), c.astype(np.float64)
        i = {"round_prefer_floor": np.ceil(c - 0.5), "round_prefer_ceil": np.floor(c + 0.5),
             "floor": np.floor(c), "ceil": np.ceil(c)}[mode]
        i = np.clip(i, 0, n_in - 1)
        return np.stack([i, i, np.ones(n_out), np.zeros(n_out)], 1)
    c = np.clip(c, f(0), f(n_in - 1))
    lo = np.floor(c)
    hi = np.minimum(lo + 1, n_in - 1)
    w_hi = c - lo
    return np.stack([lo, hi, 1 - w_hi, w_hi], 1)


@VulkanBackend.op("Resize")
class ResizeVK(VkExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        why = check_float(node, ins, outs, backend, inputs={0})
        if why:
            return why
        mode, ctm = attr(node, "mode", "nearest"), attr(node, "coordinate_transformation_mode", "half_pixel")
        if mode not in ("nearest", "linear") or ctm not in COORDS:
            return f"Resize mode={mode} coordinate_transformation_mode={ctm}"
        if mode == "nearest" and attr(node, "nearest_mode", "round_prefer_floor") not in NEAREST:
            return "Resize nearest_mode"
        if len(ins[0].shape) < 2:
            return "Resize of rank < 2"
        targets = resize_targets(node, ins)
        if isinstance(targets, str):
            return targets
        if tuple(n for n, _ in targets) != tuple(outs[0].shape[-2:]):
            return f"Resize output {outs[0].shape} differs from its scales/sizes"
        if node.attrs.get("antialias", 0) and mode != "nearest" and any(s < 1 for _, s in targets):
            return "antialiased downsampling"
        return None

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        (oh, sh), (ow, sw) = resize_targets(node, ins)
        h, w = ins[0].shape[-2:]
        table = np.concatenate([axis_table(node, h, oh, sh), axis_table(node, w, ow, sw)]).astype(np.float32)
        self.table = backend.upload_once(table)

    def record(self):
        x, y = self.inputs[0], self.outputs[0]
        h, w = x.shape[-2:]
        oh, ow = y.shape[-2:]
        return [self.dispatch("resize", [x, self.table], [y], pack(y.size, h, w, oh, ow), y.size)]
