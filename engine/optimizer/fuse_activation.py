"""Activation fusion: an activation right after a Conv or MatMul becomes attributes of it, applied
in the same kernel after the bias (the backends' fused-op convention):

    activation  "Relu" | "Clip" | "Sigmoid" | "SiLU" | "HardSwish" | "LeakyRelu" | "HardSigmoid" | "Tanh"
    act_min, act_max     Clip bounds as floats, always both (+-float32 max when a bound is absent)
    act_alpha, act_beta  LeakyRelu's alpha; HardSigmoid's alpha and beta

Only when the Conv/MatMul output feeds the activation alone and is not a graph output: nobody
else may see the value before the activation. Run after the pattern passes, so SiLU, HardSwish
and HardSigmoid assembled from elementwise ops fuse too.
"""
from __future__ import annotations

import numpy as np

from .rewrite import Rewrite

HOSTS = ("Conv", "MatMul")
ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "SiLU", "HardSwish", "LeakyRelu", "HardSigmoid", "Tanh")
FLOAT_MAX = float(np.finfo(np.float32).max)


def fuse_activation(graph):
    rw = Rewrite(graph)
    fused: dict[str, int] = {}
    for node in list(rw.g.nodes):
        if node.op not in HOSTS or node.attrs.get("activation") or not _is_float(rw, node.outputs[0]):
            continue
        act = rw.sole_consumer(node.outputs[0], *ACTIVATIONS)
        attrs = _attrs(rw, act) if act is not None and act.inputs[0] == node.outputs[0] else None
        if attrs is None:
            continue
        node.attrs.update(attrs)
        rw.absorb(node, act)
        fused[act.op] = fused.get(act.op, 0) + 1
    if not fused:
        return rw.finish(), "no change"
    kinds = ", ".join(f"{op} {n}" for op, n in sorted(fused.items(), key=lambda kv: -kv[1]))
    return rw.finish(), f"fused {sum(fused.values())} activations into Conv/MatMul ({kinds})"


def _is_float(rw, name):
    v = rw.g.values.get(name)
    return v is None or v.dtype is None or v.dtype.kind == "f"


def _attrs(rw, act):
    return activation_attrs(act, rw.scalar)


def activation_attrs(act, scalar):
    """The attributes that fuse activation node `act`, or None when a Clip bound is computed
    at run time. scalar(name): a constant scalar's value, else None."""
    if act.op == "Clip":
        bounds = [act.inputs[k] if len(act.inputs) > k else "" for k in (1, 2)]
        lo, hi = (scalar(b) if b else d for b, d in zip(bounds, (-FLOAT_MAX, FLOAT_MAX)))
        if lo is None or hi is None:
            return None  # a bound computed at run time
        return {"activation": "Clip", "act_min": max(lo, -FLOAT_MAX), "act_max": min(hi, FLOAT_MAX)}
    if act.op == "LeakyRelu":
        return {"activation": "LeakyRelu", "act_alpha": float(act.attrs.get("alpha", 0.01))}
    if act.op == "HardSigmoid":
        return {"activation": "HardSigmoid", "act_alpha": float(act.attrs.get("alpha", 0.2)),
                "act_beta": float(act.attrs.get("beta", 0.5))}
    return {"activation": act.op}
