"""Pooling kernels: MaxPool (with Indices), AveragePool, LpPool and their global forms.

A pool is a loop over the kernel's taps (9 for 3x3), each one elementwise op over the whole
output through a strided window view -- never a loop over output pixels.
"""
import math

import numpy as np

from engine.ops.nn import pool_out, resolve_pads

from .kernels import kernel
from .kernels_conv import windows


def _geometry(node, x):
    ksz = list(node.attrs["kernel_shape"])
    nd = len(ksz)
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    pads = resolve_pads(node, x.shape[2:], ksz, strides, dil)
    out = pool_out(node, [], x.shape, ksz)
    return ksz, strides, dil, pads, out


def _taps(node, x, fill):
    """Yield (tap index, strided view of that tap over every output position), plus geometry."""
    ksz, strides, dil, pads, out = _geometry(node, x)
    nd = len(ksz)
    # Ceil mode can let the last window run past the end pad: pad far enough for it.
    end = [max(pads[i + nd], (o - 1) * s + (k - 1) * d + 1 - x.shape[2 + i] - pads[i])
           for i, (o, s, k, d) in enumerate(zip(out, strides, ksz, dil))]
    width = [(0, 0), (0, 0)] + list(zip(pads[:nd], end))
    xp = np.pad(x, width, constant_values=fill) if any(pads[:nd]) or any(end) else x
    win = windows(xp, ksz, strides, dil, out)
    geo = (ksz, strides, dil, pads, out)
    return ((t, win[(Ellipsis, *t)]) for t in np.ndindex(*ksz)), geo


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


@kernel("MaxPool")
def max_pool(node, x):
    lowest = _lowest(x.dtype)
    taps, (ksz, strides, dil, pads, out) = _taps(node, x, lowest)
    want_indices = len(node.outputs) > 1 and bool(node.outputs[1])
    # NaN propagates (IEEE max); ties keep the first tap's index
    y = np.full(x.shape[:2] + tuple(out), lowest, dtype=x.dtype)
    best = np.zeros(y.shape, dtype=np.int64) if want_indices else None
    for k, (_, v) in enumerate(taps):
        if want_indices:
            best[v > y] = k
        np.maximum(y, v, out=y)
    if not want_indices:
        return y
    return y, _flat_indices(node, x.shape, best, ksz, strides, dil, pads, out)


def _flat_indices(node, shape, best, ksz, strides, dil, pads, out):
    """Tap numbers -> flat input indices over N*C*D1*..., row- or column-major spatially."""
    nd = len(ksz)
    taps = np.unravel_index(best, ksz)
    coords = []
    for i in range(nd):
        o = np.arange(out[i]).reshape([-1 if j == i else 1 for j in range(nd)])
        coords.append(o * strides[i] - pads[i] + taps[i] * dil[i])
    spatial = shape[2:]
    if node.attrs.get("storage_order", 0):  # column-major: the last spatial axis varies slowest
        flat = np.ravel_multi_index(coords[::-1], spatial[::-1], mode="clip")
    else:
        flat = np.ravel_multi_index(coords, spatial, mode="clip")
    nc = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[0], shape[1], *[1] * nd)
    return nc * math.prod(spatial) + flat


def _window_sum(node, x, power=None):
    taps, geo = _taps(node, x, 0)
    y = None
    for _, v in taps:
        v = v if power is None else np.abs(v) ** power
        y = v.copy() if y is None else np.add(y, v, out=y)
    return y, geo


@kernel("AveragePool")
def average_pool(node, x):
    y, (ksz, strides, dil, pads, out) = _window_sum(node, x)
    nd = len(ksz)
    include = node.attrs.get("count_include_pad", 0)
    count = np.ones([1] * nd, dtype=np.int64)
    for i in range(nd):
        n_in = x.shape[2 + i]
        pos = (np.arange(out[i])[:, None] * strides[i] - pads[i]
               + np.arange(ksz[i])[None, :] * dil[i])
        lo, hi = (-pads[i], n_in + pads[i + nd]) if include else (0, n_in)
        c = ((pos >= lo) & (pos < hi)).sum(axis=1)
        count = count * c.reshape([-1 if j == i else 1 for j in range(nd)])
    y /= np.maximum(count, 1).astype(y.dtype)
    return y


@kernel("LpPool")
def lp_pool(node, x):
    p = node.attrs.get("p", 2)
    y, _ = _window_sum(node, x, p)
    return (y ** (1.0 / p)).astype(x.dtype, copy=False)


def _spatial(x):
    return tuple(range(2, x.ndim))


@kernel("GlobalAveragePool")
def global_average_pool(node, x):
    return x.mean(axis=_spatial(x), keepdims=True, dtype=x.dtype)


@kernel("GlobalMaxPool")
def global_max_pool(node, x):
    return x.max(axis=_spatial(x), keepdims=True)


@kernel("GlobalLpPool")
def global_lp_pool(node, x):
    p = node.attrs.get("p", 2)
    s = (np.abs(x) ** p).sum(axis=_spatial(x), keepdims=True, dtype=x.dtype)
    return (s ** (1.0 / p)).astype(x.dtype, copy=False)
