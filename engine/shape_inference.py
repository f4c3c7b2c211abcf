"""Concrete shape inference at resize, with constant propagation.

Given the shapes of the graph inputs, every value gets a TensorInfo. A node whose inputs are all
known (constants, or computed from shapes: Shape -> Gather -> Concat -> Reshape) is evaluated on
the CPU reference kernels right here, so shape subgraphs disappear from the plan for this shape.
A node whose output shape depends on data (NonZero...) leaves its outputs unknown: it and
everything downstream of it run eagerly.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .errors import MixnnError, ShapeError
from .ops import TensorInfo

FOLD_LIMIT = 1 << 24  # elements: larger results are not folded at resize


def infer_shapes(graph, input_infos: dict, evaluate) -> dict:
    """Return {value name: TensorInfo or None (data-dependent)} for every value."""
    ops.load_all()
    infos: dict = {}
    for name, arr in graph.constants.items():
        infos[name] = TensorInfo(tuple(arr.shape), arr.dtype, arr)
    infos.update(input_infos)
    for node in graph.nodes:
        ins = [infos.get(i) if i else None for i in node.inputs]
        if any(i and infos.get(i) is None for i in node.inputs):
            for o in node.outputs:
                infos[o] = None
            continue
        outs = ops.infer(node, ins)
        known = all(i is None or i.value is not None for i in ins) and node.inputs
        small = outs is None or sum(int(np.prod(o.shape)) for o in outs) <= FOLD_LIMIT
        if known and small and node.op not in NEVER_FOLD:
            outs = _fold(node, ins, outs, evaluate)
        if outs is None:
            for o in node.outputs:
                infos[o] = None
            continue
        if len(outs) < len([o for o in node.outputs if o]):
            raise ShapeError(f"node '{node.name}' ({node.op}): {len(node.outputs)} outputs asked, "
                             f"the op gives {len(outs)}")
        for name, info in zip(node.outputs, outs):
            if name:
                if any((not isinstance(d, (int, np.integer))) or d < 0 for d in info.shape):
                    raise ShapeError(f"node '{node.name}' ({node.op}): output '{name}' would have "
                                     f"shape {info.shape}")
                infos[name] = info
    return infos


NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli"}


def _fold(node, ins, outs, evaluate):
    try:
        values = evaluate(node, [i.value if i is not None else None for i in ins])
    except MixnnError:
        raise
    except Exception as e:
        raise ShapeError(f"node '{node.name}' ({node.op}): evaluating it on constant inputs "
                         f"failed: {type(e).__name__}: {e}") from None
    folded = []
    for k, v in enumerate(values):
        v = np.asarray(v)
        if outs is not None and k < len(outs) and tuple(outs[k].shape) != tuple(v.shape):
            raise ShapeError(f"node '{node.name}' ({node.op}): computed output {k} has shape "
                             f"{v.shape}, shape rules say {outs[k].shape}")
        folded.append(TensorInfo(tuple(v.shape), v.dtype, v))
    return folded
