"""HardSwish: x * HardSigmoid(x) with alpha 1/6, beta 0.5, and x * Clip(x + 3, 0, 6) / 6
(MobileNetV3 as PyTorch and PaddlePaddle export it), become one "HardSwish" node.

x * (Clip(x + 3, 0, 6) / 6) needs no rule of its own: fuse_hardsigmoid, run before, turns
its right factor into HardSigmoid(x). Every node of a pattern but x must feed only the next one.
"""
from __future__ import annotations

from .rewrite import Rewrite, close, count


def fuse_hardswish(graph):
    rw = Rewrite(graph)
    fused = 0
    for node in list(rw.g.nodes):
        if id(node) in rw.removed:
            continue
        match = _gate_form(rw, node) if node.op == "HardSigmoid" else \
            _clip_form(rw, node) if node.op == "Clip" else None
        if match is None:
            continue
        x, pattern = match
        rw.replace(pattern, "HardSwish", [x], f"{pattern[-1].name}_hardswish")
        fused += 1
    return rw.finish(), count(fused, "patterns into HardSwish", "fused")


def _gate_form(rw, hs):
    x = hs.inputs[0]
    if not (close(hs.attrs.get("alpha", 0.2), 1 / 6) and close(hs.attrs.get("beta", 0.5), 0.5)):
        return None
    mul = rw.sole_consumer(hs.outputs[0], "Mul")
    if mul is None or rw.other(mul, hs.outputs[0]) != x:
        return None
    return x, [hs, mul]


def _clip_form(rw, clip):
    add = rw.producer(clip.inputs[0], "Add")
    if len(clip.inputs) < 3 or rw.scalar(clip.inputs[1]) != 0.0 or rw.scalar(clip.inputs[2]) != 6.0 \
            or not rw.feeds_only(add, clip):
        return None
    x = next((i for i in add.inputs if rw.const(i) is None), None)
    mul = rw.sole_consumer(clip.outputs[0], "Mul")
    if x is None or not close(rw.scalar_arg(add, x), 3.0) or mul is None or rw.other(mul, clip.outputs[0]) != x:
        return None
    div = rw.sole_consumer(mul.outputs[0], "Div", "Mul")
    k = rw.scalar_arg(div, mul.outputs[0], first=div.op == "Div") if div is not None else None
    if not close(k, 6.0 if div is not None and div.op == "Div" else 1 / 6):
        return None
    return x, [add, clip, mul, div]
