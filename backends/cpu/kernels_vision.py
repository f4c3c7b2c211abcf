"""Detection and image-layout ops: RoiAlign, MaxUnpool, Col2Im and DeformConv (2-D).

RoiAlign follows ONNX Runtime (Caffe2's RoIAlign), which the spec's reference copies: samples
outside [-1, size] count as zero, and mode "max" takes, per sample, the largest of the four
weighted corner values.
"""
from itertools import product

import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, fail, ints


def _corners(pos, size):
    """Bilinear taps along one axis for sample positions `pos`: (low, high, w_low, w_high)."""
    inside = (pos >= -1.0) & (pos <= size)
    p = np.maximum(pos, 0.0)
    low = np.floor(p).astype(np.int64)
    top = low >= size - 1
    low = np.where(top, size - 1, low)
    high = np.where(top, size - 1, low + 1)
    p = np.where(top, low, p)
    frac = p - low
    return low, high, (1 - frac) * inside, frac * inside


@kernel("RoiAlign")
def roi_align(node, x, rois, batch_indices):
    a = node.attrs
    mode = attr_str(node, "mode", "avg")
    if mode not in ("avg", "max"):
        raise UnsupportedOpError(f"node '{node.name}' (RoiAlign): mode '{mode}' is not known")
    half = attr_str(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel"
    oh, ow = a.get("output_height", 1), a.get("output_width", 1)
    scale, ratio = a.get("spatial_scale", 1.0), a.get("sampling_ratio", 0)
    if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4 or batch_indices.shape != (rois.shape[0],):
        raise fail(node, f"X {x.shape}, rois {rois.shape}, batch_indices {batch_indices.shape} do not fit")
    n, c, h, w = x.shape
    if np.any((batch_indices < 0) | (batch_indices >= n)):
        raise fail(node, f"batch_indices must lie in [0, {n})")
    out = np.zeros((rois.shape[0], c, oh, ow))
    for r, (roi, b) in enumerate(zip(rois.astype(np.float64), batch_indices.astype(np.int64))):
        off = 0.5 if half else 0.0
        x1, y1, x2, y2 = roi * scale - off
        rw, rh = x2 - x1, y2 - y1
        if not half:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / ow, rh / oh
        gh = ratio if ratio > 0 else int(np.ceil(rh / oh))
        gw = ratio if ratio > 0 else int(np.ceil(rw / ow))
        ys = y1 + np.arange(oh)[:, None] * bh + (np.arange(gh)[None, :] + 0.5) * bh / max(gh, 1)  # (oh, gh)
        xs = x1 + np.arange(ow)[:, None] * bw + (np.arange(gw)[None, :] + 0.5) * bw / max(gw, 1)  # (ow, gw)
        yl, yh, wyl, wyh = _corners(ys, h)
        xl, xh, wxl, wxh = _corners(xs, w)
        img = x[b].astype(np.float64)  # (c, h, w)
        # corner values for every (oh, gh, ow, gw) sample: (c, oh, gh, ow, gw)
        parts = [img[:, yi[:, :, None, None], xi[None, None, :, :]] * (wy[:, :, None, None] * wx[None, None])
                 for (yi, wy), (xi, wx) in product(((yl, wyl), (yh, wyh)), ((xl, wxl), (xh, wxh)))]
        if mode == "avg":
            out[r] = sum(parts).sum(axis=(2, 4)) / max(gh * gw, 1)
        else:
            out[r] = np.max(parts, axis=0).max(axis=(2, 4)) if gh * gw else 0
    return out.astype(x.dtype)


@kernel("MaxUnpool")
def max_unpool(node, x, indices, output_shape=None):
    nd = x.ndim - 2
    kernel_ = list(node.attrs.get("kernel_shape", []))
    strides = list(node.attrs.get("strides", [1] * nd))
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    if len(kernel_) != nd:
        raise fail(node, f"kernel_shape {kernel_} does not fit a {nd}-D input")
    if output_shape is not None:  # pads are ignored; indices address the unpadded geometry
        pads = [0] * (2 * nd)
    shape = list(x.shape[:2]) + [(x.shape[2 + i] - 1) * strides[i] + kernel_[i] - pads[i] - pads[i + nd]
                                 for i in range(nd)]
    if indices.shape != x.shape:
        raise fail(node, f"indices {indices.shape} must have the shape of X {x.shape}")
    if len(shape) != x.ndim or min(shape) < 0:
        raise fail(node, f"output shape {shape} does not fit X {x.shape}")
    out = np.zeros(int(np.prod(shape)), x.dtype)
    idx = indices.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= out.size):
        raise fail(node, f"indices must lie in [0, {out.size})")
    out[idx] = x.reshape(-1)
    out = out.reshape(shape)
    if output_shape is None:
        return out
    want = ints(output_shape)
    if len(want) != x.ndim or min(want) < 0 or want[:2] != shape[:2]:
        raise fail(node, f"output_shape {want} does not fit X {x.shape}")
    big = np.zeros(want, x.dtype)  # the extra rows and columns (pads) go at the end
    common = tuple(slice(0, min(a, b)) for a, b in zip(want, shape))
    big[common] = out[common]
    return big


