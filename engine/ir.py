"""Graph IR: named values, nodes in topological order, constants as numpy arrays.

A shape is a tuple whose dims are ints (static), strs (symbolic, e.g. "batch") or None
(unknown). Concrete shapes -- what shape inference works with at resize -- are tuples of ints.
Node attributes are plain Python values: int, float, str, bytes, lists of those, np.ndarray,
or Graph (a subgraph of a control-flow op).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from .errors import ModelFormatError


@dataclass
class Value:
    name: str
    dtype: np.dtype | None = None
    shape: tuple | None = None  # None: rank unknown

    def __post_init__(self):
        if self.dtype is not None:
            self.dtype = np.dtype(self.dtype)
        if self.shape is not None:
            self.shape = tuple(self.shape)


@dataclass
class Node:
    op: str
    inputs: list  # value names; "" marks an omitted optional input
    outputs: list
    name: str = ""
    attrs: dict = field(default_factory=dict)
    domain: str = ""

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def __repr__(self):
        return f"{self.op}({self.name})"


class Graph:
    """A computation graph. `nodes` are kept in topological order by `toposort()`."""

    def __init__(self, name="graph", nodes=None, inputs=None, outputs=None,
                 values=None, constants=None, opset=None, metadata=None):
        self.name = name
        self.nodes: list[Node] = list(nodes or [])
        self.inputs: list[str] = list(inputs or [])
        self.outputs: list[str] = list(outputs or [])
        self.values: dict[str, Value] = dict(values or {})
        self.constants: dict[str, np.ndarray] = dict(constants or {})
        self.opset: dict[str, int] = dict(opset or {"": 17})
        self.metadata: dict[str, str] = dict(metadata or {})

    # -- queries ---------------------------------------------------------------
    def value(self, name) -> Value:
        v = self.values.get(name)
        if v is None:
            v = self.values[name] = Value(name)
        return v

    def producers(self) -> dict:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict:
        out: dict[str, list] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def op_histogram(self) -> dict:
        hist: dict[str, int] = {}
        for n in self.nodes:
            hist[n.op] = hist.get(n.op, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def param_count(self) -> int:
        return int(sum(a.size for a in self.constants.values()))

    # -- edits -----------------------------------------------------------------
    def add_constant(self, name, array) -> str:
        array = np.asarray(array)
        self.constants[name] = array
        self.values[name] = Value(name, array.dtype, array.shape)
        return name

    def unique_name(self, base) -> str:
        taken = self.values.keys() | {n.name for n in self.nodes}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def copy(self) -> "Graph":
        g = Graph(self.name, [Node(n.op, list(n.inputs), list(n.outputs), n.name, dict(n.attrs), n.domain)
                              for n in self.nodes],
                  self.inputs, self.outputs,
                  {k: Value(v.name, v.dtype, v.shape) for k, v in self.values.items()},
                  self.constants, self.opset, self.metadata)
        return g

    def toposort(self) -> "Graph":
        """Order nodes so that every input is produced before use; raise on cycles or
        dangling names."""
        produced = set(self.inputs) | set(self.constants)
        pending = list(self.nodes)
        producer = {}
        for n in pending:
            for o in n.outputs:
                if o:
                    if o in producer or o in produced:
                        raise ModelFormatError(f"graph '{self.name}': value '{o}' is produced twice "
                                               f"(by node '{n.name}' ({n.op}))")
                    producer[o] = n
        for n in pending:
            for i in n.inputs:
                if i and i not in produced and i not in producer and not _is_outer(self, i):
                    raise ModelFormatError(f"graph '{self.name}': node '{n.name}' ({n.op}) reads "
                                           f"'{i}', which no node, input or constant produces")
        import heapq
        index = {id(n): k for k, n in enumerate(pending)}
        users: dict[int, list] = {}
        indeg = {}
        for n in pending:
            deps = {id(producer[i]) for i in n.inputs if i in producer}
            indeg[id(n)] = len(deps)
            for d in deps:
                users.setdefault(d, []).append(n)
        ready = [(index[id(n)], n) for n in pending if indeg[id(n)] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for u in users.get(id(n), []):
                indeg[id(u)] -= 1
                if indeg[id(u)] == 0:
                    heapq.heappush(ready, (index[id(u)], u))
        if len(order) != len(pending):
            stuck = next(n for n in pending if indeg[id(n)] > 0)
            raise ModelFormatError(f"graph '{self.name}': cycle through node '{stuck.name}' ({stuck.op})")
        self.nodes = order
        for o in self.outputs:
            if o not in producer and o not in produced:
                raise ModelFormatError(f"graph '{self.name}': output '{o}' is never produced")
        return self


def _is_outer(graph, name):
    """Subgraphs of control-flow ops may read values of the enclosing graph."""
    return getattr(graph, "outer_scope", False)


def dims_str(shape) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
