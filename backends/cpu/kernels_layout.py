"""Data-movement kernels: reshapes, Transpose, Slice, Concat, Split, Pad, Tile, Expand,
DepthToSpace and SpaceToDepth.

Outputs may be views of the inputs (Reshape, Squeeze, Slice...): kernels never write into
their inputs, and the executor copies a view where it needs memory of its own.
"""
import math

import numpy as np

from engine.errors import ShapeError, UnsupportedOpError
from engine.ops import check_size

from .kernels import kernel
from .kernels_common import attr_str, axis_of, fail, ints, scalar


@kernel("Reshape")
def reshape(node, x, shape):
    target = ints(shape)
    if not node.attrs.get("allowzero", 0):
        target = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(target)]
    try:
        return x.reshape(target)
    except ValueError:
        raise fail(node, f"cannot reshape {x.shape} into {tuple(target)}", ShapeError) from None


@kernel("Flatten")
def flatten(node, x):
    axis = node.attrs.get("axis", 1)
    axis = axis_of(node, axis + x.ndim if axis < 0 else axis, x.ndim + 1)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@kernel("Squeeze")
def squeeze(node, x, axes=None):
    if axes is None:
        return np.squeeze(x)
    axes = tuple(axis_of(node, a, x.ndim) for a in ints(axes))
    if any(x.shape[a] != 1 for a in axes):
        raise fail(node, f"cannot squeeze axes {axes} of shape {x.shape}", ShapeError)
    return np.squeeze(x, axis=axes)


@kernel("Unsqueeze")
def unsqueeze(node, x, axes):
    rank = x.ndim + axes.size
    return np.expand_dims(x, tuple(axis_of(node, a, rank) for a in ints(axes)))


@kernel("Transpose")
def transpose(node, x):
    perm = node.attrs.get("perm") or list(range(x.ndim))[::-1]
    return np.transpose(x, perm)


@kernel("Slice")
def slice_(node, x, starts, ends, axes=None, steps=None):
    starts, ends = ints(starts), ints(ends)
    axes = ints(axes) if axes is not None else list(range(len(starts)))
    steps = ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise fail(node, "slice step 0", ShapeError)
        a = axis_of(node, a, x.ndim)
        start, stop, step = slice(s, e, st).indices(x.shape[a])
        # indices() clamps a backward stop to -1 ("before 0"); numpy would read -1 as the end.
        index[a] = slice(start, None if stop < 0 else stop, step)
    return x[tuple(index)]


@kernel("Concat")
def concat(node, *xs):
    xs = [v for v in xs if v is not None]
    return np.concatenate(xs, axis=axis_of(node, node.attrs["axis"], xs[0].ndim))


@kernel("Split")
def split(node, x, sizes=None):
    axis = axis_of(node, node.attrs.get("axis", 0), x.ndim)
    n = len(node.outputs)
    dim = x.shape[axis]
    sizes = ints(sizes) if sizes is not None and sizes.size else None
    if sizes is None:
        num = node.attrs.get("num_outputs", n)
        chunk = -(-dim // num)
        sizes = [max(0, min(chunk, dim - chunk * k)) for k in range(num)]
    if sum(sizes) != dim or len(sizes) != n:
        raise fail(node, f"split sizes {sizes} do not cover {dim} in {n} outputs", ShapeError)
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@kernel("Pad")
def pad(node, x, pads, value=None, axes=None):
    mode = attr_str(node, "mode", "constant")
    if mode not in _PAD_MODES:
        raise UnsupportedOpError(f"node '{node.name}' (Pad): unknown mode '{mode}'")
    axes = [axis_of(node, a, x.ndim) for a in ints(axes)] if axes is not None else list(range(x.ndim))
    p = ints(pads)
    if len(p) != 2 * len(axes):
        raise fail(node, f"{len(p)} pads for {len(axes)} axes", ShapeError)
    width = [[0, 0] for _ in range(x.ndim)]
    for k, a in enumerate(axes):
        width[a] = [p[k], p[k + len(axes)]]
    # Negative pads crop first (as ONNX Runtime does), then the rest pads.
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(width))
    x = x[crop]
    width = [(max(0, b), max(0, e)) for b, e in width]
    if not any(b or e for b, e in width):
        return x
    if mode == "constant":
        return np.pad(x, width, constant_values=x.dtype.type(scalar(value, 0)))
    if mode in ("reflect", "wrap", "edge") and 0 in x.shape:
        raise fail(node, f"cannot pad an empty tensor {x.shape} in mode '{mode}'", ShapeError)
    return np.pad(x, width, mode=_PAD_MODES[mode])


@kernel("Tile")
def tile(node, x, repeats):
    reps = ints(repeats)
    if len(reps) != x.ndim or min(reps, default=0) < 0:
        raise fail(node, f"repeats {reps} must be {x.ndim} non-negative counts", ShapeError)
    out = [d * r for d, r in zip(x.shape, reps)]
    check_size(node, out, x.dtype)
    return np.tile(x, reps) if min(out, default=1) else np.empty(out, x.dtype)  # (np.tile may blow up first)


@kernel("Expand")
def expand(node, x, shape):
    try:
        out = np.broadcast_shapes(x.shape, tuple(ints(shape)))
        check_size(node, out, x.dtype)
        return np.broadcast_to(x, out)
    except ValueError:
        raise fail(node, f"cannot expand {x.shape} to {tuple(ints(shape))}", ShapeError) from None


@kernel("CenterCropPad")
def center_crop_pad(node, x, shape):
    axes = [axis_of(node, a, x.ndim) for a in node.attrs.get("axes") or range(x.ndim)]
    target = list(x.shape)
    for a, s in zip(axes, ints(shape)):
        target[a] = s
    # the centered window: cropped where the input is larger, zero-padded where it is smaller
    src = tuple(slice((d - t) // 2, (d - t) // 2 + t) if t < d else slice(None)
                for d, t in zip(x.shape, target))
    dst = tuple(slice((t - d) // 2, (t - d) // 2 + d) if t > d else slice(None)
                for d, t in zip(x.shape, target))
    out = np.zeros(target, dtype=x.dtype)
    out[dst] = x[src]
    return out


@kernel("DepthToSpace")
def depth_to_space(node, x):
    b = node.attrs["blocksize"]
    n, c, h, w = x.shape
    if attr_str(node, "mode", "DCR") == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("SpaceToDepth")
def space_to_depth(node, x):
    b = node.attrs["blocksize"]
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    # the inverse of DepthToSpace: DCR puts the block offset before the channel, CRD after
    crd = attr_str(node, "mode", "DCR") == "CRD"
    y = y.transpose(0, 1, 3, 5, 2, 4) if crd else y.transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)
