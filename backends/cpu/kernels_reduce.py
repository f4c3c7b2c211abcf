"""Reductions (Reduce*, with axes as input 1), ArgMax/ArgMin, TopK and Einsum.

Sums keep the input's dtype (numpy would widen int32 to int64 and is told not to).
"""
import numpy as np

from .kernels import kernel
from .kernels_common import attr_str, axis_of, fail, ints, scalar


def _acc(x):
    """Accumulator dtype: float16 sums in float32, everything else in its own dtype."""
    return np.float32 if x.dtype == np.float16 else x.dtype


def _sum(x, axis, keep):
    return np.sum(x, axis=axis, keepdims=keep, dtype=_acc(x)).astype(x.dtype, copy=False)


def _extreme(dtype, sign):
    """The identity of max (sign -1) or min (sign +1) over an empty set, as ONNX defines it."""
    if dtype == np.bool_:
        return sign > 0
    if dtype.kind == "f" or dtype.name.startswith(("float", "bfloat")):  # ml_dtypes' floats too
        return sign * np.inf
    info = np.iinfo(dtype)
    return info.max if sign > 0 else info.min


def _log_sum_exp(x, axis, keep):
    m = np.max(x, axis=axis, keepdims=True, initial=_extreme(x.dtype, -1))
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True, dtype=x.dtype)) + m
    return s if keep else np.squeeze(s, axis=axis)


_REDUCE = {
    "ReduceSum": _sum,
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k, dtype=_acc(x)).astype(x.dtype, copy=False),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_extreme(x.dtype, -1)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_extreme(x.dtype, 1)),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceL1": lambda x, a, k: _sum(np.abs(x), a, k),
    "ReduceL2": lambda x, a, k: np.sqrt(_sum(x * x, a, k)).astype(x.dtype, copy=False),
    "ReduceSumSquare": lambda x, a, k: _sum(x * x, a, k),
    "ReduceLogSum": lambda x, a, k: np.log(_sum(x, a, k)),
    "ReduceLogSumExp": _log_sum_exp,
}


@kernel(*_REDUCE)
def reduce(node, x, axes=None):
    listed = ints(axes)
    # noop_with_empty_axes reduces over no axis: ONNX Runtime and the reference evaluator still
    # apply the elementwise part (ReduceSumSquare gives x*x, ReduceLogSum log x...).
    if listed:
        axis = tuple(sorted({axis_of(node, a, x.ndim) for a in listed}))
    else:
        axis = () if node.attrs.get("noop_with_empty_axes", 0) else None
    keep = bool(node.attrs.get("keepdims", 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(_REDUCE[node.op](x, axis, keep))


@kernel("ArgMax", "ArgMin")
def arg_extreme(node, x):
    axis = axis_of(node, node.attrs.get("axis", 0), x.ndim)
    keep = bool(node.attrs.get("keepdims", 1))
    find = np.argmax if node.op == "ArgMax" else np.argmin
    if node.attrs.get("select_last_index", 0):
        i = x.shape[axis] - 1 - find(np.flip(x, axis), axis=axis, keepdims=keep)
    else:
        i = find(x, axis=axis, keepdims=keep)
    return np.asarray(i, dtype=np.int64)


@kernel("TopK")
def top_k(node, x, k):
    k = int(scalar(k, 0))
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise fail(node, f"K={k} is out of range for an axis of size {n}")
    # Stable sorts keep ties in index order (ONNX: the lower index first). For the largest,
    # sort the reversed axis ascending and read it backwards.
    if node.attrs.get("largest", 1):
        order = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
        idx = n - 1 - np.take(order, np.arange(k), axis=axis)
    else:
        idx = np.take(np.argsort(x, axis=axis, kind="stable"), np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


@kernel("Einsum")
def einsum(node, *xs):
    equation = attr_str(node, "equation", "").replace(" ", "")
    if any(x.dtype.kind == "V" for x in xs):  # bfloat16/float8 (ml_dtypes): numpy's einsum lacks them
        return einsum(node, *(x.astype(np.float32) for x in xs)).astype(xs[0].dtype)
    try:
        return np.asarray(np.einsum(equation, *xs, optimize=True))
    except ValueError as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise fail(node, f"equation '{equation}' does not fit inputs {shapes}: {e}") from None
