"""Control flow on the CPU: If, Loop and Scan, with a small evaluator for their subgraphs.

The frontend makes every value a subgraph reads from an enclosing graph an explicit input of the
control-flow node (after its own inputs) and lists the names the subgraph knows them by in the
`outer_values` attribute, so the planner sees the dependency and the kernel can bind them here.
A subgraph runs node by node on the CPU kernels, eagerly, like a data-dependent node.
"""
import os

import numpy as np

from engine.errors import InputError, UnsupportedOpError

from .kernels import KERNELS, kernel
from .kernels_common import fail

LOOP_LIMIT = int(os.environ.get("MIXNN_LOOP_LIMIT", "1000000"))  # a Loop with no exit is an error, not a hang


def _split_outer(node, args):
    names = node.attrs.get("outer_values", [])
    cut = len(args) - len(names)
    return list(args[:cut]), dict(zip(names, args[cut:]))


def run_graph(node, graph, outer, args):
    """Evaluate `graph` with its inputs bound to `args` and outer values from `outer`."""
    if len(args) != len(graph.inputs):
        raise fail(node, f"subgraph '{graph.name}' takes {len(graph.inputs)} inputs, got {len(args)}")
    env = dict(outer)
    env.update(graph.constants)
    env.update(zip(graph.inputs, args))
    for sub in graph.nodes:
        fn = KERNELS.get(sub.op)
        if fn is None:
            raise UnsupportedOpError(f"node '{sub.name}' in a subgraph of '{node.name}': no cpu kernel for {sub.op}")
        try:
            ins = [env[i] if i else None for i in sub.inputs]
        except KeyError as e:
            raise fail(node, f"subgraph node '{sub.name}' reads {e}, which nothing produced") from None
        res = fn(sub, *ins)
        res = res if isinstance(res, (tuple, list)) else (res,)
        for name, value in zip(sub.outputs, res):
            if name:
                env[name] = np.asarray(value)
    try:
        return [env[o] for o in graph.outputs]
    except KeyError as e:
        raise fail(node, f"subgraph '{graph.name}' never produces its output {e}") from None


def _truth(node, value, what):
    v = np.asarray(value)
    if v.size != 1:
        raise InputError(f"node '{node.name}' ({node.op}): {what} must hold one value, got shape {v.shape}")
    return bool(v.reshape(-1)[0])


@kernel("If")
def if_(node, cond, *rest):
    _, outer = _split_outer(node, (cond,) + rest)
    branch = node.attrs["then_branch"] if _truth(node, cond, "the condition") else node.attrs["else_branch"]
    return tuple(run_graph(node, branch, outer, []))


def _stack(node, items, like):
    """Scan outputs of a loop: the per-iteration values stacked on a new first axis."""
    if items:
        try:
            return np.stack(items)
        except ValueError:
            raise fail(node, "scan outputs change shape between iterations") from None
    return np.zeros((0,), like.dtype if like is not None else np.float32)


@kernel("Loop")
def loop(node, trip_count=None, cond=None, *rest):
    carried, outer = _split_outer(node, rest)
    body = node.attrs["body"]
    n_scan = len(body.outputs) - 1 - len(carried)
    if n_scan < 0:
        raise fail(node, f"body has {len(body.outputs)} outputs for {len(carried)} loop-carried values")
    limit = int(np.asarray(trip_count).reshape(-1)[0]) if trip_count is not None else None
    keep = _truth(node, cond, "the condition") if cond is not None else True
    scans = [[] for _ in range(n_scan)]
    i = 0
    while keep and (limit is None or i < limit):
        if limit is None and i >= LOOP_LIMIT:
            raise fail(node, f"no exit after {LOOP_LIMIT} iterations (MIXNN_LOOP_LIMIT)")
        outs = run_graph(node, body, outer, [np.array(i, np.int64), np.array(keep), *carried])
        keep = _truth(node, outs[0], "the body's condition output")
        carried = outs[1:1 + len(carried)]
        for k, v in enumerate(outs[1 + len(carried):]):
            scans[k].append(v)
        i += 1
    return tuple(carried) + tuple(_stack(node, s, None) for s in scans)


def _scan(node, body, states, xs, outer):
    a = node.attrs
    m, k = len(xs), len(body.outputs) - len(states)
    in_axes, in_dirs = a.get("scan_input_axes", [0] * m), a.get("scan_input_directions", [0] * m)
    out_axes, out_dirs = a.get("scan_output_axes", [0] * k), a.get("scan_output_directions", [0] * k)
    seqs = []
    for x, axis, rev in zip(xs, in_axes, in_dirs):
        s = np.moveaxis(x, axis % max(x.ndim, 1), 0)
        seqs.append(s[::-1] if rev else s)
    steps = {s.shape[0] for s in seqs}
    if len(steps) != 1:
        raise fail(node, f"scan inputs differ in length along their scan axes: {sorted(steps)}")
    ys = [[] for _ in range(k)]
    for t in range(steps.pop()):
        outs = run_graph(node, body, outer, [*states, *(s[t] for s in seqs)])
        states = outs[:len(states)]
        for j, y in enumerate(outs[len(states):]):
            ys[j].append(y)
    stacked = []
    for y, axis, rev in zip(ys, out_axes, out_dirs):
        arr = _stack(node, y[::-1] if rev else y, None)
        stacked.append(np.moveaxis(arr, 0, axis % arr.ndim))
    return list(states) + stacked


@kernel("Scan")
def scan(node, *args):
    formal, outer = _split_outer(node, args)
    body = node.attrs["body"]
    m = node.attrs["num_scan_inputs"]
    if not node.attrs.get("batched"):
        n_state = len(formal) - m
        return tuple(_scan(node, body, formal[:n_state], formal[n_state:], outer))
    # Scan-8: a leading batch axis on every tensor, sequence lengths first, scan axis 1
    lens, formal = formal[0], formal[1:]
    n_state = len(formal) - m
    per_batch = []
    for b in range(formal[0].shape[0]):
        xs = [x[b] for x in formal[n_state:]]
        if lens is not None:
            xs = [x[:int(lens[b])] for x in xs]
        per_batch.append(_scan(node, body, [s[b] for s in formal[:n_state]], xs, outer))
    return tuple(np.stack(parts) for parts in zip(*per_batch))
