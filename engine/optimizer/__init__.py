"""The graph optimizer: a list of passes, each a function Graph -> (Graph, changes)."""
from __future__ import annotations

PASSES = []


def optimize(graph):
    """Run every pass in order; return the graph and [(pass name, what it changed)]."""
    report = []
    for name, fn in PASSES:
        graph, change = fn(graph)
        report.append((name, change))
    return graph, report
