"""Indexing kernels: Gather*, Scatter*, OneHot, Compress, NonZero, Trilu, ReverseSequence.

Indices may be negative (counted from the end); an index out of range is an InputError naming
the node, never a numpy IndexError.
"""
import numpy as np

from .kernels import kernel
from .kernels_common import attr_str, axis_of, fail, scalar


def _checked(node, idx, dim, what="index"):
    """Indices with negatives wrapped, after checking every one lies in [-dim, dim)."""
    idx = np.asarray(idx).astype(np.int64, copy=False)
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        bad = idx[(idx < -dim) | (idx >= dim)].reshape(-1)[0]
        raise fail(node, f"{what} {bad} is out of range for a dimension of size {dim}")
    return np.where(idx < 0, idx + dim, idx)


def _element_index(idx, axis):
    """The full index tuple addressing data[.., idx[i..], ..] at every position of idx."""
    grids = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)])
    grids[axis] = idx
    return tuple(grids)


@kernel("Gather")
def gather(node, x, indices):
    axis = axis_of(node, node.attrs.get("axis", 0), x.ndim)
    return np.take(x, _checked(node, indices, x.shape[axis]), axis=axis)


@kernel("GatherElements")
def gather_elements(node, x, indices):
    axis = axis_of(node, node.attrs.get("axis", 0), x.ndim)
    return x[_element_index(_checked(node, indices, x.shape[axis]), axis)]


def _nd_index(node, x, indices, batch_dims=0):
    """GatherND/ScatterND addressing: (flattened batch, index tuple over the next k dims)."""
    k = indices.shape[-1]
    b = batch_dims
    if k > x.ndim - b:
        raise fail(node, f"index tuples of length {k} address more than the {x.ndim - b} "
                         f"non-batch dims of {x.shape}")
    cols = [_checked(node, indices[..., j], x.shape[b + j]) for j in range(k)]
    return k, cols


@kernel("GatherND")
def gather_nd(node, x, indices):
    b = node.attrs.get("batch_dims", 0)
    k, cols = _nd_index(node, x, indices, b)
    nb = int(np.prod(x.shape[:b], dtype=np.int64))
    data = x.reshape(nb, *x.shape[b:])
    flat = [c.reshape(nb, -1) for c in cols]
    out = data[(np.arange(nb)[:, None], *flat)]
    return out.reshape(*indices.shape[:-1], *x.shape[b + k:])


_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(node, out, index, updates):
    reduction = attr_str(node, "reduction", "none")
    if reduction == "none":
        out[index] = updates
    else:
        _REDUCTIONS[reduction].at(out, index, updates)
    return out


@kernel("ScatterElements")
def scatter_elements(node, x, indices, updates):
    axis = axis_of(node, node.attrs.get("axis", 0), x.ndim)
    index = _element_index(_checked(node, indices, x.shape[axis]), axis)
    return _scatter(node, x.copy(), index, updates)


@kernel("ScatterND")
def scatter_nd(node, x, indices, updates):
    _, cols = _nd_index(node, x, indices)
    return _scatter(node, x.copy(), tuple(cols), updates)


@kernel("OneHot")
def one_hot(node, indices, depth, values):
    depth = int(scalar(depth, 0))
    axis = axis_of(node, node.attrs.get("axis", -1), indices.ndim + 1)
    idx = np.asarray(indices)
    idx = np.where(idx < 0, idx + depth, idx)
    hot = idx[..., None] == np.arange(depth)  # out of range: all off
    off, on = values.reshape(-1)[0], values.reshape(-1)[1]
    return np.moveaxis(np.where(hot, on, off).astype(values.dtype), -1, axis)


@kernel("Compress")
def compress(node, x, condition):
    axis = node.attrs.get("axis")
    if axis is None:
        return np.compress(condition.astype(bool), x.reshape(-1))
    return np.compress(condition.astype(bool), x, axis=axis_of(node, axis, x.ndim))


@kernel("NonZero")
def nonzero(node, x):
    return np.array(np.nonzero(np.atleast_1d(x)), dtype=np.int64).reshape(max(x.ndim, 1), -1)


@kernel("Trilu")
def trilu(node, x, k=None):
    k = int(scalar(k, 0))
    return np.triu(x, k) if node.attrs.get("upper", 1) else np.tril(x, k)


@kernel("ReverseSequence")
def reverse_sequence(node, x, seq_lens):
    batch_axis = axis_of(node, node.attrs.get("batch_axis", 1), x.ndim)
    time_axis = axis_of(node, node.attrs.get("time_axis", 0), x.ndim)
    t = np.arange(x.shape[time_axis])[:, None]
    lens = seq_lens.astype(np.int64)[None, :]
    src = np.where(t < lens, lens - 1 - t, t)  # (time, batch): where each output row reads
    shape = [1] * x.ndim
    shape[time_axis], shape[batch_axis] = src.shape[0], src.shape[1]
    src = src.reshape(shape) if time_axis < batch_axis else src.T.reshape(shape)
    return np.take_along_axis(x, np.broadcast_to(src, x.shape), axis=time_axis)
