"""The graph optimizer: a list of passes, each a function Graph -> (Graph, changes).

Passes never mutate the graph they are given. The order matters: constants fold first so that
the patterns see constant operands; per-channel affine maps fold into Conv and bias Adds into
MatMul before activations fuse (the convention applies the activation after the bias); the
elementwise patterns assemble SiLU/HardSigmoid/HardSwish before fuse_activation can take them
into a Conv; affine maps in front of a Conv fold into it once the activations
before them have fused; dead-node removal runs last and drops the weights the fusions replaced.
"""
from __future__ import annotations

from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fold_input_affine import fold_input_affine
from .fuse_activation import fuse_activation
from .fuse_bias import fuse_bias
from .fuse_gelu import fuse_gelu
from .fuse_hardsigmoid import fuse_hardsigmoid
from .fuse_hardswish import fuse_hardswish
from .fuse_layernorm import fuse_layernorm
from .fuse_silu import fuse_silu
from .remove_dead import remove_dead
from .remove_identity import remove_identity

PASSES = [(fn.__name__, fn) for fn in (
    fold_constants, remove_identity, fold_batchnorm, fuse_bias, fuse_layernorm, fuse_gelu,
    fuse_silu, fuse_hardsigmoid, fuse_hardswish, fuse_activation, fold_input_affine, remove_dead)]


def optimize(graph):
    """Run every pass in order; return the graph and [(pass name, what it changed)]."""
    report = []
    for name, fn in PASSES:
        graph, change = fn(graph)
        report.append((name, change))
    return graph, report
