"""Resize (newest form: axes, antialias, keep_aspect_ratio_policy) and the old Upsample, as
separable 1-D resamplings per axis.

Each resized axis becomes a small table -- for every output position, the source indices and
their weights (1 for nearest, 2 linear, 4 cubic, more for an antialiasing filter) -- and the
tensor is gathered along that axis once per tap. Source coordinates are computed in float32
in ONNX Runtime's order of operations, and its conventions are kept where the spec leaves
room (sizes from scales, axes left at scale 1, near-ties), so nearest neighbours pick the
same pixels.
"""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, axis_of, fail, ints

_F = np.float32


def _source_coords(ctm, n_out, n_in, scale, roi):
    """Position in the input of each output index, per coordinate_transformation_mode."""
    xr = np.arange(n_out, dtype=_F)
    s = _F(scale)
    if ctm == "half_pixel":
        return (xr + _F(0.5)) / s - _F(0.5)
    if ctm == "half_pixel_symmetric":
        adjust = _F(n_out) / (s * _F(n_in))
        offset = _F(n_in) / _F(2) * (_F(1) - adjust)
        return (np.float64(offset) + (xr.astype(np.float64) + 0.5) / np.float64(s) - 0.5).astype(_F)
    if ctm == "pytorch_half_pixel":
        return (xr + _F(0.5)) / s - _F(0.5) if n_out > 1 else np.zeros(n_out, _F)
    if ctm == "align_corners":
        return xr * _F(n_in - 1) / _F(n_out - 1) if n_out > 1 else np.zeros(n_out, _F)
    if ctm == "asymmetric":
        return xr / s
    if ctm == "tf_half_pixel_for_nn":
        return (xr + _F(0.5)) / s
    if ctm == "tf_crop_and_resize":
        start, end = _F(roi[0]), _F(roi[1])
        if n_out == 1:
            return np.full(n_out, 0.5 * (float(start) + float(end)) * (n_in - 1), _F)
        return start * _F(n_in - 1) + xr * (end - start) * _F(n_in - 1) / _F(n_out - 1)
    raise UnsupportedOpError(f"Resize: unknown coordinate_transformation_mode '{ctm}'")


def _nearest(c, mode, n_in):
    c = c.astype(np.float64)
    # A coordinate within 1e-6 of a half is a tie: 2 / (4/7) comes out of float32 as 3.4999998
    # for what is 3.5, and ONNX Runtime (1.31) breaks such ties by the mode, as the exact value.
    low = np.floor(c)
    tie = np.abs(c - low - 0.5) <= 1e-6
    if mode == "round_prefer_floor":
        i = np.where(tie, low, np.floor(c + 0.5))
    elif mode == "round_prefer_ceil":
        i = np.where(tie, low + 1, np.floor(c + 0.5))
    elif mode == "floor":
        i = np.floor(c)
    elif mode == "ceil":
        i = np.ceil(c)
    else:
        raise UnsupportedOpError(f"Resize: unknown nearest_mode '{mode}'")
    return np.clip(i, 0, n_in - 1).astype(np.intp)[:, None], None


def _linear(c, n_in, crop):
    if not crop:
        c = np.clip(c, _F(0), _F(n_in - 1))
    lo = np.clip(np.floor(c), 0, n_in - 1).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    w_hi, w_lo = np.abs(c - lo.astype(_F)), np.abs(c - hi.astype(_F))
    same = lo == hi  # at the last pixel ORT splits the weight evenly
    w_lo[same], w_hi[same] = 0.5, 0.5
    return np.stack([lo, hi], 1), np.stack([w_lo, w_hi], 1)


def _cubic_weight(d, a):
    """Keys' cubic convolution kernel at distance d >= 0 (zero from 2 on)."""
    return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                    np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))


def _linear_weight(d, a=None):
    return np.maximum(1 - d, 0.0)


def _cubic(c, n_in, a, exclude_outside):
    c = c.astype(np.float64)
    idx = np.floor(c).astype(np.intp)[:, None] + np.arange(-1, 3)[None, :]
    w = _cubic_weight(np.abs(idx - c[:, None]), a)
    return _edges(idx, w, n_in, exclude_outside, normalize=exclude_outside)


def _antialiased(c, n_in, scale, weight, radius, a, exclude_outside):
    """Downsampling with the filter stretched by 1/scale (antialias=1): every input pixel
    closer than radius/scale to the source coordinate contributes."""
    support = radius / scale
    c = c.astype(np.float64)
    idx = (np.floor(c - support) + 1).astype(np.intp)[:, None] + np.arange(2 * int(np.ceil(support)) + 1)
    w = weight(np.abs(idx - c[:, None]) * scale, a)
    return _edges(idx, w, n_in, exclude_outside, normalize=True)


def _edges(idx, w, n_in, exclude_outside, normalize):
    """Taps outside the input read the edge pixel, or drop out when exclude_outside is set;
    `normalize` rescales the weights to sum to 1 (a stretched or truncated filter)."""
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
    if normalize:
        w = w / w.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, n_in - 1), w.astype(_F)


