"""Recurrent layers: RNN, GRU and LSTM (forward, reverse, bidirectional; sequence_lens; both
layouts; clip; custom activations; LSTM peepholes and input_forget; GRU linear_before_reset).

Time steps run in a Python loop over batched matrix products, in float64 for float inputs.
Steps past a sequence's length leave its state alone and write zeros to Y, as ONNX Runtime does.
"""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, fail


def _act(node, name, alpha, beta):
    name = name.decode() if isinstance(name, bytes) else name
    acts = {
        "relu": lambda x: np.maximum(x, 0),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "affine": lambda x: (1.0 if alpha is None else alpha) * x + (0.0 if beta is None else beta),
        "leakyrelu": lambda x: np.where(x >= 0, x, (0.01 if alpha is None else alpha) * x),
        "thresholdedrelu": lambda x: np.where(x > (1.0 if alpha is None else alpha), x, 0),
        "scaledtanh": lambda x: (1.0 if alpha is None else alpha) * np.tanh((1.0 if beta is None else beta) * x),
        "hardsigmoid": lambda x: np.clip((0.2 if alpha is None else alpha) * x + (0.5 if beta is None else beta),
                                         0, 1),
        "elu": lambda x: np.where(x >= 0, x, (1.0 if alpha is None else alpha) * (np.exp(x) - 1)),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "softplus": lambda x: np.log1p(np.exp(x)),
    }
    fn = acts.get(name.lower())
    if fn is None:
        raise UnsupportedOpError(f"node '{node.name}' ({node.op}): activation '{name}' is not known")
    return fn


_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


def _activations(node, defaults, directions):
    names = node.attrs.get("activations") or defaults * directions
    if len(names) != len(defaults) * directions:
        raise fail(node, f"{len(names)} activations given, {len(defaults) * directions} needed")
    alphas, betas = list(node.attrs.get("activation_alpha", [])), list(node.attrs.get("activation_beta", []))
    fns = []
    for n in names:
        key = (n.decode() if isinstance(n, bytes) else n).lower()
        a = alphas.pop(0) if key in _TAKES_ALPHA and alphas else None
        b = betas.pop(0) if key in _TAKES_BETA and betas else None
        fns.append(_act(node, n, a, b))
    return [fns[d * len(defaults):(d + 1) * len(defaults)] for d in range(directions)]


