"""HardSigmoid from its elementwise spellings, where the rewrite is exact in real arithmetic:

    Clip(x + 3, 0, 6) / 6          (or * 1/6; "relu6(x + 3) / 6")  -> HardSigmoid(alpha=1/6, beta=0.5)
    Clip(x * a + b, 0, 1)          (or x / k + b)                   -> HardSigmoid(alpha=a, beta=b)

Every node of a pattern but the last must feed only the next one. Runs before fuse_hardswish,
so x * (Clip(x + 3, 0, 6) / 6) becomes x * HardSigmoid(x), which that pass then fuses.
"""
from __future__ import annotations

from .rewrite import Rewrite, close, count


def fuse_hardsigmoid(graph):
    rw = Rewrite(graph)
    fused = 0
    for clip in list(rw.g.nodes):
        if clip.op != "Clip" or id(clip) in rw.removed or len(clip.inputs) < 3:
            continue
        lo, hi = rw.scalar(clip.inputs[1]), rw.scalar(clip.inputs[2])
        add = rw.producer(clip.inputs[0], "Add")
        if lo != 0.0 or not rw.feeds_only(add, clip):
            continue
        match = _relu6_form(rw, clip, add) if hi == 6.0 else _affine_form(rw, clip, add) if hi == 1.0 else None
        if match is None:
            continue
        x, alpha, beta, pattern = match
        rw.replace(pattern, "HardSigmoid", [x], f"{pattern[-1].name}_hardsigmoid",
                   {"alpha": alpha, "beta": beta})
        fused += 1
    return rw.finish(), count(fused, "Clip patterns into HardSigmoid", "fused")


def _relu6_form(rw, clip, add):
    x = next((i for i in add.inputs if rw.const(i) is None), None)
    div = rw.sole_consumer(clip.outputs[0], "Div", "Mul")
    if x is None or not close(rw.scalar_arg(add, x), 3.0) or div is None:
        return None
    k = rw.scalar_arg(div, clip.outputs[0], first=div.op == "Div")
    if not close(k, 6.0 if div.op == "Div" else 1 / 6):
        return None
    return x, 1 / 6, 0.5, [add, clip, div]


def _affine_form(rw, clip, add):
    scaled = next((i for i in add.inputs if rw.const(i) is None), None)
    beta = rw.scalar_arg(add, scaled) if scaled else None
    mul = rw.producer(scaled, "Mul", "Div")
    if beta is None or not rw.feeds_only(mul, add):
        return None
    x = next((i for i in mul.inputs if rw.const(i) is None), None)
    a = rw.scalar_arg(mul, x, first=mul.op == "Div") if x else None
    if a is None or (mul.op == "Div" and a == 0):
        return None
    return x, (a if mul.op == "Mul" else 1 / a), beta, [mul, add, clip]
