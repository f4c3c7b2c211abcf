"""Resize (nearest / linear) of the two innermost axes. Source indices and weights are tables
computed here once per shape, in float32 in ONNX Runtime's order of operations, so the kernel
is one gather for every coordinate transformation mode and nearest mode."""
import numpy as np

from . import OpenCLBackend
from .base import CLExecutor, float32_only, i32

_F = np.float32
_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
          "asymmetric", "tf_half_pixel_for_nn")


def _attr(node, key, default):
    v = node.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def _scales(node, ins, outs):
    """Per axis: the scale coordinates use (the given scale, or out/in for `sizes`)."""
    x, out = ins[0].shape, outs[0].shape
    sizes = ins[3].value if len(ins) > 3 and ins[3] is not None and ins[3].value is not None else None
    if sizes is not None and np.size(sizes):
        return [_F(o) / _F(i) for o, i in zip(out, x)]
    given = np.asarray(ins[2].value, _F).reshape(-1)
    full = [_F(1)] * len(x)
    for k, a in enumerate(node.attrs.get("axes") or range(len(x))):
        full[a % len(x)] = given[k]
    return full


def source_coords(ctm, n_out, n_in, s):
    o = np.arange(n_out, dtype=_F)
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        c = (o + _F(0.5)) / s - _F(0.5)
        return c if ctm == "half_pixel" or n_out > 1 else np.zeros(n_out, _F)
    if ctm == "half_pixel_symmetric":
        adjust = _F(n_out) / (s * _F(n_in))
        return _F(n_in) / _F(2) * (_F(1) - adjust) + (o + _F(0.5)) / s - _F(0.5)
    if ctm == "align_corners":
        return o * _F(n_in - 1) / _F(n_out - 1) if n_out > 1 else np.zeros(n_out, _F)
    if ctm == "asymmetric":
        return o / s
    return (o + _F(0.5)) / s  # tf_half_pixel_for_nn


def axis_table(node, n_out, n_in, s):
    """(first index, second index, first weight, second weight) per output position."""
    c = source_coords(_attr(node, "coordinate_transformation_mode", "half_pixel"), n_out, n_in, s)
    if _attr(node, "mode", "nearest") == "nearest":
        how = _attr(node, "nearest_mode", "round_prefer_floor")
        c = c.astype(np.float64)
        i = {"round_prefer_floor": np.ceil(c - 0.5), "round_prefer_ceil": np.floor(c + 0.5),
             "floor": np.floor(c), "ceil": np.ceil(c)}[how]
        i = np.clip(i, 0, n_in - 1).astype(np.int32)
        return i, i, np.ones(n_out, _F), np.zeros(n_out, _F)
    c = np.clip(c, _F(0), _F(n_in - 1))
    lo = np.floor(c).astype(np.int32)
    hi = np.minimum(lo + 1, n_in - 1)
    w_hi = (c - lo.astype(_F)).astype(_F)
    return lo, hi, (_F(1) - w_hi).astype(_F), w_hi


@OpenCLBackend.op("Resize")
class ResizeCL(CLExecutor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        x, out = ins[0].shape, outs[0].shape
        if len(x) != 4 or tuple(x[:2]) != tuple(out[:2]):
            return "resizes other than the two innermost axes of a 4-D tensor"
        if _attr(node, "mode", "nearest") not in ("nearest", "linear"):
            return f"mode {_attr(node, 'mode', '')}"
        if _attr(node, "coordinate_transformation_mode", "half_pixel") not in _MODES:
            return "coordinate_transformation_mode tf_crop_and_resize"
        if _attr(node, "nearest_mode", "round_prefer_floor") not in (
                "round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            return "unknown nearest_mode"
        if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            return "keep_aspect_ratio_policy"
        if node.attrs.get("antialias", 0) and any(o < i for o, i in zip(out, x)):
            return "antialiased downsampling"
        return float32_only(ins[:1], outs)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        (_, _, h, w), (_, _, oh, ow) = ins[0].shape, outs[0].shape
        sy, sx = _scales(node, ins, outs)[2:]
        ty, tx = axis_table(node, oh, h, sy), axis_table(node, ow, w, sx)
        self.idx = backend.upload(np.concatenate([ty[0], ty[1], tx[0], tx[1]]).astype(np.int32))
        self.wts = backend.upload(np.concatenate([ty[2], ty[3], tx[2], tx[3]]).astype(_F))
        self.k = self.kernel("resize.cl", "resize2d")

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        x, y = inputs[0], outputs[0]
        (n, c, h, w), (_, _, oh, ow) = x.shape, y.shape
        if y.size:
            self.k.set_args(x.buf, x.off, y.buf, y.off, self.idx.buf, self.wts.buf,
                            i32(h), i32(w), i32(oh), i32(ow), i32(n * c))
            self.launch_2d(self.k, oh * ow, n * c)
