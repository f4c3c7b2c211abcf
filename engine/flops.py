"""FLOPs of a graph at concrete input shapes (multiply-add counted as 2)."""
from __future__ import annotations

import numpy as np

from .ops import TensorInfo


def _default_shape(value, shapes):
    if shapes and value.name in shapes:
        return tuple(shapes[value.name])
    return tuple(d if isinstance(d, int) else 1 for d in (value.shape or ()))


def count_flops(graph, shapes=None) -> int:
    from .backend import backend_class
    from .shape_inference import infer_shapes
    feed = {n: TensorInfo(_default_shape(graph.value(n), shapes), graph.value(n).dtype or np.dtype(np.float32))
            for n in graph.inputs}
    infos = infer_shapes(graph, feed, backend_class("cpu").evaluate)
    total = 0
    for node in graph.nodes:
        outs = [infos.get(o) for o in node.outputs if o]
        ins = [infos.get(i) if i else None for i in node.inputs]
        if not outs or outs[0] is None or outs[0].value is not None:
            continue
        n_out = int(np.prod(outs[0].shape))
        if node.op in ("Conv", "ConvTranspose"):
            w = ins[1].shape
            if node.op == "ConvTranspose":
                total += 2 * int(np.prod(ins[0].shape)) * int(np.prod(w[1:]))
            else:
                total += 2 * n_out * int(np.prod(w[1:]))
        elif node.op in ("MatMul", "Gemm"):
            k = ins[0].shape[-1] if ins[0].shape else 1
            total += 2 * n_out * k
        else:
            total += n_out
    return total