def _setup(node, x, w, r, b, seq_lens, init, gates):
    hidden = node.attrs.get("hidden_size") or r.shape[-1]
    layout = node.attrs.get("layout", 0)
    if layout:
        x = x.transpose(1, 0, 2)
    direction = attr_str(node, "direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UnsupportedOpError(f"node '{node.name}' ({node.op}): direction '{direction}' is not known")
    seq, batch = x.shape[:2]
    if w.shape != (dirs, gates * hidden, x.shape[2]) or r.shape != (dirs, gates * hidden, hidden):
        raise fail(node, f"W {w.shape} / R {r.shape} do not fit {dirs} direction(s), {gates} gates, "
                         f"hidden {hidden}, input {x.shape[2]}")
    bias = np.zeros((dirs, 2 * gates * hidden)) if b is None else b.astype(np.float64)
    lens = np.full(batch, seq, np.int64) if seq_lens is None else seq_lens.astype(np.int64)
    if np.any((lens < 0) | (lens > seq)):
        raise fail(node, f"sequence_lens {lens.tolist()} must lie in [0, {seq}]")
    states = []
    for s in init:
        if s is None:
            states.append(np.zeros((dirs, batch, hidden)))
        else:
            states.append((s.transpose(1, 0, 2) if layout else s).astype(np.float64))
    return x.astype(np.float64), hidden, layout, direction, dirs, seq, batch, bias, lens, states


def _run(node, x, w, r, bias, lens, states, direction, dirs, step):
    """Loop over time for each direction: step(d, xt, states) -> new states (first is H)."""
    seq, batch = x.shape[:2]
    hidden = states[0].shape[-1]
    y = np.zeros((seq, dirs, batch, hidden))
    finals = [np.zeros_like(s) for s in states]
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        st = [s[d] for s in states]
        wx = np.einsum("tbi,gi->tbg", x, w[d])  # the input part of every step at once
        for t in range(seq):
            live = (t < lens)[:, None]
            if reverse:  # walk each sequence backwards over its own valid length
                src = np.clip(lens - 1 - t, 0, seq - 1)
                xt = wx[src, np.arange(batch)]
            else:
                src = np.full(batch, t)
                xt = wx[t]
            new = step(d, xt, st)
            st = [np.where(live, n, o) for n, o in zip(new, st)]
            rows = np.arange(batch)
            y[src, d, rows] = np.where(live, st[0], y[src, d, rows])
        for k, s in enumerate(st):
            finals[k][d] = s
    return y, finals


def _outputs(node, y, finals, layout, dtype):
    if layout:
        y = y.transpose(2, 0, 1, 3)
        finals = [f.transpose(1, 0, 2) for f in finals]
    return (y.astype(dtype),) + tuple(f.astype(dtype) for f in finals)


def _clip(node):
    c = node.attrs.get("clip")
    return (lambda v: np.clip(v, -c, c)) if c is not None else (lambda v: v)


@kernel("RNN")
def rnn(node, x, w, r, b=None, seq_lens=None, h0=None):
    x64, hidden, layout, direction, dirs, seq, batch, bias, lens, states = \
        _setup(node, x, w, r, b, seq_lens, [h0], 1)
    acts, clip = _activations(node, ["Tanh"], dirs), _clip(node)
    rr = r.astype(np.float64)

    def step(d, xt, st):
        pre = xt + st[0] @ rr[d].T + bias[d, :hidden] + bias[d, hidden:]
        return [acts[d][0](clip(pre))]
    y, finals = _run(node, x64, w.astype(np.float64), rr, bias, lens, states, direction, dirs, step)
    return _outputs(node, y, finals, layout, x.dtype)


@kernel("GRU")
def gru(node, x, w, r, b=None, seq_lens=None, h0=None):
    x64, hidden, layout, direction, dirs, seq, batch, bias, lens, states = \
        _setup(node, x, w, r, b, seq_lens, [h0], 3)
    acts, clip = _activations(node, ["Sigmoid", "Tanh"], dirs), _clip(node)
    rr = r.astype(np.float64)
    before = node.attrs.get("linear_before_reset", 0)
    hs = hidden

    def step(d, xt, st):
        h = st[0]
        wb, rb = bias[d, :3 * hs], bias[d, 3 * hs:]
        rz = h @ rr[d, :2 * hs].T + rb[:2 * hs]
        z = acts[d][0](clip(xt[:, :hs] + rz[:, :hs] + wb[:hs]))
        rg = acts[d][0](clip(xt[:, hs:2 * hs] + rz[:, hs:] + wb[hs:2 * hs]))
        if before:
            cand = xt[:, 2 * hs:] + rg * (h @ rr[d, 2 * hs:].T + rb[2 * hs:]) + wb[2 * hs:]
        else:
            cand = xt[:, 2 * hs:] + (rg * h) @ rr[d, 2 * hs:].T + rb[2 * hs:] + wb[2 * hs:]
        hc = acts[d][1](clip(cand))
        return [(1 - z) * hc + z * h]
    y, finals = _run(node, x64, w.astype(np.float64), rr, bias, lens, states, direction, dirs, step)
    return _outputs(node, y, finals, layout, x.dtype)


@kernel("LSTM")
def lstm(node, x, w, r, b=None, seq_lens=None, h0=None, c0=None, p=None):
    x64, hidden, layout, direction, dirs, seq, batch, bias, lens, states = \
        _setup(node, x, w, r, b, seq_lens, [h0, c0], 4)
    acts, clip = _activations(node, ["Sigmoid", "Tanh", "Tanh"], dirs), _clip(node)
    rr = r.astype(np.float64)
    peep = np.zeros((dirs, 3 * hidden)) if p is None else p.astype(np.float64)
    couple = node.attrs.get("input_forget", 0)
    hs = hidden

    def step(d, xt, st):
        h, c = st
        f_, g_, h_ = acts[d]
        pre = xt + h @ rr[d].T + bias[d, :4 * hs] + bias[d, 4 * hs:]
        pi, po, pf = peep[d, :hs], peep[d, hs:2 * hs], peep[d, 2 * hs:]
        i = f_(clip(pre[:, :hs] + pi * c))
        f = 1 - i if couple else f_(clip(pre[:, 2 * hs:3 * hs] + pf * c))
        cand = g_(clip(pre[:, 3 * hs:]))
        c_new = f * c + i * cand
        o = f_(clip(pre[:, hs:2 * hs] + po * c_new))
        return [o * h_(c_new), c_new]
    y, finals = _run(node, x64, w.astype(np.float64), rr, bias, lens, states, direction, dirs, step)
    return _outputs(node, y, finals, layout, x.dtype)
