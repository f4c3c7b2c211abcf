"""Input-side affine folding: a per-channel x * s + t computed only to feed Convs moves into
their weights: Conv(x * s + t) = Conv'(x) with W'[o, c] = W[o, c] * s[c] and
b'[o] = b[o] + sum over c, k of W[o, c, k] * t[c].

The shift part is exact only where the Conv reads no padding (zero padding of x * s + t is not
x's zero padding, scaled and shifted), so with t != 0 every reading Conv must be unpadded.
PaddlePaddle's learnable affine blocks (PP-OCRv4, PP-LCNet) put such a Mul + Add after each
activation, in front of the next Conv; fold_batchnorm handles the ones after a Conv.
"""
from __future__ import annotations

import numpy as np

from .fold_batchnorm import per_channel
from .rewrite import Rewrite


def fold_input_affine(graph):
    rw = Rewrite(graph)
    folded, convs = 0, 0
    for node in list(rw.g.nodes):
        if node.op not in ("Mul", "Add") or id(node) in rw.removed:
            continue
        readers = rw.consumers(node.outputs[0])
        if not readers or node.outputs[0] in rw.graph_outputs or not all(_foldable(rw, c, node) for c in readers):
            continue
        cin = _in_channels(rw, readers[0])
        if any(_in_channels(rw, c) != cin for c in readers):
            continue
        chain = _chain(rw, node, cin, rw.const(readers[0].inputs[1]).ndim)
        if chain is None:
            continue
        x, scale, shift, nodes = chain
        if np.any(shift != 0) and not all(_unpadded(c) for c in readers):
            continue
        for conv in readers:
            _rewrite_weights(rw, conv, x, scale, shift)
            rw.note_reader(x, conv)
        rw.remove(*nodes)
        folded, convs = folded + len(nodes), convs + len(readers)
    what = f"folded {folded} Mul/Add into the {convs} Conv reading them" if folded else "no change"
    return rw.finish(), what


def _foldable(rw, conv, node):
    if conv.op != "Conv" or conv.inputs[0] != node.outputs[0] or node.outputs[0] in conv.inputs[1:]:
        return False
    w = rw.const(conv.inputs[1])
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    return w is not None and w.dtype.kind == "f" and w.ndim >= 3 and (not bias or rw.const(bias) is not None)


def _in_channels(rw, conv):
    return rw.const(conv.inputs[1]).shape[1] * conv.attrs.get("group", 1)


def _unpadded(conv):
    auto = conv.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return auto == "VALID" or (auto == "NOTSET" and not any(conv.attrs.get("pads", [])))


def _chain(rw, last, channels, rank):
    """Walk back from `last` through Mul/Add nodes with per-channel constants, each read only by
    the next: (x, s, t, nodes) with last's output == x * s + t, or None."""
    nodes, node = [], last
    while node is not None and node.op in ("Mul", "Add"):
        x, c = rw.const_operand(node)
        if c is None or per_channel(c, channels, rank) is None:
            break
        nodes.append(node)
        prev = rw.producer(x, "Mul", "Add")
        node = prev if prev is not None and rw.sole_consumer(x) is node else None
    if not nodes:
        return None
    scale, shift = np.ones(channels), np.zeros(channels)
    for n in reversed(nodes):  # collected last first
        c = per_channel(rw.const_operand(n)[1], channels, rank)
        scale, shift = (scale * c, shift * c) if n.op == "Mul" else (scale, shift + c)
    return rw.const_operand(nodes[-1])[0], scale, shift, nodes


def _rewrite_weights(rw, conv, x, scale, shift):
    w = rw.const(conv.inputs[1])
    group = conv.attrs.get("group", 1)
    cout, cg = w.shape[0], w.shape[1]
    grouped = w.astype(np.float64).reshape(group, cout // group, cg, -1)
    s = scale.reshape(group, 1, cg, 1)
    t = shift.reshape(group, 1, cg, 1)
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    b = rw.const(bias).astype(np.float64) if bias else np.zeros(cout)
    b = b + (grouped * t).sum(axis=(2, 3)).reshape(cout)
    conv.inputs = [x, rw.add_constant(f"{conv.name}_W", (grouped * s).reshape(w.shape).astype(w.dtype)),
                   rw.add_constant(f"{conv.name}_B", b.astype(w.dtype))]
