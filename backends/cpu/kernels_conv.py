"""Convolution and matrix kernels: Conv, ConvTranspose, MatMul, Gemm.

Conv is im2col + GEMM: a strided window view of the padded input (no copy), gathered once into
columns and multiplied by every group's weights in one batched matmul. Depthwise convolution
skips the columns and accumulates one multiply-add per kernel tap over the whole tensor.
All four apply the fused activation the optimizer may attach (after the bias).
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.errors import ShapeError
from engine.ops.nn import conv_geometry, conv_out_dim

from .kernels import kernel
from .kernels_common import attr_str, fail
from .kernels_unary import fused_activation

# Above this many bytes of im2col columns, Conv runs in bands of output rows.
_COLS_BUDGET = 64 << 20


def pad_spatial(x, pads, value=0):
    """Pad the spatial axes (2...) of an NC... tensor by begin/end pads, ONNX order."""
    nd = x.ndim - 2
    if not any(pads):
        return x
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    return np.pad(x, width, constant_values=value)


def windows(xp, kernel_shape, strides, dil, out):
    """(N, C, *out, *kernel) view of padded input `xp`: element [.., o, k] = xp[.., o*s + k*d]."""
    nd = len(kernel_shape)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dil)]
    v = sliding_window_view(xp, spans, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None),) * 2 + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, strides)) \
        + tuple(slice(None, None, d) for d in dil)
    return v[sl]


def _conv_gemm(win, w, group):
    """Grouped im2col GEMM: win (N, C, *O, *K), w (M, C/group, *K) -> (N, M, *O)."""
    n, c = win.shape[:2]
    nd = (win.ndim - 2) // 2
    out, ksz = win.shape[2:2 + nd], win.shape[2 + nd:]
    m, cg = w.shape[:2]
    kp, op = math.prod(ksz), math.prod(out)
    grouped = win.reshape(n, group, cg, *out, *ksz)
    order = (0, 1, 2) + tuple(range(3 + nd, 3 + 2 * nd)) + tuple(range(3, 3 + nd))
    cols = grouped.transpose(order).reshape(n, group, cg * kp, op)  # the one copy
    y = np.matmul(w.reshape(group, m // group, cg * kp), cols)
    return y.reshape(n, m, *out)


def _conv_depthwise(win, w):
    """group == C_in: out[n, c*mult + j] = sum_k win[n, c, .., k] * w[c*mult + j, 0, k]."""
    n, c = win.shape[:2]
    nd = (win.ndim - 2) // 2
    out, ksz = win.shape[2:2 + nd], win.shape[2 + nd:]
    mult = w.shape[0] // c
    wk = w.reshape(c, mult, -1)
    y = np.zeros((n, c, mult, *out), dtype=np.result_type(win.dtype, w.dtype))
    tmp = np.empty_like(y)
    for t, tap in enumerate(np.ndindex(*ksz)):
        np.multiply(win[(Ellipsis, *tap)][:, :, None], wk[:, :, t].reshape(c, mult, *[1] * nd), out=tmp)
        y += tmp
    return y.reshape(n, c * mult, *out)


@kernel("Conv")
def conv(node, x, w, b=None):
    group = node.attrs.get("group", 1)
    if x.ndim < 3 or w.ndim != x.ndim or x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise fail(node, f"input {x.shape} does not fit weight {w.shape} with group {group}", ShapeError)
    ksz = w.shape[2:]
    nd = len(ksz)
    strides, dil, pads = conv_geometry(node, x.shape, ksz)
    out = [conv_out_dim(x.shape[2 + i], ksz[i], strides[i], dil[i], pads[i], pads[i + nd])
           for i in range(nd)]
    if min(out) <= 0:
        raise fail(node, f"kernel {ksz} does not fit the padded input {x.shape}", ShapeError)
    xp = pad_spatial(x, pads)
    win = windows(xp, ksz, strides, dil, out)
    if group == x.shape[1] and w.shape[1] == 1 and group > 1:
        y = _conv_depthwise(win, w)
    elif math.prod(ksz) == 1 and xp is x and all(s == 1 for s in strides):
        # pointwise: the input already is the column matrix
        y = np.matmul(w.reshape(group, -1, w.shape[1]), x.reshape(x.shape[0], group, w.shape[1], -1))
        y = y.reshape(x.shape[0], w.shape[0], *out)
    else:
        row_bytes = win.size // out[0] * w.itemsize
        band = max(1, _COLS_BUDGET // max(row_bytes, 1))
        if band >= out[0]:
            y = _conv_gemm(win, w, group)
        else:
            y = np.concatenate([_conv_gemm(win[:, :, r:r + band], w, group)
                                for r in range(0, out[0], band)], axis=2)
    if b is not None:
        y += b.reshape(-1, *[1] * nd)
    return fused_activation(node, y)


def _transpose_geometry(node, in_sp, ksz, strides, dil):
    """(output spatial size, begin crop) per axis of a ConvTranspose, as the ONNX spec defines."""
    nd = len(ksz)
    outpad = list(node.attrs.get("output_padding", [0] * nd))
    full = [s * (i - 1) + op + (k - 1) * d + 1 for i, k, s, d, op in zip(in_sp, ksz, strides, dil, outpad)]
    auto = attr_str(node, "auto_pad", "NOTSET")
    if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        out = list(node.attrs["output_shape"])[-nd:] if "output_shape" in node.attrs \
            else [i * s for i, s in zip(in_sp, strides)]
        total = [f - o for f, o in zip(full, out)]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return out, begin
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    return [f - pads[i] - pads[i + nd] for i, f in enumerate(full)], pads[:nd]


@kernel("ConvTranspose")
def conv_transpose(node, x, w, b=None):
    n, c = x.shape[:2]
    in_sp, ksz = x.shape[2:], w.shape[2:]
    nd = len(ksz)
    group = node.attrs.get("group", 1)
    if x.ndim < 3 or w.ndim != x.ndim or w.shape[0] != c or c % group:
        raise fail(node, f"input {x.shape} does not fit weight {w.shape} with group {group}", ShapeError)
    mg = w.shape[1]
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    out, begin = _transpose_geometry(node, in_sp, ksz, strides, dil)
    kp = math.prod(ksz)
    # cols[n, m, k.., i..]: the contribution of input pixel i through kernel tap k.
    wg = w.reshape(group, c // group, mg * kp).transpose(0, 2, 1)
    cols = np.matmul(wg, x.reshape(n, group, c // group, -1)).reshape(n, group * mg, *ksz, *in_sp)
    # Scatter-add every tap into a buffer big enough for the crop window [begin, begin + out).
    lo = [min(0, bg) for bg in begin]
    size = [max(s * (i - 1) + (k - 1) * d + 1, bg + o) - l
            for i, k, s, d, bg, o, l in zip(in_sp, ksz, strides, dil, begin, out, lo)]
    buf = np.zeros((n, group * mg, *size), dtype=cols.dtype)
    for tap in np.ndindex(*ksz):
        dst = tuple(slice(t * d - l, t * d - l + s * (i - 1) + 1, s)
                    for t, d, l, s, i in zip(tap, dil, lo, strides, in_sp))
        buf[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *tap)]
    y = buf[(slice(None), slice(None), *(slice(bg - l, bg - l + o) for bg, l, o in zip(begin, lo, out)))]
    y = np.ascontiguousarray(y)
    if b is not None:
        y += b.reshape(-1, *[1] * nd)
    return fused_activation(node, y)


@kernel("MatMul")
def matmul(node, a, b, bias=None):
    y = np.asarray(np.matmul(a, b))
    if bias is not None:
        y = np.add(y, bias, out=y) if np.broadcast_shapes(y.shape, bias.shape) == y.shape else y + bias
    return fused_activation(node, y)


@kernel("Gemm")
def gemm(node, a, b, c=None):
    a = a.T if node.attrs.get("transA", 0) else a
    b = b.T if node.attrs.get("transB", 0) else b
    y = a @ b
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = (y * alpha).astype(y.dtype, copy=False)
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else (c * beta).astype(c.dtype, copy=False))
    return fused_activation(node, y)
