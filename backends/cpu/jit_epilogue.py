"""Compiled bias + activation pass (imported only when backends.cpu.jit.available()).

numpy needs one pass per operation: HardSwish after a per-channel bias is five passes over the
output (the broadcast add at twice the cost of a plain one), a sizeable share of PP-OCR's 1x1
convolutions (docs/cpu.md); SiLU is four passes and a scratch the size of the output. Here
every activation costs one pass, bias included. numba's scalar exp does not vectorize (4x
slower than numpy's four-pass SiLU), so Sigmoid, SiLU and Tanh go through `tanh`, a rational
function of float32 arithmetic that LLVM vectorizes like the rest.
"""
import numpy as np
from numba import carray, cfunc, int64, types

from .jit import FASTMATH, compile
from .jit_threads import address, f32_at, f64_at, fetch_add

# Activation codes of `activate` (an activation not listed: 0 here, numpy's epilogue after).
ACT_CODES = {"": 0, "Relu": 1, "Clip": 1, "LeakyRelu": 2, "HardSigmoid": 3, "HardSwish": 4,
             "Sigmoid": 5, "SiLU": 6, "Tanh": 7}
ZERO, ONE, SIXTH, HALF = np.float32(0), np.float32(1), np.float32(1 / 6), np.float32(0.5)
# tanh(x) = x P(x^2) / Q(x^2) for |x| <= TANH_CLAMP, +-1 beyond (tanh(9) = 1 - 3e-8). P and Q
# (degree 4 in x^2, Q(0) = 1) were fitted here by iteratively reweighted linear least squares
# on [0, 9] (`python -m backends.cpu.jit_epilogue` re-fits and prints them with the error);
# in float32 the max abs error over [-12, 12] is 3.9e-7, against onnxruntime's 1e-4 tolerance.
TANH_CLAMP = np.float32(9.0)
P0, P1, P2, P3, P4 = (np.float32(v) for v in (0.9999999428101883, 0.13388158292048724, 0.0035042090283125098,
                                               2.0756484518035274e-05, 1.3568730893282274e-08))
Q1, Q2, Q3, Q4 = (np.float32(v) for v in (0.4672146662310593, 0.025909399844278737, 0.0003299976930552477,
                                           7.862123471605037e-07))


@compile(inline=True)
def tanh(x):
    """float32 tanh in arithmetic only (vectorizable); NaN stays NaN (comparisons, not min/max)."""
    v = TANH_CLAMP if x > TANH_CLAMP else x
    v = -TANH_CLAMP if v < -TANH_CLAMP else v
    t = v * v
    p = (((P4 * t + P3) * t + P2) * t + P1) * t + P0
    q = (((Q4 * t + Q3) * t + Q2) * t + Q1) * t + ONE
    r = v * p / q
    # |r| may pass 1 by the fit's error: bounded, sigmoid(-inf) is exactly 0 and SiLU(-3e38) -0.
    r = ONE if r > ONE else r
    return -ONE if r < -ONE else r


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
    elif act == 5:  # sigmoid(v) = (1 + tanh(v / 2)) / 2: no exp, no overflow
        for k in range(n):
            row[k] = HALF + HALF * tanh(HALF * row[k])
    elif act == 6:
        for k in range(n):
            v = row[k]
            row[k] = v * (HALF + HALF * tanh(HALF * v))
    elif act == 7:
        for k in range(n):
            row[k] = tanh(row[k])


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


@compile()
def affine(y, s, b):
    """y = y * s + b in place for flat float32 y (a convolution's post affine, fusion.py)."""
    s, b = np.float32(s), np.float32(b)
    for k in range(y.shape[0]):
        y[k] = y[k] * s + b


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


def _fit_tanh(degree=4, clamp=9.0, rounds=30):
    """(P, Q) of the rational tanh above: x P(x^2) - tanh(x) Q(x^2) minimized in least squares,
    reweighted by 1/|Q| each round (Sanathanan-Koerner) so that the error of P/Q is minimized."""
    x = np.concatenate([np.linspace(0, clamp, 20000)[1:], clamp * (1 - np.cos(np.linspace(0, np.pi / 2, 20000)))[1:]])
    t, f, w = x * x, np.tanh(x), np.ones_like(x)
    for _ in range(rounds):
        a = np.hstack([np.stack([x * t ** k for k in range(degree + 1)], 1),
                       np.stack([-f * t ** k for k in range(1, degree + 1)], 1)])
        sol = np.linalg.lstsq(a * w[:, None], f * w, rcond=None)[0]
        p, q = sol[:degree + 1], np.concatenate([[1.0], sol[degree + 1:]])
        w = 1 / np.abs(np.polyval(q[::-1], t))
    return p, q


if __name__ == "__main__":
    p, q = _fit_tanh()
    xs = np.linspace(-12, 12, 2000001).astype(np.float32)
    got = np.array([tanh.py_func(v) for v in xs[::1000]], np.float64)
    print("P", list(p), "\nQ", list(q))
    print("max abs error of the compiled constants, every 1000th point:", np.max(np.abs(got - np.tanh(xs[::1000].astype(np.float64)))))


# Rows of y as a native job (epilogue_job): float64 slots, addresses and sizes exact.
# (Last in the module: a cfunc compiles, or loads from the cache, where it is defined.)
ARGS = 12


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def epilogue_job(part, args, unused):
    """bias_act() over ranges of y's rows claimed one at a time (an atomic counter) by
    whichever thread runs this (parallel.pair). Arguments: pack_job."""
    a = carray(f64_at(address(args)), (ARGS,))
    rows, cols, parts, counter = int64(a[1]), int64(a[2]), int64(a[11]), int64(a[10])
    y = carray(f32_at(int64(a[0])), (rows, cols))
    bias = carray(f32_at(int64(a[3])), (rows * int64(a[4]),))
    while True:
        i = fetch_add(counter, 1)
        if i >= parts:
            return
        lo, hi = rows * i // parts, rows * (i + 1) // parts
        bias_act(y[lo:hi], bias[lo:hi] if int64(a[4]) else bias[:0], int64(a[5]), a[6], a[7], a[8], a[9])


def pack_job(y, bias, params, counter, parts):
    """The float64 argument block of epilogue_job for y (rows, cols), bias (rows,) or None."""
    has = bias is not None and bias.size > 0
    return np.array([y.ctypes.data, *y.shape, bias.ctypes.data if has else y.ctypes.data, int(has), *params,
                     counter.ctypes.data, parts], np.float64)
