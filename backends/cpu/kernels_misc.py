"""Kernels that make tensors from shapes or scalars -- Shape, Size, ConstantOfShape, Range,
EyeLike -- the scans CumSum/CumProd and Unique, and Det."""
import numpy as np

from engine.onnx_types import onnx_dtype
from engine.ops import check_size

from .kernels import kernel
from .kernels_common import axis_of, fail, ints, scalar


@kernel("Shape")
def shape(node, x):
    end = node.attrs.get("end")
    return np.array(x.shape[node.attrs.get("start", 0):end], dtype=np.int64)


@kernel("Size")
def size(node, x):
    return np.array(x.size, dtype=np.int64)


@kernel("ConstantOfShape")
def constant_of_shape(node, shape):
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dims = ints(shape)
    if any(d < 0 for d in dims):
        raise fail(node, f"negative dimension in shape {dims}")
    check_size(node, dims, value.dtype)
    return np.full(dims, value[0], dtype=value.dtype)


@kernel("Range")
def range_(node, start, limit, delta):
    dt = start.dtype
    s, lim, d = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
    if d == 0:
        raise fail(node, "Range delta is 0")
    n = max(int(np.ceil((float(lim) - float(s)) / float(d))), 0)
    check_size(node, (n,), dt)
    return (s + np.arange(n, dtype=dt) * d).astype(dt, copy=False)


@kernel("EyeLike")
def eye_like(node, x):
    dt = onnx_dtype(node.attrs["dtype"]) if "dtype" in node.attrs else x.dtype
    return np.eye(x.shape[0], x.shape[1], k=node.attrs.get("k", 0), dtype=dt)


@kernel("CumSum", "CumProd")
def cumulative(node, x, axis):
    a = axis_of(node, int(scalar(axis, 0)), x.ndim)
    y = np.flip(x, a) if node.attrs.get("reverse", 0) else x
    scan, identity = (np.cumsum, 0) if node.op == "CumSum" else (np.cumprod, 1)
    out = scan(y, axis=a, dtype=x.dtype)
    if node.attrs.get("exclusive", 0):
        out = np.roll(out, 1, axis=a)
        out[(slice(None),) * a + (0,)] = identity
    return np.flip(out, a) if node.attrs.get("reverse", 0) else out


@kernel("Det")
def det(node, x):
    return np.linalg.det(x).astype(x.dtype, copy=False)


@kernel("Unique")
def unique(node, x):
    axis = node.attrs.get("axis")
    axis = None if axis is None else axis_of(node, axis, x.ndim)
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True,
                                          return_counts=True, axis=axis)
    if not node.attrs.get("sorted", 1):  # order of first occurrence instead of sorted
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    outs = (y, first.astype(np.int64), inverse.reshape(-1).astype(np.int64), counts.astype(np.int64))
    return outs[:max(1, len(node.outputs))] if len(node.outputs) > 1 else y
