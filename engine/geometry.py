"""Geometry: data-movement ops lowered, at resize, to strided region copies (MNN's "raster").

Transpose, Slice, Concat, Split, Pad (constant), Tile, Expand, DepthToSpace, SpaceToDepth,
Gather with known indices and the Reshape family all become a list of Regions:

    for every index i (0 <= i[k] < size[k], up to MAX_DIMS dims):
        out[dst][dst_offset + sum(i[k] * dst_strides[k])] = in[src][src_offset + sum(i[k] * src_strides[k])]

in elements, after an optional fill of an output with a constant. A GPU backend then needs one
region-copy kernel for all of them. `apply_numpy` is the reference used by tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import const_ints, norm_axis
from .ops.layout import slice_params, split_sizes

MAX_DIMS = 6
MAX_REGIONS = 64  # beyond this (e.g. Gather of many indices) a dedicated kernel is better


@dataclass
class Region:
    src: int            # input index
    dst: int            # output index
    size: tuple
    src_offset: int
    src_strides: tuple
    dst_offset: int
    dst_strides: tuple

    def padded(self, ndim=MAX_DIMS):
        """size/strides left-padded with unit dims to exactly ndim entries."""
        k = ndim - len(self.size)
        return ((1,) * k + tuple(self.size), (0,) * k + tuple(self.src_strides),
                (0,) * k + tuple(self.dst_strides))


@dataclass
class Raster:
    regions: list
    fills: dict  # output index -> constant written over the whole output first


def strides_of(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= int(d)
    return tuple(reversed(out))


def broadcast_strides(shape, out_shape):
    """Element strides of a contiguous `shape` read as `out_shape` (0 along broadcast dims)."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out_shape, strides_of(shape))]


def merge_dims(sizes, *strides):
    """Drop unit dims and merge neighbours that every operand walks contiguously:
    (sizes, [strides per operand]) with at least one dim."""
    dims = [(d, [s[k] for s in strides]) for k, d in enumerate(sizes) if d != 1]
    out = []
    for d, st in dims:
        if out and all(ps == s * d for ps, s in zip(out[-1][1], st)):
            out[-1] = (out[-1][0] * d, st)
        else:
            out.append((d, st))
    if not out:
        out = [(1, [0] * len(strides))]
    return [d for d, _ in out], [[st[k] for _, st in out] for k in range(len(strides))]


def simplify(size, src_strides, dst_strides):
    """merge_dims for one source and one destination, as tuples."""
    size, (src, dst) = merge_dims(size, src_strides, dst_strides)
    return tuple(size), tuple(src), tuple(dst)


def _region(src, dst, size, so, ss, do, ds):
    size, ss, ds = simplify(size, ss, ds)
    return Region(src, dst, size, int(so), ss, int(do), ds)


def _lower_reshape(node, ins, outs):
    n = int(np.prod(outs[0].shape))
    return Raster([_region(0, 0, (n,), 0, (1,), 0, (1,))], {})


def _lower_transpose(node, ins, outs):
    shape = ins[0].shape
    perm = node.attrs.get("perm") or list(range(len(shape)))[::-1]
    st = strides_of(shape)
    return Raster([_region(0, 0, outs[0].shape, 0, [st[p] for p in perm], 0, strides_of(outs[0].shape))], {})


def _lower_slice(node, ins, outs):
    shape = ins[0].shape
    st = strides_of(shape)
    sl = slice_params(node, ins)
    offset, sst = 0, []
    for k, s in enumerate(sl):
        start, step = (s.start, s.step) if s.start is not None else (0, 1)
        offset += start * st[k]
        sst.append(st[k] * step)
    return Raster([_region(0, 0, outs[0].shape, offset, sst, 0, strides_of(outs[0].shape))], {})


def _lower_concat(node, ins, outs):
    out = outs[0].shape
    axis = norm_axis(node, ins, node.attrs["axis"], len(out))
    ost = strides_of(out)
    regions, at = [], 0
    for k, i in enumerate(ins):
        if i is None or int(np.prod(i.shape)) == 0:
            continue
        regions.append(_region(k, 0, i.shape, 0, strides_of(i.shape), at * ost[axis], ost))
        at += i.shape[axis]
    return Raster(regions, {})


def _lower_split(node, ins, outs):
    axis, sizes = split_sizes(node, ins)
    st = strides_of(ins[0].shape)
    regions, at = [], 0
    for k, o in enumerate(outs):
        if o is not None and sizes[k]:
            regions.append(_region(0, k, o.shape, at * st[axis], st, 0, strides_of(o.shape)))
        at += sizes[k]
    return Raster(regions, {})


