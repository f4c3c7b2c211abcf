"""The working copy a pass edits: lookups that follow its edits, and the finished graph.

A pass never mutates the graph it is given: `Rewrite(graph)` copies it (nodes and their attribute
dicts are new; constant arrays are shared and must not be written in place). Patterns are
matched on producer/consumer links; a fused node takes over the name of the pattern's last
output, so the consumers of the pattern need no rewiring.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node


def subgraphs(node):
    return [v for v in node.attrs.values() if isinstance(v, Graph)]


def outer_names(graph) -> set:
    """Names a subgraph (or its own subgraphs) reads from the enclosing graph."""
    local = set(graph.inputs) | set(graph.constants) | {o for n in graph.nodes for o in n.outputs}
    used = {i for n in graph.nodes for i in n.inputs if i}
    for n in graph.nodes:
        for sub in subgraphs(n):
            used |= outer_names(sub)
    return used - local


def reads(node) -> list:
    """Every value a node reads: its inputs, and outer values its subgraphs use."""
    names = [i for i in node.inputs if i]
    for sub in subgraphs(node):
        names += sorted(outer_names(sub))
    return names


# Ops whose output has the rank of input 0 (Conv: of its weights, input 1).
_LIKE_FIRST = {"BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
               "LRN", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "Resize",
               "Cast", "CastLike", "Transpose", "Conv", "ConvTranspose"}


def known_ranks(graph) -> dict:
    """Rank of every value that has one: from graph.values, else propagated through ops whose
    output rank follows from their inputs' (exporters' shape info often stops at a Reshape)."""
    from ..ops.elementwise import BINARY_ARITH, COMPARE, UNARY
    broadcast = set(UNARY) | set(BINARY_ARITH) | set(COMPARE) | {"Where"}
    ranks = {k: len(v.shape) for k, v in graph.values.items() if v.shape is not None}
    ranks.update({k: a.ndim for k, a in graph.constants.items()})
    for n in graph.nodes:
        out = n.outputs[0] if n.outputs else ""
        ins = [ranks.get(i) for i in n.inputs if i]
        if not out or out in ranks or not ins:
            continue
        if n.op in ("Conv", "ConvTranspose"):
            ranks[out] = ins[1]
        elif n.op == "Reshape":
            v = graph.values.get(n.inputs[1])
            length = v.shape[0] if v is not None and v.shape is not None and len(v.shape) == 1 else None
            ranks[out] = length if isinstance(length, int) else None
        elif n.op == "Flatten":
            ranks[out] = 2
        elif None in ins:
            continue
        elif n.op in broadcast:
            ranks[out] = max(ins)
        elif n.op in _LIKE_FIRST:
            ranks[out] = ins[0]
        elif n.op == "MatMul" and min(ins[:2]) >= 2:
            ranks[out] = max(ins[:2])
    return {k: r for k, r in ranks.items() if r is not None}


class Rewrite:
    def __init__(self, graph):
        self.g = graph.copy()
        self.graph_outputs = set(self.g.outputs)
        self.removed: set[int] = set()
        self._producer = self.g.producers()
        self._consumers: dict[str, list] = {}
        self._ranks = None
        for n in self.g.nodes:
            for name in reads(n):
                self._consumers.setdefault(name, []).append(n)

    # -- lookups ---------------------------------------------------------------------------
    def const(self, name):
        return self.g.constants.get(name) if name else None

    def scalar(self, name):
        """The value of a one-element float constant, else None."""
        a = self.const(name)
        if a is None or a.size != 1 or a.dtype.kind != "f":
            return None
        return float(a.reshape(-1)[0])

    def scalar_arg(self, node, x, first=False):
        """The one-element float constant that binary `node` combines with `x`, when it cannot
        change x's shape by broadcasting (else None). first: x must be input 0 (Div, Sub, Pow)."""
        if len(node.inputs) != 2 or x not in node.inputs or node.inputs[0] == node.inputs[1]:
            return None
        if first and node.inputs[0] != x:
            return None
        a = self.const(self.other(node, x))
        if a is None or a.size != 1 or a.dtype.kind != "f":
            return None
        if a.ndim and (self.rank(x) or 0) < a.ndim:
            return None
        return float(a.reshape(-1)[0])

    def producer(self, name, *ops):
        n = self._producer.get(name) if name else None
        if n is None or id(n) in self.removed or (ops and n.op not in ops):
            return None
        return n

    def consumers(self, name) -> list:
        return [n for n in self._consumers.get(name, []) if id(n) not in self.removed]

    def sole_consumer(self, name, *ops):
        """The one node reading `name` (once), when the value is not also a graph output."""
        users = self.consumers(name)
        if len(users) != 1 or name in self.graph_outputs or (ops and users[0].op not in ops):
            return None
        return users[0]

    def feeds_only(self, node, reader) -> bool:
        """True when `node` exists and its output is read by `reader` alone (no graph output)."""
        return node is not None and self.sole_consumer(node.outputs[0]) is reader

    def rank(self, name):
        if self._ranks is None:
            self._ranks = known_ranks(self.g)
        return self._ranks.get(name)

    def static_shape(self, name):
        """The shape when every dim is a known int, else None."""
        if name in self.g.constants:
            return tuple(self.g.constants[name].shape)
        v = self.g.values.get(name)
        if v is None or v.shape is None or not all(isinstance(d, (int, np.integer)) for d in v.shape):
            return None
        return tuple(int(d) for d in v.shape)

    @staticmethod
    def other(node, name):
        """The other input of a binary node, given one of them (None if `name` is not an input)."""
        a, b = node.inputs[0], node.inputs[1]
        return b if a == name else a if b == name else None

    def const_operand(self, node):
        """(variable input, constant array) of a binary node with exactly one constant input."""
        a, b = node.inputs[:2]
        ca, cb = self.const(a), self.const(b)
        if (ca is None) == (cb is None):
            return None, None
        return (b, ca) if ca is not None else (a, cb)

    # -- edits -----------------------------------------------------------------------------
    def add_constant(self, base, array) -> str:
        return self.g.add_constant(self.g.unique_name(base), array)

    def remove(self, *nodes):
        self.removed.update(id(n) for n in nodes)

    def absorb(self, node, follower):
        """`node` takes over `follower`'s output (after folding the follower's effect into it)."""
        self._producer.pop(node.outputs[0], None)
        node.outputs[0] = follower.outputs[0]
        self._producer[node.outputs[0]] = node
        self.remove(follower)

    def replace(self, nodes, op, inputs, name, attrs=None):
        """Remove `nodes` (a matched pattern, last one last) and insert one `op` node that
        produces the last node's output."""
        out = nodes[-1].outputs[0]
        new = Node(op, list(inputs), [out], self.g.unique_name(name), dict(attrs or {}))
        self.remove(*nodes)
        self.g.nodes.append(new)
        self._producer[out] = new
        for i in new.inputs:
            self.note_reader(i, new)
        return new

    def note_reader(self, name, node):
        """Record that `node` now reads `name` (after rewiring its inputs)."""
        if name:
            self._consumers.setdefault(name, []).append(node)

    def finish(self) -> Graph:
        self.g.nodes = [n for n in self.g.nodes if id(n) not in self.removed]
        return self.g.toposort()


def close(value, target, rtol=1e-5):
    """A constant equals `target` up to float32 rounding (exporters write 0.7071067690849304...)."""
    return value is not None and abs(value - target) <= rtol * abs(target)


def count(n, what, verb):
    """'folded 3 BatchNorm into Conv' / 'no change' (the optimizer report's phrasing)."""
    return f"{verb} {n} {what}" if n else "no change"
