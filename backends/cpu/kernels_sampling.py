"""Spatial transformers: AffineGrid and GridSample (2-D and 3-D; nearest, linear, cubic; zeros,
border and reflection padding), vectorized over every output position.

GridSample follows PyTorch's grid_sampler, as ONNX does: grid values in [-1, 1] map to pixel
centres (align_corners=0) or corners (1); a coordinate outside the image is first clamped or
reflected (border/reflection padding), then each interpolation tap is padded again.
"""
from itertools import product

import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, fail, ints

CUBIC_A = -0.75


def _base(length, align):
    if align:
        return np.linspace(-1.0, 1.0, length)
    return (2 * np.arange(length) + 1) / length - 1


@kernel("AffineGrid")
def affine_grid(node, theta, size):
    dims = ints(size)
    nd = len(dims) - 2
    if nd not in (2, 3) or theta.shape != (dims[0], nd, nd + 1):
        raise fail(node, f"theta {theta.shape} does not fit size {dims} (needs (N, 2, 3) or (N, 3, 4))")
    align = node.attrs.get("align_corners", 0)
    axes = [_base(d, align) for d in dims[2:]]  # (D,) H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    # homogeneous points, x (the last spatial axis) first: (x, y[, z], 1)
    pts = np.stack([m for m in mesh[::-1]] + [np.ones_like(mesh[0])], axis=-1)
    grid = np.einsum("...k,nck->n...c", pts, theta.astype(np.float64))
    return grid.astype(theta.dtype)


def _reflect(x, lo, hi):
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dx = np.where(below, lo - x, x - hi)
    n = np.floor(dx / span)
    r = dx - n * span
    even = n % 2 == 0
    inside_low, inside_high = np.where(even, lo + r, hi - r), np.where(even, hi - r, lo + r)
    return np.where(below, inside_low, np.where(above, inside_high, x))


def _cubic(t):
    a = CUBIC_A
    return [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]


def _taps(x, size, mode, pad, lo, hi):
    """Per tap: (indices into the axis, weights, in-bounds mask)."""
    if mode == "nearest":
        first, weights = x, [np.ones_like(x)]
    elif mode == "linear":
        first = np.floor(x)
        t = x - first
        weights = [1 - t, t]
    else:
        first = np.floor(x) - 1
        weights = _cubic(x - np.floor(x))
    taps = []
    for k, w in enumerate(weights):
        i = first + k
        if pad == "border":
            i = np.clip(i, 0, size - 1)
        elif pad == "reflection":
            i = np.trunc(_reflect(i, lo, hi))
        valid = (i >= 0) & (i < size)
        taps.append((np.clip(i, 0, size - 1).astype(np.int64), w, valid))
    return taps


@kernel("GridSample")
def grid_sample(node, x, grid):
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(attr_str(node, "mode", "linear"),
                                                          attr_str(node, "mode", "linear"))
    pad = attr_str(node, "padding_mode", "zeros")
    if mode not in ("nearest", "linear", "cubic") or pad not in ("zeros", "border", "reflection"):
        raise UnsupportedOpError(f"node '{node.name}' (GridSample): mode '{mode}' / padding '{pad}' is not known")
    nd = x.ndim - 2
    if nd < 1 or grid.ndim != nd + 2 or grid.shape[-1] != nd or grid.shape[0] != x.shape[0]:
        raise fail(node, f"grid {grid.shape} does not fit input {x.shape}")
    align = node.attrs.get("align_corners", 0)
    dims = x.shape[2:]
    g = grid.astype(np.float64)
    per_axis = []
    for i, d in enumerate(dims):
        n = g[..., nd - 1 - i]  # grid lists x (the last axis) first
        c = (n + 1) / 2 * (d - 1) if align else ((n + 1) * d - 1) / 2
        if mode == "nearest":
            c = np.rint(c)
        lo, hi = (0.0, d - 1.0) if align else (-0.5, d - 0.5)
        if pad == "border":
            c = np.clip(c, 0, d - 1)
        elif pad == "reflection":
            c = _reflect(c, lo, hi)
        per_axis.append(_taps(c, d, mode, pad, lo, hi))
    xr = np.moveaxis(x, 1, -1).astype(np.float64)  # (N, *dims, C)
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * nd)
    out = np.zeros(grid.shape[:-1] + (x.shape[1],))
    for combo in product(*per_axis):
        idx = tuple(t[0] for t in combo)
        w = np.prod([t[1] for t in combo], axis=0)
        if pad == "zeros":
            w = w * np.all([t[2] for t in combo], axis=0)
        out += xr[(batch,) + idx] * w[..., None]
    return np.moveaxis(out, -1, 1).astype(x.dtype)
