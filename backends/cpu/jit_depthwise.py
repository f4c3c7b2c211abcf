"""Compiled depthwise convolution (imported only when backends.cpu.jit.available()).

Output channels are computed one at a time, over a range the caller gives (the executor shares
ranges between its threads). Each channel's input is first copied into zero-padded phase planes
P[a, b, r, k] = padded[r*sh + a, k*sw + b], so that every tap of a strided or dilated kernel
reads one plane at a constant offset: tap (i, j) of output (oy, ox) is
P[(i*dh) % sh, (j*dw) % sw, oy + (i*dh) // sh, ox + (j*dw) // sw]. Outputs are then computed
flat over the planes' row pitch -- acc[oy*cols + ox], the columns past OW wasted -- so every
tap is one long unit-stride multiply-add that LLVM vectorizes into AVX FMAs; per output row the
loop would be 7-56 long, shorter than one unrolled vector step (measured 3-4x slower). Taps go
three per pass: LLVM vectorizes a loop only after checking at run time that its store does not
overlap its loads, and gives up past about eight such checks. The arithmetic activations are
applied to each block (jit_epilogue.activate); the transcendental ones are left to the
caller's numpy epilogue, which has vectorized tanh/exp.
"""
import numpy as np

from .jit import compile
from .jit_epilogue import activate

# Outputs per block: each block goes through all tap passes while it is in L1 (8 KB).
BLOCK = 2048
@compile()
def phase_planes(src, p, rows, cols, sh, sw, pt, pl):
    """Fill p (sh*sw*rows*cols) with the phase planes of one channel (module docstring)."""
    h, w = src.shape
    p[:] = 0
    for a in range(sh):
        for r in range(rows):
            y = r * sh + a - pt
            if y < 0 or y >= h:
                continue
            line = src[y]
            if sw == 2:
                _split_row(p, ((a * 2) * rows + r) * cols, ((a * 2 + 1) * rows + r) * cols, cols, line, pl)
                continue
            for b in range(sw):
                # plane column k holds padded column k*sw + b, that is image column k*sw + b - pl
                k0 = max(0, -((b - pl) // sw))
                k1 = min(cols, (w - 1 - b + pl) // sw + 1)
                base = ((a * sw + b) * rows + r) * cols
                first = k0 * sw + b - pl
                if sw == 1:
                    _copy(p[base + k0:base + k1], line[first:first + k1 - k0])
                else:
                    for k in range(k1 - k0):
                        p[base + k0 + k] = line[first + k * sw]


@compile(inline=True)
def _split_row(p, even, odd, cols, line, pl):
    """Image row `line` into the column phases of stride 2 (planes starting at p[even], p[odd]):
    image column 2m + s is padded column 2m + s + pl, plane (s + pl) % 2, column m + (s + pl) // 2.
    Both halves in one loop, which LLVM vectorizes with shuffles (one phase alone stays scalar)."""
    w = line.shape[0]
    base0 = even if pl % 2 == 0 else odd    # where image column 2m lands
    base1 = odd if pl % 2 == 0 else even    # and 2m + 1
    k0, k1 = pl // 2, (pl + 1) // 2
    pairs = min(w // 2, cols - k0, cols - k1)
    _deinterleave(p[base0 + k0:base0 + k0 + pairs], p[base1 + k1:base1 + k1 + pairs], line)
    if w % 2 and w // 2 + k0 < cols and w // 2 == pairs:
        p[base0 + k0 + pairs] = line[w - 1]


@compile(inline=True)
def _deinterleave(first, second, line):
    for k in range(first.shape[0]):
        first[k] = line[2 * k]
        second[k] = line[2 * k + 1]


@compile(inline=True)
def _copy(dst, src):
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@compile(inline=True)
def _taps3(acc, a0, a1, a2, w0, w1, w2):
    for k in range(acc.shape[0]):
        acc[k] += w0 * a0[k] + w1 * a1[k] + w2 * a2[k]


@compile(inline=True)
def _tap1(acc, a0, w0):
    for k in range(acc.shape[0]):
        acc[k] += w0 * a0[k]


@compile()
def depthwise(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta):
    """Output channels [first, last) of y (M, OH, OW) = depthwise conv of x (C, H, W) with
    w (M, kh*kw), bias b (M,). Serial: the caller shares channel ranges between threads."""
    c = x.shape[0]
    m, oh, ow = y.shape
    mult = m // c
    lo, hi = np.float32(lo), np.float32(hi)  # float64 bounds would widen the rows to float64
    alpha, beta = np.float32(alpha), np.float32(beta)
    rows = oh + ((kh - 1) * dh) // sh
    cols = ow + ((kw - 1) * dw) // sw
    plane = rows * cols
    p = np.empty(sh * sw * plane, np.float32)
    n = oh * cols
    acc = np.empty(n, np.float32)
    taps = kh * kw
    shift = np.empty(taps, np.int64)  # where tap t reads, relative to the output's flat index
    for i in range(kh):
        for j in range(kw):
            shift[i * kw + j] = (((i * dh) % sh) * sw + (j * dw) % sw) * plane \
                + ((i * dh) // sh) * cols + (j * dw) // sw
    for ch in range(first, last):
        phase_planes(x[ch // mult], p, rows, cols, sh, sw, pt, pl)
        wc = w[ch]
        for k0 in range(0, n, BLOCK):  # every pass over one L1-sized block before the next
            k1 = min(n, k0 + BLOCK)
            blk = acc[k0:k1]
            blk[:] = b[ch]
            t = 0
            while t + 3 <= taps:
                _taps3(blk, p[shift[t] + k0:shift[t] + k1], p[shift[t + 1] + k0:shift[t + 1] + k1],
                       p[shift[t + 2] + k0:shift[t + 2] + k1], wc[t], wc[t + 1], wc[t + 2])
                t += 3
            while t < taps:
                _tap1(blk, p[shift[t] + k0:shift[t] + k1], wc[t])
                t += 1
            activate(blk, act, lo, hi, alpha, beta)
        out = y[ch]
        for oy in range(oh):
            _copy(out[oy], acc[oy * cols:oy * cols + ow])
