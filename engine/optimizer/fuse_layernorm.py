"""LayerNorm: the decomposed form exporters write for opsets before 17 becomes one
"LayerNormalization" node (ONNX op: attrs axis, epsilon; inputs X, Scale, optional B):

    d = x - ReduceMean(x, axes)
    y = d / Sqrt(ReduceMean(d ^ 2, axes) + eps)  [* gamma]  [+ beta]

`axes` must be the trailing dims of x (keepdims=1), the same in both ReduceMeans. The Scale input
has the normalized shape exactly: gamma broadcast to it, or ones when the pattern has no Mul, so
the normalized dims must be known statically (from x's shape or a gamma that spells them out).
"""
from __future__ import annotations

import numpy as np

from .rewrite import Rewrite, count


def fuse_layernorm(graph):
    rw = Rewrite(graph)
    fused = 0
    for mean in list(rw.g.nodes):
        if mean.op != "ReduceMean" or id(mean) in rw.removed:
            continue
        match = _match(rw, mean)
        if match is None:
            continue
        x, k, eps, nodes, gamma, beta = match
        affine = _affine(rw, x, k, gamma, beta)
        if affine is None:
            continue
        scale, bias = affine
        inputs = [x, rw.add_constant(f"{nodes[-1].name}_scale", scale)]
        if bias is not None:
            inputs.append(rw.add_constant(f"{nodes[-1].name}_bias", bias))
        rw.replace(nodes, "LayerNormalization", inputs, f"{nodes[-1].name}_layernorm",
                   {"axis": -k, "epsilon": eps})
        fused += 1
    return rw.finish(), count(fused, "patterns into LayerNormalization", "fused")


def _trailing_axes(rw, node, x):
    """How many trailing dims a ReduceMean over x reduces (keepdims=1), or None."""
    if node.attrs.get("keepdims", 1) != 1 or len(node.inputs) < 2 or rw.const(node.inputs[1]) is None:
        return None
    axes = sorted(int(a) for a in rw.const(node.inputs[1]).reshape(-1))
    rank = rw.rank(x)
    if rank is not None:
        axes = sorted(a - rank if a >= 0 else a for a in axes)
    if not axes or axes != list(range(-len(axes), 0)) or (rank is not None and len(axes) > rank):
        return None
    return len(axes)


def _match(rw, mean):
    """(x, number of normalized dims, eps, pattern nodes, gamma node, beta node) or None."""
    x = mean.inputs[0]
    k = _trailing_axes(rw, mean, x)
    sub = rw.sole_consumer(mean.outputs[0], "Sub")
    if k is None or sub is None or sub.inputs != [x, mean.outputs[0]]:
        return None
    d = sub.outputs[0]
    readers = rw.consumers(d)
    square = next((n for n in readers if n.op == "Pow"), None)
    div = next((n for n in readers if n.op == "Div"), None)
    if len(readers) != 2 or square is None or div is None or d in rw.graph_outputs \
            or rw.scalar_arg(square, d, first=True) != 2.0 or div.inputs[0] != d:
        return None
    var = rw.sole_consumer(square.outputs[0], "ReduceMean")
    if var is None or _trailing_axes(rw, var, square.outputs[0]) != k:
        return None
    add = rw.sole_consumer(var.outputs[0], "Add")
    eps = rw.scalar_arg(add, var.outputs[0]) if add is not None else None
    sqrt = rw.sole_consumer(add.outputs[0], "Sqrt") if eps is not None else None
    if not rw.feeds_only(sqrt, div) or div.inputs[1] != sqrt.outputs[0]:
        return None
    nodes = [mean, sub, square, var, add, sqrt, div]
    gamma = rw.sole_consumer(div.outputs[0], "Mul")
    if gamma is not None and rw.const(rw.other(gamma, div.outputs[0])) is not None:
        nodes.append(gamma)
    else:
        gamma = None
    beta = rw.sole_consumer(nodes[-1].outputs[0], "Add")
    if beta is not None and rw.const(rw.other(beta, nodes[-1].outputs[0])) is not None:
        nodes.append(beta)
    else:
        beta = None
    return x, k, eps, nodes, gamma, beta


def _affine(rw, x, k, gamma, beta):
    """(scale, bias or None) in the normalized shape, or None when they would broadcast x."""
    g = _const_input(rw, gamma) if gamma else None
    b = _const_input(rw, beta) if beta else None
    rank = rw.rank(x)
    for c in (g, b):
        if c is not None and (c.ndim > (rank or k) or any(d != 1 for d in c.shape[:max(c.ndim - k, 0)])):
            return None
    shape = _normalized_shape(rw, x, k, g)
    if shape is None:
        return None
    dtype = rw.g.values[x].dtype if x in rw.g.values and rw.g.values[x].dtype is not None else np.float32
    try:
        scale = np.ones(shape, dtype) if g is None else _fit(g, k, shape, dtype)
        bias = None if b is None else _fit(b, k, shape, dtype)
    except ValueError:  # a constant that does not broadcast to the normalized shape
        return None
    return scale, bias


def _const_input(rw, node):
    return next(rw.const(i) for i in node.inputs if rw.const(i) is not None)


def _normalized_shape(rw, x, k, g):
    v = rw.g.values.get(x)
    dims = v.shape[-k:] if v is not None and v.shape is not None and len(v.shape) >= k else None
    if dims is not None and all(isinstance(d, (int, np.integer)) for d in dims):
        return tuple(int(d) for d in dims)
    if g is not None and g.ndim >= k and all(d != 1 for d in g.shape[-k:]):
        return tuple(g.shape[-k:])  # broadcasting makes x's dims equal these
    return None


def _fit(c, k, shape, dtype):
    trailing = c.reshape(c.shape[max(c.ndim - k, 0):])
    return np.ascontiguousarray(np.broadcast_to(trailing, shape)).astype(dtype, copy=False)
