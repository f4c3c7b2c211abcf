"""Conv + BatchNorm folding: a per-output-channel affine map after a Conv moves into its weights.

The frontend lowers BatchNormalization with constant statistics to Mul(y, scale[C,1,1]) +
Add(., shift[C,1,1]); exporters also write such maps directly (PaddlePaddle's learnable affine
blocks, a Conv's bias as a separate Add). Starting at each Conv/ConvTranspose with constant
weights, this pass walks the chain of single-consumer Mul/Add/Sub/Div nodes with per-channel
constants (and BatchNormalization nodes the frontend could not lower), composes them into one
y * s + t, and rewrites W' = W * s (per output channel), b' = b * s + t. The arithmetic runs in
float64 and is stored in the weights' dtype.
"""
from __future__ import annotations

import numpy as np

from .rewrite import Rewrite

CONVS = ("Conv", "ConvTranspose")


def fold_batchnorm(graph):
    rw = Rewrite(graph)
    folded, convs = 0, 0
    for node in list(rw.g.nodes):
        if id(node) in rw.removed or not _foldable_conv(rw, node):
            continue
        channels, rank = _channels(rw, node), rw.const(node.inputs[1]).ndim
        scale, shift = np.ones(channels), np.zeros(channels)
        n = 0
        while True:
            nxt = rw.sole_consumer(node.outputs[0])
            step = _affine(rw, nxt, node.outputs[0], channels, rank) if nxt is not None else None
            if step is None:
                break
            s, t = step
            scale, shift = scale * s, shift * s + t
            rw.absorb(node, nxt)
            n += 1
        if n:
            _rewrite_weights(rw, node, scale, shift)
            folded, convs = folded + n, convs + 1
    what = f"folded {folded} BatchNorm/affine nodes into {convs} Conv" if folded else "no change"
    return rw.finish(), what


def _foldable_conv(rw, node):
    if node.op not in CONVS or len(node.inputs) < 2 or node.attrs.get("activation"):
        return False
    w = rw.const(node.inputs[1])
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    return w is not None and w.dtype.kind == "f" and w.ndim >= 3 and (not bias or rw.const(bias) is not None)


def _channels(rw, node):
    w = rw.const(node.inputs[1])
    return w.shape[0] if node.op == "Conv" else w.shape[1] * node.attrs.get("group", 1)


def per_channel(array, channels, rank):
    """`array` as a float64 (C,) vector when broadcasting it against a (N, C, ...) tensor of
    this rank only varies along C, else None."""
    if array is None or array.dtype.kind != "f" or array.ndim > rank:
        return None
    a = array.reshape((1,) * (rank - array.ndim) + array.shape)
    if any(d != 1 for k, d in enumerate(a.shape) if k != 1) or a.shape[1] not in (1, channels):
        return None
    return np.broadcast_to(a.reshape(-1).astype(np.float64), (channels,))


def _affine(rw, node, y, channels, rank):
    """(s, t) such that node(y) == y * s + t per channel, or None when it is not such a map."""
    if node.op == "BatchNormalization":
        if node.inputs[0] != y or len([o for o in node.outputs if o]) != 1 or node.attrs.get("training_mode"):
            return None
        params = [rw.const(i) for i in node.inputs[1:5]]
        if any(p is None or p.shape != (channels,) or p.dtype.kind != "f" for p in params):
            return None
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        s = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
        return s, beta - mean * s
    if node.op not in ("Mul", "Add", "Sub", "Div") or len(node.inputs) != 2 or y not in node.inputs:
        return None
    c = per_channel(rw.const(rw.other(node, y)), channels, rank)
    if c is None or node.inputs[0] == node.inputs[1]:
        return None
    zero, one = np.zeros(channels), np.ones(channels)
    if node.op == "Mul":
        return c, zero
    if node.op == "Add":
        return one, c
    if node.inputs[0] != y:  # c - y, c / y: not affine in y (or not per channel) for Div
        return (-one, c) if node.op == "Sub" else None
    if node.op == "Sub":
        return one, -c
    return (1.0 / c, zero) if np.all(c != 0) else None


def _rewrite_weights(rw, conv, scale, shift):
    w = rw.const(conv.inputs[1])
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    b = rw.const(bias).astype(np.float64) if bias else np.zeros(len(scale))
    if conv.op == "Conv":
        w2 = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    else:  # ConvTranspose weights are (C_in, C_out / group, k...): output channels on axis 1 per group
        group = conv.attrs.get("group", 1)
        per = w.shape[1]
        grouped = w.reshape((group, w.shape[0] // group, per) + w.shape[2:])
        w2 = (grouped * scale.reshape((group, 1, per) + (1,) * (w.ndim - 2))).reshape(w.shape)
    conv.inputs = [conv.inputs[0],
                   rw.add_constant(f"{conv.name}_W", w2.astype(w.dtype)),
                   rw.add_constant(f"{conv.name}_B", (b * scale + shift).astype(w.dtype))]
