"""SiLU (Swish): x * Sigmoid(x) becomes one "SiLU" node.

Also PaddlePaddle's swish, x * Sigmoid(x * beta) with beta == 1 (other betas are not SiLU and
stay as they are). The Sigmoid must feed only the Mul: x itself may have other readers.
"""
from __future__ import annotations

from .rewrite import Rewrite, close, count


def fuse_silu(graph):
    rw = Rewrite(graph)
    fused = 0
    for sig in list(rw.g.nodes):
        if sig.op != "Sigmoid" or id(sig) in rw.removed:
            continue
        x, pattern = sig.inputs[0], [sig]
        beta = rw.producer(x, "Mul")
        if rw.feeds_only(beta, sig):
            var = next((i for i in beta.inputs if rw.const(i) is None), None)
            if var is not None and close(rw.scalar_arg(beta, var), 1.0):
                x, pattern = var, [beta, sig]
        mul = rw.sole_consumer(sig.outputs[0], "Mul")
        if mul is None or rw.other(mul, sig.outputs[0]) != x:
            continue
        rw.replace(pattern + [mul], "SiLU", [x], f"{mul.name}_silu")
        fused += 1
    return rw.finish(), count(fused, "x*Sigmoid(x) into SiLU", "fused")
