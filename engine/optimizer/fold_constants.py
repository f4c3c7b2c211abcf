"""Constant folding: nodes whose inputs are all constants are evaluated once, at convert time.

Each such node runs on the CPU backend's kernels (the reference) and its outputs become
constants under the same names, so nothing downstream needs rewiring; folding walks the nodes in
topological order, so whole constant subgraphs collapse. `Shape`/`Size` of a value whose shape is
fully static in `graph.values` fold too. Shape computations on dynamic dims cannot fold here:
engine/shape_inference.py evaluates them per input shape at resize, so they still leave the plan.

Not folded: random ops (a fresh draw per run), control flow (subgraphs), and results that would
bloat the model file (more than GROWTH times the inputs' elements, unless under SMALL elements:
ConstantOfShape or Expand of a tiny input stays a node).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops import TensorInfo
from ..shape_inference import NEVER_FOLD
from .rewrite import Rewrite, count, subgraphs

SMALL = 1 << 16  # elements
GROWTH = 4


def fold_constants(graph):
    from backends.cpu import CpuBackend
    ops.load_all()
    rw = Rewrite(graph)
    folded = 0
    for node in rw.g.nodes:
        arrays = _static_shape(rw, node) if node.op in ("Shape", "Size") else None
        if arrays is None and _foldable(rw, node):
            arrays = _evaluate(rw, node, CpuBackend.evaluate)
        if arrays is None:
            continue
        for name, arr in zip(node.outputs, arrays):
            if name:
                declared = rw.g.values[name].dtype if name in rw.g.values else None
                rw.g.add_constant(name, arr if declared is None else arr.astype(declared, copy=False))
        rw.remove(node)
        folded += 1
    return rw.finish(), count(folded, "nodes into constants", "folded")


def _static_shape(rw, node):
    shape = rw.static_shape(node.inputs[0])
    if shape is None or node.inputs[0] in rw.g.constants:
        return None
    if node.op == "Size":
        return [np.array(int(np.prod(shape)), np.int64)]
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return [np.array(shape[slice(start, end)], np.int64)]


def _foldable(rw, node):
    ins = [i for i in node.inputs if i]
    return (ins and all(i in rw.g.constants for i in ins) and node.op not in NEVER_FOLD
            and not subgraphs(node))


def _evaluate(rw, node, evaluate):
    arrays = [rw.g.constants[i] if i else None for i in node.inputs]
    budget = max(SMALL, GROWTH * sum(a.size for a in arrays if a is not None))
    try:
        infos = ops.infer(node, [TensorInfo(a.shape, a.dtype, a) if a is not None else None for a in arrays])
    except Exception:
        return None  # the node is wrong for these constants: leave it to fail at resize, with context
    if infos is not None and sum(int(np.prod(i.shape)) for i in infos) > budget:
        return None
    try:
        outs = [np.asarray(o) for o in evaluate(node, arrays)]
    except Exception:
        return None
    if sum(o.size for o in outs) > budget or len(outs) < len([o for o in node.outputs if o]):
        return None
    return outs
