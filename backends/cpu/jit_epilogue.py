"""Compiled bias + activation pass (imported only when backends.cpu.jit.available()).

numpy needs one pass per operation: HardSwish after a per-channel bias is five passes over the
output (the broadcast add at twice the cost of a plain one), a sizeable share of PP-OCR's 1x1
convolutions (docs/cpu.md). The arithmetic activations here cost one pass, bias included. The
transcendental ones (Sigmoid, SiLU, Tanh) stay with numpy, whose tanh/exp are vectorized:
numba's scalar exp measured 4x slower than numpy's four-pass SiLU.
"""
import numpy as np

from .jit import compile

# Activation codes of `activate` (an activation not listed: 0 here, numpy's epilogue after).
ACT_CODES = {"": 0, "Relu": 1, "Clip": 1, "LeakyRelu": 2, "HardSigmoid": 3, "HardSwish": 4}
ZERO, ONE, SIXTH, HALF = np.float32(0), np.float32(1), np.float32(1 / 6), np.float32(0.5)


@compile(inline=True)
def activate(row, act, lo, hi, alpha, beta):
    """row = act(row) in place for a 1-D float32 row. Comparisons, not min/max, so that NaN
    stays NaN; float32 constants, so that nothing widens to float64."""
    n = row.shape[0]
    if act == 1:
        for k in range(n):
            v = row[k]
            v = lo if v < lo else v
            row[k] = hi if v > hi else v
    elif act == 2:
        for k in range(n):
            v = row[k]
            row[k] = v if v >= ZERO else v * alpha
    elif act == 3:
        for k in range(n):
            v = row[k] * alpha + beta
            v = ZERO if v < ZERO else v
            row[k] = ONE if v > ONE else v
    elif act == 4:
        for k in range(n):
            v = row[k]
            g = v * SIXTH + HALF
            g = ZERO if g < ZERO else g
            row[k] = v * (ONE if g > ONE else g)


@compile()
def bias_act(y, bias, act, lo, hi, alpha, beta):
    """y (M, L) = act(y + bias[:, None]) in place; an empty bias adds nothing."""
    lo, hi = np.float32(lo), np.float32(hi)
    alpha, beta = np.float32(alpha), np.float32(beta)
    has_bias = bias.shape[0] > 0
    for m in range(y.shape[0]):
        row = y[m]
        if has_bias:
            b = bias[m]
            for k in range(row.shape[0]):
                row[k] += b
        activate(row, act, lo, hi, alpha, beta)


# Residual outputs go through the add and the activation a block at a time, in L1.
RESIDUAL_BLOCK = 4096


@compile()
def add_act(y, z, act, lo, hi, alpha, beta):
    """y = act(y + z) in place for flat float32 y, z (a convolution's residual, fusion.py)."""
    lo, hi = np.float32(lo), np.float32(hi)
    alpha, beta = np.float32(alpha), np.float32(beta)
    n = y.shape[0]
    for k0 in range(0, n, RESIDUAL_BLOCK):
        k1 = min(n, k0 + RESIDUAL_BLOCK)
        row, res = y[k0:k1], z[k0:k1]
        for k in range(k1 - k0):
            row[k] += res[k]
        activate(row, act, lo, hi, alpha, beta)


def params(epilogue):
    """(act code, lo, hi, alpha, beta) of a gemm.Epilogue, and the activation left to numpy."""
    act = ACT_CODES.get(epilogue.act, 0)
    after = epilogue.act if epilogue.act and epilogue.act not in ACT_CODES else ""
    if epilogue.act == "Clip":
        lo, hi = epilogue.lo, epilogue.hi
    elif epilogue.act == "Relu":
        lo, hi = 0.0, np.inf
    else:
        lo, hi = -np.inf, np.inf
    return (act, float(lo), float(hi), float(epilogue.alpha), float(epilogue.beta)), after