def _lower_pad(node, ins, outs):
    mode = node.attrs.get("mode", "constant")
    if mode != "constant":
        return None
    shape, out = ins[0].shape, outs[0].shape
    pads = const_ints(node, ins, 1, "pads")
    rank = len(shape)
    axes = const_ints(node, ins, 3, "axes") if len(ins) > 3 else None
    axes = [norm_axis(node, ins, a, rank) for a in (axes or range(rank))]
    begin = [0] * rank
    for k, a in enumerate(axes):
        begin[a] = pads[k]
    value = 0.0
    if len(ins) > 2 and ins[2] is not None:
        if ins[2].value is None:
            return None
        value = np.asarray(ins[2].value).reshape(-1)[0].item() if np.asarray(ins[2].value).size else 0.0
    # negative pads crop: start inside the input
    src_off = sum(max(-b, 0) * s for b, s in zip(begin, strides_of(shape)))
    ost = strides_of(out)
    dst_off = sum(max(b, 0) * s for b, s in zip(begin, ost))
    size = [min(d - max(-b, 0), o - max(b, 0)) for d, o, b in zip(shape, out, begin)]
    regions = [_region(0, 0, size, src_off, strides_of(shape), dst_off, ost)] if min(size, default=1) > 0 else []
    return Raster(regions, {0: value})


def _lower_tile(node, ins, outs):
    shape = ins[0].shape
    reps = const_ints(node, ins, 1, "repeats")
    st, ost = strides_of(shape), strides_of(outs[0].shape)
    size, ss, ds = [], [], []
    for d, r, s, o in zip(shape, reps, st, ost):
        size += [r, d]
        ss += [0, s]
        ds += [d * o, o]
    return Raster([_region(0, 0, size, 0, ss, 0, ds)], {})


def _lower_expand(node, ins, outs):
    out = outs[0].shape
    shape = (1,) * (len(out) - len(ins[0].shape)) + tuple(ins[0].shape)
    st = strides_of(shape)
    ss = [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out, st)]
    return Raster([_region(0, 0, out, 0, ss, 0, strides_of(out))], {})


def _lower_depth_to_space(node, ins, outs):
    n, c, h, w = ins[0].shape
    b = node.attrs["blocksize"]
    c2 = c // (b * b)
    if node.attrs.get("mode", "DCR") == "DCR":
        src6, perm = (n, b, b, c2, h, w), (0, 3, 4, 1, 5, 2)
    else:
        src6, perm = (n, c2, b, b, h, w), (0, 1, 4, 2, 5, 3)
    st = strides_of(src6)
    size = [src6[p] for p in perm]
    return Raster([_region(0, 0, size, 0, [st[p] for p in perm], 0, strides_of(size))], {})


def _lower_space_to_depth(node, ins, outs):
    n, c, h, w = ins[0].shape
    b = node.attrs["blocksize"]
    src6 = (n, c, h // b, b, w // b, b)
    perm = (0, 3, 5, 1, 2, 4) if node.attrs.get("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    st = strides_of(src6)
    size = [src6[p] for p in perm]
    return Raster([_region(0, 0, size, 0, [st[p] for p in perm], 0, strides_of(size))], {})


def _lower_gather(node, ins, outs):
    if ins[1].value is None:
        return None
    idx = np.asarray(ins[1].value).reshape(-1)
    if idx.size > MAX_REGIONS:
        return None
    shape = ins[0].shape
    axis = norm_axis(node, ins, node.attrs.get("axis", 0), len(shape))
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    dim = shape[axis]
    regions = []
    for k, i in enumerate(idx):
        i = int(i) + (dim if i < 0 else 0)
        if not 0 <= i < dim:
            return None  # out of range: the CPU kernel reports it
        regions.append(_region(0, 0, (outer, inner), i * inner, (dim * inner, 1),
                               k * inner, (idx.size * inner, 1)))
    return Raster(regions, {})


LOWERINGS = {
    "Reshape": _lower_reshape, "Flatten": _lower_reshape, "Squeeze": _lower_reshape,
    "Unsqueeze": _lower_reshape, "Identity": _lower_reshape,
    "Transpose": _lower_transpose, "Slice": _lower_slice, "Concat": _lower_concat,
    "Split": _lower_split, "Pad": _lower_pad, "Tile": _lower_tile, "Expand": _lower_expand,
    "DepthToSpace": _lower_depth_to_space, "SpaceToDepth": _lower_space_to_depth,
    "Gather": _lower_gather,
}


def lower(node, ins, outs) -> Raster | None:
    """The node as region copies for these shapes, or None when it does not lower
    (Pad reflect/edge, Gather of many or data-dependent indices, more than MAX_DIMS dims)."""
    fn = LOWERINGS.get(node.op)
    if fn is None:
        return None
    raster = fn(node, ins, outs)
    if raster is None or any(len(r.size) > MAX_DIMS for r in raster.regions):
        return None
    return raster


def apply_numpy(raster: Raster, inputs: list, outputs: list):
    """Reference implementation on flat numpy arrays (used by tests and as documentation)."""
    for k, v in raster.fills.items():
        outputs[k][...] = v
    for r in raster.regions:
        src, dst = inputs[r.src].reshape(-1), outputs[r.dst].reshape(-1)
        isz = src.itemsize
        sv = np.lib.stride_tricks.as_strided(src[r.src_offset:], r.size, [s * isz for s in r.src_strides])
        dv = np.lib.stride_tricks.as_strided(dst[r.dst_offset:], r.size, [s * isz for s in r.dst_strides])
        dv[...] = sv
