"""Shape rules of reductions and arg-reductions."""
import numpy as np

from . import TensorInfo, const_ints, norm_axis, same, schema

REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def reduce_axes(node, ins):
    """Normalized axes of a Reduce* node (newest form: axes is input 1), or None for all."""
    rank = len(ins[0].shape)
    axes = const_ints(node, ins, 1, "axes") if len(ins) > 1 else None
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return []
        return list(range(rank))
    return sorted({norm_axis(node, ins, a, rank) for a in axes})


@schema(*REDUCE)
def _reduce(node, ins):
    x = ins[0]
    axes = reduce_axes(node, ins)
    keep = node.attrs.get("keepdims", 1)
    out = [1 if i in axes else d for i, d in enumerate(x.shape)] if keep else \
        [d for i, d in enumerate(x.shape) if i not in axes]
    return [same(x, shape=out)]


@schema("ArgMax", "ArgMin")
def _arg(node, ins):
    x = ins[0]
    axis = norm_axis(node, ins, node.attrs.get("axis", 0), len(x.shape))
    keep = node.attrs.get("keepdims", 1)
    out = [1 if i == axis else d for i, d in enumerate(x.shape)] if keep else \
        [d for i, d in enumerate(x.shape) if i != axis]
    return [TensorInfo(tuple(out), np.dtype(np.int64))]


@schema("TopK")
def _topk(node, ins):
    x = ins[0]
    k = const_ints(node, ins, 1, "K")[0]
    axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(x.shape))
    out = list(x.shape)
    out[axis] = k
    return [same(x, shape=out), TensorInfo(tuple(out), np.dtype(np.int64))]


@schema("CumSum")
def _cumsum(node, ins):
    return [same(ins[0])]