def _axis_table(n_in, n_out, scale, roi, opts):
    """(indices (n_out, taps), weights (n_out, taps) or None, outside (n_out,) or None) that
    resample one axis; None when the axis is left as it is."""
    mode, ctm = opts["mode"], opts["ctm"]
    crop = ctm == "tf_crop_and_resize"
    # An axis at scale 1 is left alone (as ONNX Runtime does), even where a mode such as
    # tf_half_pixel_for_nn + ceil would shift it by one; with antialias, so is any axis whose
    # size does not change.
    filtered = opts["antialias"] and mode != "nearest"
    if n_out == n_in and (scale == 1 or filtered) and not crop:
        return None
    c = _source_coords(ctm, n_out, n_in, scale, roi)
    if mode == "nearest":
        idx, w = _nearest(c, opts["nearest_mode"], n_in)
    elif filtered and scale < 1:
        weight, radius = (_linear_weight, 1) if mode == "linear" else (_cubic_weight, 2)
        idx, w = _antialiased(c, n_in, scale, weight, radius, opts["cubic_coeff_a"], opts["exclude_outside"])
    elif mode == "linear":
        idx, w = _linear(c, n_in, crop)
    elif mode == "cubic":
        idx, w = _cubic(c, n_in, opts["cubic_coeff_a"], opts["exclude_outside"])
    else:
        raise UnsupportedOpError(f"Resize: unknown mode '{mode}'")
    return idx, w, ((c < 0) | (c > n_in - 1)) if crop else None


def _apply(x, axis, table, extrapolation_value):
    idx, w, outside = table
    shape = [1] * x.ndim
    shape[axis] = idx.shape[0]
    y = None
    for t in range(idx.shape[1]):
        part = np.take(x, idx[:, t], axis=axis)
        if w is not None:
            part = part * w[:, t].reshape(shape).astype(x.dtype if x.dtype.kind == "f" else _F)
        y = part if y is None else y + part
    if outside is not None:
        y = np.where(outside.reshape(shape), _F(extrapolation_value), y)
    return y.astype(x.dtype, copy=False)


def _options(node):
    return {"mode": attr_str(node, "mode", "nearest"),
            "ctm": attr_str(node, "coordinate_transformation_mode", "half_pixel"),
            "nearest_mode": attr_str(node, "nearest_mode", "round_prefer_floor"),
            "cubic_coeff_a": node.attrs.get("cubic_coeff_a", -0.75),
            "exclude_outside": node.attrs.get("exclude_outside", 0),
            "extrapolation_value": node.attrs.get("extrapolation_value", 0.0),
            "antialias": node.attrs.get("antialias", 0)}


def _targets(node, shape, axes, scales, sizes):
    """Per resized axis: (output size, scale) from `sizes` or `scales` (`shape`: the input's
    shape, or the input itself)."""
    shape = getattr(shape, "shape", shape)
    if sizes is not None and sizes.size:
        sz = ints(sizes)
        policy = attr_str(node, "keep_aspect_ratio_policy", "stretch")
        if policy == "stretch":
            return [(s, float(_F(s) / _F(shape[a]))) for s, a in zip(sz, axes)]
        ratios = [_F(s) / _F(shape[a]) for s, a in zip(sz, axes)]
        r = min(ratios) if policy == "not_larger" else max(ratios)
        # round half away from zero, as std::round
        return [(int(np.floor(r * _F(shape[a]) + _F(0.5))), float(r)) for a in axes]
    if scales is None or not scales.size:
        raise fail(node, "Resize needs either scales or sizes")
    sc = [float(v) for v in np.asarray(scales, dtype=_F).reshape(-1)]
    if len(sc) != len(axes):
        raise fail(node, f"{len(sc)} scales for {len(axes)} axes")
    # floor(size * scale) with the product rounded to float32 first, as ONNX Runtime does:
    # 20 * 0.45f is 9, not 8.
    return [(int(_F(s) * _F(shape[a])), s) for s, a in zip(sc, axes)]


def resize_plan(node, shape, roi=None, scales=None, sizes=None):
    """How a Resize node maps an input of `shape`: (output shape, {axis: table}) with one
    table (indices, weights or None, outside-mask or None) per axis that changes; the tensor is
    resampled along those axes in order. Shared with the GPU backends so they pick the same
    pixels and weights."""
    axes = [axis_of(node, a, len(shape)) for a in node.attrs.get("axes") or range(len(shape))]
    opts = _options(node)
    targets = _targets(node, shape, axes, scales, sizes)
    out = list(shape)
    for a, (n, _) in zip(axes, targets):
        out[a] = n
    crop = opts["ctm"] == "tf_crop_and_resize"
    if tuple(out) == tuple(shape) and not crop:
        return tuple(out), {}  # ONNX Runtime copies the input whenever the shape is unchanged
    rois = [0.0] * len(axes) + [1.0] * len(axes)
    if roi is not None and roi.size:
        r = [float(v) for v in roi.reshape(-1)]
        # roi is given for the listed axes, or for every axis of the input
        rois = r if len(r) == 2 * len(axes) else [r[a] for a in axes] + [r[a + len(shape)] for a in axes]
    tables = {}
    for k, (a, (n_out, s)) in enumerate(zip(axes, targets)):
        table = _axis_table(shape[a], n_out, s, (rois[k], rois[k + len(axes)]), opts)
        if table is not None:
            tables[a] = table
    return tuple(out), tables


@kernel("Resize")
def resize(node, x, roi=None, scales=None, sizes=None):
    _, tables = resize_plan(node, x.shape, roi, scales, sizes)
    y = x
    for axis, table in tables.items():
        y = _apply(y, axis, table, _options(node)["extrapolation_value"])
    return y


@kernel("Upsample")
def upsample(node, x, scales=None):
    scales = np.asarray(node.attrs["scales"] if scales is None else scales, dtype=_F).reshape(-1)
    mode = attr_str(node, "mode", "nearest")
    opts = dict(_options(node), mode="linear" if mode in ("linear", "bilinear") else mode,
                ctm="asymmetric", nearest_mode="floor")
    y = x
    for a, s in enumerate(float(v) for v in scales):
        table = _axis_table(x.shape[a], int(_F(s) * _F(x.shape[a])), s, (0.0, 1.0), opts)
        y = y if table is None else _apply(y, a, table, 0.0)
    return y
