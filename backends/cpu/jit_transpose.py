"""Compiled output pass of a ConvTranspose whose kernel equals its stride (imported only when
backends.cpu.jit.available()).

The GEMM leaves tap (a, b) of output channel m as a plane cols[(m*kh + a)*kw + b] (H, W); output
row i*kh + a interleaves the kw planes of row a: y[m, i*kh + a, j*kw + b] = cols[..b][i, j].
numpy does that with kh*kw strided copies and the bias and activation with more passes; here
each output row is written once, bias and activation on the way (jit_epilogue.activate). For
kw == 2 (DBNet's 2x2/2 upsampling) both phases go in one loop, which LLVM vectorizes with
shuffles; other widths take a plain loop.
"""
import numpy as np

from .jit import compile
from .jit_epilogue import activate


@compile()
def scatter(cols, y, bias, kh, kw, act, lo, hi, alpha, beta):
    """y (M, H*kh, W*kw) from cols (M*kh*kw, H*W): bias (M,), then the activation."""
    n_m, oh, ow = y.shape
    w = ow // kw
    lo, hi = np.float32(lo), np.float32(hi)  # float64 bounds would widen the rows to float64
    alpha, beta = np.float32(alpha), np.float32(beta)
    for m in range(n_m):
        bm = bias[m]
        for r in range(oh):
            i, a = r // kh, r % kh
            dst = y[m, r]
            base = (m * kh + a) * kw
            if kw == 2:
                s0 = cols[base, i * w:(i + 1) * w]
                s1 = cols[base + 1, i * w:(i + 1) * w]
                for j in range(w):
                    dst[2 * j] = s0[j] + bm
                    dst[2 * j + 1] = s1[j] + bm
            else:
                for b in range(kw):
                    src = cols[base + b, i * w:(i + 1) * w]
                    for j in range(w):
                        dst[j * kw + b] = src[j] + bm
            activate(dst, act, lo, hi, alpha, beta)
