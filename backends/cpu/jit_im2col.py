"""Compiled im2col (imported only when backends.cpu.jit.available()).

A column row (c, i, j) holds x[c, r*sh + i*dh - pt, q*sw + j*dw - pl] for every output (r, q):
OH runs of OW floats, each with its own edge handling -- thousands of short loops, each paying
loop setup and a scalar tail (measured 3x slower than numpy's strided copy). Here the band of
the image is first split into zero-padded stride phases (jit_depthwise's planes, one pass over
the image), P[c, a, b][rr*wq + k] = padded[(r0 + rr)*sh + a, k*sw + b], each plane
wq = OW + (kw - 1)*dw // sw wide: then every column row is one contiguous run of a plane,
P[c, i*dh % sh, j*dw % sw][(i*dh // sh)*wq + j*dw // sw + r*wq + q], copied in one long
vectorized loop. The columns are computed for wq - OW more outputs per row than exist (the
GEMM does (wq - OW)/OW more work, so the executor takes this path only where that is small),
and the copy of the GEMM's rows into the output drops them, applying the activation on the way.
Offsets are unsigned: numba wraps a negative index around, and for a signed offset LLVM cannot
rule that out and turns the loads into gathers (0.9 ns per float against 0.05).
"""
import numpy as np
from numba import uint64

from .jit import compile
from .jit_depthwise import phase_planes
from .jit_epilogue import activate


@compile()
def planes(x, p, r0, hq, wq, sh, sw, pt, pl):
    """p (C*sh*sw*hq*wq floats and more) = the stride phases of x's padded rows from r0*sh on,
    channel after channel: depthwise's phase planes, shifted down to the band."""
    n_c = x.shape[0]
    size = sh * sw * hq * wq
    for c in range(n_c):
        phase_planes(x[c], p[c * size:(c + 1) * size], hq, wq, sh, sw, pt - r0 * sh, pl)


@compile()
def columns(p, cols, hq, wq, kh, kw, sh, sw, dh, dw):
    """cols (G, Cg*kh*kw + 1, rows*wq) from the phase planes p; the last row of each group ones."""
    groups, depth, n = cols.shape
    cg = (depth - 1) // (kh * kw)
    for g in range(groups):
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    plane = ((g * cg + c) * sh + (i * dh) % sh) * sw + (j * dw) % sw
                    src = uint64(plane * hq * wq + ((i * dh) // sh) * wq + (j * dw) // sw)
                    dst = cols[g, (c * kh + i) * kw + j]
                    for e in range(uint64(n)):
                        dst[e] = p[src + e]
        ones = cols[g, depth - 1]
        for e in range(n):
            ones[e] = 1.0


@compile()
def crop(out, y, r0, wq, act, lo, hi, alpha, beta):
    """y[k, r0 + r, :] = act(out[k, r*wq : r*wq + OW]) for the band's rows r (out is (K, rows*wq)):
    the GEMM's spare outputs dropped, jit_epilogue.activate's activation applied."""
    n_k, n = out.shape
    ow = y.shape[2]
    lo, hi = np.float32(lo), np.float32(hi)  # float64 bounds would widen the rows to float64
    alpha, beta = np.float32(alpha), np.float32(beta)
    for k in range(n_k):
        src = out[k]
        for r in range(n // wq):
            dst = y[k, r0 + r]
            s = uint64(r * wq)
            for q in range(uint64(ow)):
                dst[q] = src[s + q]
            activate(dst, act, lo, hi, alpha, beta)