@kernel("Col2Im")
def col2im(node, cols, image_shape, block_shape):
    img, blk = ints(image_shape), ints(block_shape)
    nd = len(img)
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    if len(blk) != nd or cols.ndim != 3 or min(blk + img) < 1:
        raise fail(node, f"input {cols.shape}, image_shape {img} and block_shape {blk} do not fit")
    k = int(np.prod(blk))
    if cols.shape[1] % k:
        raise fail(node, f"input channels {cols.shape[1]} are not a multiple of the block size {k}")
    n, c = cols.shape[0], cols.shape[1] // k
    padded = [img[i] + pads[i] + pads[i + nd] for i in range(nd)]
    counts = [(padded[i] - dil[i] * (blk[i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    if int(np.prod(counts)) != cols.shape[2] or min(counts) < 1:
        raise fail(node, f"{cols.shape[2]} blocks given, the geometry makes {counts}")
    out = np.zeros((n, c, *padded), np.float64)
    col = cols.reshape(n, c, *blk, *counts).astype(np.float64)
    for off in product(*[range(b) for b in blk]):
        sl = tuple(slice(off[i] * dil[i], off[i] * dil[i] + (counts[i] - 1) * strides[i] + 1, strides[i])
                   for i in range(nd))
        out[(slice(None), slice(None)) + sl] += col[(slice(None), slice(None)) + off]
    crop = tuple(slice(pads[i], pads[i] + img[i]) for i in range(nd))
    return out[(slice(None), slice(None)) + crop].astype(cols.dtype)


def _bilinear_zero(img, y, x):
    """img (N, C, H, W) sampled at y, x (N, K, oH, oW): (N, C, K, oH, oW), zero outside."""
    n, c, h, w = img.shape
    y0, x0 = np.floor(y), np.floor(x)
    out = 0.0
    batch = np.arange(n)[:, None, None, None]
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yi, xi = y0 + dy, x0 + dx
        wgt = (1 - np.abs(y - yi)) * (1 - np.abs(x - xi)) * ((yi >= 0) & (yi < h) & (xi >= 0) & (xi < w))
        vals = img[batch, :, np.clip(yi, 0, h - 1).astype(np.int64), np.clip(xi, 0, w - 1).astype(np.int64)]
        out = out + np.moveaxis(vals, -1, 1) * wgt[:, None]
    return out


@kernel("DeformConv")
def deform_conv(node, x, w, offset, b=None, mask=None):
    if x.ndim != 4 or w.ndim != 4:
        raise UnsupportedOpError(f"node '{node.name}' (DeformConv): only 2-D inputs are supported, got {x.shape}")
    a = node.attrs
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    group, og = a.get("group", 1), a.get("offset_group", 1)
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    k = kh * kw
    if cg * group != c or c % og or offset.shape != (n, og * k * 2, oh, ow) or oh < 1 or ow < 1:
        raise fail(node, f"X {x.shape}, W {w.shape} and offset {offset.shape} do not fit "
                         f"(group {group}, offset_group {og}, output {oh}x{ow})")
    if mask is not None and mask.shape != (n, og * k, oh, ow):
        raise fail(node, f"mask {mask.shape} must be {(n, og * k, oh, ow)}")
    off = offset.astype(np.float64).reshape(n, og, k, 2, oh, ow)
    ky, kx = np.divmod(np.arange(k), kw)
    base_y = (np.arange(oh) * sh - pt)[None, :, None] + (ky * dh)[:, None, None]  # (k, oH, 1)
    base_x = (np.arange(ow) * sw - pl)[None, None, :] + (kx * dw)[:, None, None]  # (k, 1, oW)
    xf = x.astype(np.float64)
    cols = []
    per = c // og
    for g in range(og):
        sampled = _bilinear_zero(xf[:, g * per:(g + 1) * per], base_y + off[:, g, :, 0], base_x + off[:, g, :, 1])
        if mask is not None:
            sampled = sampled * mask.astype(np.float64).reshape(n, og, k, oh, ow)[:, g, None]
        cols.append(sampled)
    cols = np.concatenate(cols, axis=1)  # (N, C, k, oH, oW)
    wg = w.astype(np.float64).reshape(group, oc // group, cg, k)
    cg_cols = cols.reshape(n, group, cg, k, oh, ow)
    y = np.einsum("gock,ngckhw->ngohw", wg, cg_cols).reshape(n, oc, oh, ow)
    if b is not None:
        y = y + b.astype(np.float64)[None, :, None, None]
    return y.astype(x.dtype)
