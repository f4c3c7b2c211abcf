"""GELU: its two decomposed forms become one "Gelu" node (ONNX opset 20; attr approximate):

    x * 0.5 * (1 + Erf(x / sqrt(2)))                                   approximate="none"
    x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))            approximate="tanh"

x / sqrt(2) may be written x * (1/sqrt(2)), x^3 as Pow(x, 3) or x * x * x, and the product
x * 0.5 * (...) in any association. Every node of a pattern but x must feed only the next one.
"""
from __future__ import annotations

import math

from .rewrite import Rewrite, close, count


def fuse_gelu(graph):
    rw = Rewrite(graph)
    fused = {"none": 0, "tanh": 0}
    for node in list(rw.g.nodes):
        if id(node) in rw.removed or node.op not in ("Erf", "Tanh"):
            continue
        head = _erf_head(rw, node) if node.op == "Erf" else _tanh_head(rw, node)
        if head is None:
            continue
        x, nodes = head
        one = rw.sole_consumer(node.outputs[0], "Add")
        if one is None or not close(rw.scalar_arg(one, node.outputs[0]), 1.0):
            continue
        tail = _times_half_x(rw, one, x)
        if tail is None:
            continue
        approximate = "none" if node.op == "Erf" else "tanh"
        rw.replace(nodes + [node, one] + tail, "Gelu", [x], f"{tail[-1].name}_gelu", {"approximate": approximate})
        fused[approximate] += 1
    n = fused["none"] + fused["tanh"]
    return rw.finish(), count(n, f"patterns into Gelu (erf {fused['none']}, tanh {fused['tanh']})", "fused")


def _variable(rw, node):
    return next((i for i in node.inputs if rw.const(i) is None), None)


def _erf_head(rw, erf):
    """x / sqrt(2) or x * (1/sqrt(2)) feeding the Erf: (x, [that node])."""
    p = rw.producer(erf.inputs[0], "Div", "Mul")
    if not rw.feeds_only(p, erf):
        return None
    x = _variable(rw, p)
    k = rw.scalar_arg(p, x, first=p.op == "Div") if x else None
    return (x, [p]) if close(k, math.sqrt(2) if p.op == "Div" else math.sqrt(0.5)) else None


def _tanh_head(rw, tanh):
    """sqrt(2/pi) * (x + 0.044715 * x^3) feeding the Tanh: (x, its nodes)."""
    scale = rw.producer(tanh.inputs[0], "Mul")
    if not rw.feeds_only(scale, tanh):
        return None
    inner = rw.producer(_variable(rw, scale), "Add")
    if not close(rw.scalar_arg(scale, inner.outputs[0]) if inner else None, math.sqrt(2 / math.pi)) \
            or not rw.feeds_only(inner, scale) or inner.inputs[0] == inner.inputs[1]:
        return None
    for x, term in (inner.inputs, inner.inputs[::-1]):
        cubic = rw.producer(term, "Mul")
        if rw.feeds_only(cubic, inner) and close(rw.scalar_arg(cubic, _variable(rw, cubic) or ""), 0.044715):
            cube = _cube(rw, _variable(rw, cubic), x, cubic)
            if cube is not None:
                return x, cube + [cubic, inner, scale]
    return None


def _cube(rw, name, x, reader):
    """The nodes computing x^3 into `name`: Pow(x, 3), or x * x * x in either association."""
    p = rw.producer(name, "Pow", "Mul")
    if not rw.feeds_only(p, reader):
        return None
    if p.op == "Pow":
        return [p] if p.inputs[0] == x and close(rw.scalar(p.inputs[1]), 3.0) else None
    if x not in p.inputs:
        return None
    sq = rw.producer(rw.other(p, x), "Mul")
    if rw.feeds_only(sq, p) and sq.inputs == [x, x]:
        return [sq, p]
    return None


def _times_half_x(rw, one, x):
    """The nodes computing x * 0.5 * one from one's output, in any association, the last one
    producing the result; None if they do not."""
    y = one.outputs[0]
    m = rw.sole_consumer(y, "Mul")
    if m is None:
        return None
    other = rw.other(m, y)
    if other == x:  # (x * y) * 0.5
        h = rw.sole_consumer(m.outputs[0], "Mul")
        return [m, h] if h is not None and close(rw.scalar_arg(h, m.outputs[0]), 0.5) else None
    if close(rw.scalar_arg(m, y), 0.5):  # (y * 0.5) * x
        f = rw.sole_consumer(m.outputs[0], "Mul")
        return [m, f] if f is not None and rw.other(f, m.outputs[0]) == x else None
    half = rw.producer(other, "Mul")  # (x * 0.5) * y
    if rw.feeds_only(half, m) and x in half.inputs and close(rw.scalar_arg(half, x), 0.5):
        return [half, m]
    return None
