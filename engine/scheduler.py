"""The scheduler: a backend for every node, then an order that keeps same-backend nodes together.

Assignment follows, in order: `placement` overrides (by node name, then op type), the primary
backend if it supports the node with these shapes, else the fallback. Nodes folded at resize run
nowhere; nodes whose output shape depends on data run eagerly on the CPU.
"""
from __future__ import annotations

import heapq
import logging

from .errors import UnsupportedOpError

log = logging.getLogger("mixnn")

def assign(graph, infos, backends: dict, config, primary: str, fallback: str) -> dict:
    """{node name: {"op", "backend", "reason"}}; backend None for folded nodes."""
    placement, declined = {}, []
    for node in graph.nodes:
        outs = [infos.get(o) for o in node.outputs if o]
        if outs and all(o is not None and o.value is not None for o in outs):
            placement[node.name] = {"op": node.op, "backend": None,
                                    "reason": "folded: constant for these input shapes"}
            continue
        ins = [infos.get(i) if i else None for i in node.inputs]
        if any(o is None for o in outs) or any(i and infos.get(i) is None for i in node.inputs):
            placement[node.name] = {"op": node.op, "backend": "cpu",
                                    "reason": "eager: output shape depends on data"}
            continue
        override = config.placement.get(node.name) or config.placement.get(node.op)
        if override:
            why = backends[override].supports(node, ins, outs)
            if why:
                raise UnsupportedOpError(f"node '{node.name}' ({node.op}) is placed on '{override}' "
                                         f"by the placement option, but {override} declines it: {why}")
            placement[node.name] = {"op": node.op, "backend": override, "reason": "override"}
            continue
        why = backends[primary].supports(node, ins, outs)
        if why is None:
            placement[node.name] = {"op": node.op, "backend": primary, "reason": "primary"}
            continue
        if primary != fallback:
            why_fb = backends[fallback].supports(node, ins, outs)
            if why_fb is None:
                placement[node.name] = {"op": node.op, "backend": fallback, "reason": f"fallback: {why}"}
                declined.append(node)
                continue
            why = f"{why}; {fallback}: {why_fb}"
        shapes = ", ".join(str(i.shape) if i else "-" for i in ins)
        raise UnsupportedOpError(f"node '{node.name}' ({node.op}, input shapes {shapes}): no backend "
                                 f"runs it: {why}")
    if declined:
        ops = sorted({n.op for n in declined})
        ran = sum(1 for p in placement.values() if p["backend"] == primary)
        total = sum(1 for p in placement.values() if p["backend"] is not None)
        line = f"{primary}: {ran}/{total} nodes, {total - ran} on {fallback} ({', '.join(ops)})"
        if config.strict:
            names = ", ".join(f"{n.name} ({n.op})" for n in declined[:20])
            raise UnsupportedOpError(f"strict mode: {line}; would fall back: {names}")
        log.warning(line)
    return placement


def order_nodes(graph, placement) -> list:
    """A topological order that prefers staying on the current backend (fewer crossings)."""
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    index = {id(n): k for k, n in enumerate(graph.nodes)}
    users, indeg = {}, {}
    for n in graph.nodes:
        deps = {id(producer[i]) for i in n.inputs if i in producer}
        indeg[id(n)] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(n)
    ready: dict = {}
    for n in graph.nodes:
        if indeg[id(n)] == 0:
            heapq.heappush(ready.setdefault(placement[n.name]["backend"], []), (index[id(n)], n))
    order, current = [], None
    while any(ready.values()):
        if not ready.get(current):
            current = min((q[0][0], b) for b, q in ready.items() if q)[1]
        _, n = heapq.heappop(ready[current])
        order.append(n)
        for u in users.get(id(n), []):
            indeg[id(u)] -= 1
            if indeg[id(u)] == 0:
                heapq.heappush(ready.setdefault(placement[u.name]["backend"], []), (index[id(u)], u))
    return order
