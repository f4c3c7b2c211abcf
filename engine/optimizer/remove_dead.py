"""Dead-node removal: drop nodes whose outputs reach no graph output, then the constants and
value records nothing refers to any more (weights a fusion replaced, folded intermediates).

Inference ops have no side effects, so a node is live only through its outputs. Values that a
control-flow node's subgraph reads from the enclosing graph count as that node's inputs.
Graph inputs stay, used or not: they are part of the model's signature.
"""
from __future__ import annotations

from .rewrite import Rewrite, count, reads


def remove_dead(graph):
    rw = Rewrite(graph)
    g = rw.g
    live = set(g.outputs)
    dead = []
    for node in reversed(g.nodes):  # topological order: consumers come after producers
        if any(o in live for o in node.outputs if o):
            live.update(reads(node))
        else:
            dead.append(node)
    rw.remove(*dead)
    out = rw.finish()
    unused = [k for k in out.constants if k not in live]
    for k in unused:
        del out.constants[k]
    known = live | set(out.inputs) | {o for n in out.nodes for o in n.outputs if o}
    out.values = {k: v for k, v in out.values.items() if k in known}
    parts = [count(len(dead), "nodes", "removed"), count(len(unused), "constants", "dropped")]
    return out, ", ".join(p for p in parts if p != "no change") or "no change"
