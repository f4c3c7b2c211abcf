"""MatMul + bias: MatMul followed by Add of a constant vector over the last dim becomes MatMul
with a third input, the bias (N,) -- the shape Gemm lowering and every Linear layer produce.

A Conv's bias Add is handled by fold_batchnorm, which folds any per-channel affine chain.
The Add must not broadcast the product to a bigger shape: the constant varies along the last
dim only and has no more dims than B.
"""
from __future__ import annotations

import numpy as np

from .rewrite import Rewrite, count


def fuse_bias(graph):
    rw = Rewrite(graph)
    fused = 0
    for node in list(rw.g.nodes):
        if node.op != "MatMul" or len(node.inputs) != 2 or node.attrs.get("activation"):
            continue
        add = rw.sole_consumer(node.outputs[0], "Add")
        if add is None or add.inputs[0] == add.inputs[1]:
            continue
        bias = _bias_vector(rw, node, rw.const(rw.other(add, node.outputs[0])))
        if bias is None:
            continue
        node.inputs = node.inputs + [rw.add_constant(f"{node.name}_bias", bias)]
        rw.absorb(node, add)
        fused += 1
    return rw.finish(), count(fused, "Add into MatMul bias", "fused")


def _bias_vector(rw, matmul, c):
    b_shape = rw.static_shape(matmul.inputs[1])
    if c is None or c.dtype.kind != "f" or b_shape is None or len(b_shape) < 2:
        return None
    b = rw.g.values.get(matmul.inputs[1])
    if b is not None and b.dtype is not None and b.dtype != c.dtype:
        return None
    n = b_shape[-1]
    if c.ndim > len(b_shape) or any(d != 1 for d in c.shape[:-1]) or (c.ndim and c.shape[-1] not in (1, n)):
        return None
    return np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (n,)))
