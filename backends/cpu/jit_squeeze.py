"""Compiled squeeze-and-excitation (imported only when backends.cpu.jit.available()): the mean
of every channel, two small fully connected layers with their activations, and the channels
scaled, in one call (squeeze.py)."""
import numpy as np

from .jit import compile
from .jit_epilogue import activate


@compile(inline=True)
def _dense(w, v, b, out, act, lo, hi, alpha, beta):
    """out = act(w @ v + b) for a small (rows, cols) w."""
    for j in range(w.shape[0]):
        acc = b[j]
        for i in range(w.shape[1]):
            acc += w[j, i] * v[i]
        out[j] = acc
    activate(out, act, np.float32(lo), np.float32(hi), np.float32(alpha), np.float32(beta))


@compile()
def squeeze_excite(x, w1, b1, w2, b2, y, work, act1, lo1, hi1, alpha1, beta1, act2, lo2, hi2, alpha2, beta2):
    """y[c] = x[c] * act2(W2 act1(W1 mean + b1) + b2)[c], mean[c] = the mean of x[c]; x, y
    (C, HW) float32 (y may be x), w1 (R, C), w2 (C, R); work: C + R + C floats."""
    c, hw = x.shape
    r = w1.shape[0]
    mean, hidden, scale = work[:c], work[c:c + r], work[c + r:c + r + c]
    inv = np.float32(1.0) / np.float32(hw)
    for ch in range(c):
        s = np.float32(0.0)
        for i in range(hw):
            s += x[ch, i]
        mean[ch] = s * inv
    _dense(w1, mean, b1, hidden, act1, lo1, hi1, alpha1, beta1)
    _dense(w2, hidden, b2, scale, act2, lo2, hi2, alpha2, beta2)
    for ch in range(c):
        g = scale[ch]
        for i in range(hw):
            y[ch, i] = x[ch, i] * g
