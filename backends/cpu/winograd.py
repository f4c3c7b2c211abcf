"""Winograd convolution F(m x m, 3 x 3) for 3x3, stride 1, dilation 1 convolutions (one group).

Each m x m block of output is computed from an (m+2) x (m+2) input tile d as
    Y = A^T [ (G g G^T) * (B^T d B) ] A
so the 9*m*m multiply-adds per output block become (m+2)^2: 2.25x fewer for m=2, 4x for m=4,
5.06x for m=6. With a block of tiles batched (a = m+2), everything is a GEMM:
    gather   D (a, a, C, tiles)  <- the padded image's overlapping tiles (one strided copy)
    input    V = B^T d B: two thin GEMMs, B^T over the tile rows then over the columns
    multiply M[p] = U[p] @ V[p]            for each of the a^2 tile positions p: (K, C) @ (C, tiles)
    bias     added to M at the position of the point 1, where A^T's column is all ones
    output   Y = A^T M A: two thin GEMMs, then a strided copy into the output
U = G g G^T is computed once per node. The matrices come from Cook-Toom interpolation at the
points 0, +-1, +-2, +-1/2 (exact rationals), scaled so that B^T has small integers.

The unit m is chosen per layer by a cost model, as MNN's bestWinogradUnit does: each
candidate's GEMM FLOPs and copied elements are priced with rates measured on this backend
(docs/cpu.md), and im2col (m = 1) wins when nothing beats it.
"""
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv import GEMM_CHUNKS, ConvCPU, PaddedInput
from .parallel import chunks, gemm_workers, serial_blas

UNITS = (2, 4, 6)
_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
# Cost model rates for numpy + OpenBLAS at 2 threads, fitted to measured layer times
# (docs/cpu.md): seconds per GEMM FLOP, per byte of weights streamed from memory, per element
# through a thin transform GEMM (inner dimension m+2: bandwidth-bound), per element moved by a
# strided gather/scatter, and per numpy call.
GEMM_S_PER_FLOP = 1 / 150e9
WEIGHT_S_PER_BYTE = 1 / 8e9
THIN_S_PER_ELEM = 0.15e-9
COPY_S_PER_ELEM = 0.55e-9
CALL_S = 1e-6
# Tile rows are transformed and multiplied in blocks of about this many bytes of tiles.
BLOCK_BYTES = 2 << 20


@lru_cache(maxsize=None)
def transforms(m, r=3):
    """(A^T (m, n), B^T (n, n), G (n, r)) as float64, n = m + r - 1."""
    n = m + r - 1
    pts = [Fraction(p) for p in _POINTS[:n - 1]]

    def evaluation(cols):
        # Rows: a polynomial of `cols` coefficients evaluated at each point, then its leading coefficient.
        rows = [[p ** i for i in range(cols)] for p in pts]
        return rows + [[Fraction(int(i == cols - 1)) for i in range(cols)]]

    inverse = _inverse(evaluation(n))  # coefficients of the product from its n evaluations
    scale = [_prod(pts[j] - pts[k] for k in range(n - 1) if k != j) for j in range(n - 1)] + [Fraction(1)]
    at = [list(col) for col in zip(*evaluation(m))]
    bt = [[inverse[i][j] * scale[j] for i in range(n)] for j in range(n)]
    g = [[v / scale[j] for v in row] for j, row in enumerate(evaluation(r))]
    return tuple(np.array(x, dtype=np.float64) for x in (at, bt, g))


def _prod(values):
    out = Fraction(1)
    for v in values:
        out *= v
    return out


def _inverse(rows):
    """Exact inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(rows)
    aug = [list(r) + [Fraction(int(i == j)) for j in range(n)] for i, r in enumerate(rows)]
    for col in range(n):
        piv = next(i for i in range(col, n) if aug[i][col] != 0)
        aug[col], aug[piv] = aug[piv], aug[col]
        aug[col] = [v / aug[col][col] for v in aug[col]]
        for i in range(n):
            if i != col and aug[i][col] != 0:
                f = aug[i][col]
                aug[i] = [a - f * b for a, b in zip(aug[i], aug[col])]
    return [r[n:] for r in aug]


def applies(g):
    return (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.group) == (3, 3, 1, 1, 1, 1, 1)


def tiles(g, m):
    return -(-g.oh // m), -(-g.ow // m)


def cost(g, m):
    """Estimated seconds for one image: m = 1 is im2col + GEMM, m > 1 Winograd F(m, 3)."""
    c, k = g.c, g.m
    if m == 1:
        p = g.oh * g.ow
        gemm, weights, thin = 2 * k * 9 * c * p, 4 * k * 9 * c, 0
        copies, calls = 9 * c * p + c * (g.h + 2) * (g.w + 2), 6
    else:
        a = m + 2
        th, tw = tiles(g, m)
        t = th * tw
        gemm, weights = 2 * a * a * k * c * t, 4 * a * a * k * c
        # B^T on rows then columns of the tiles, then A^T twice: elements read + written.
        thin = 4 * a * a * c * t + 2 * (a * a + m * a) * k * t + (m * a + m * m) * k * t
        copies = a * a * c * t + c * (th * m + 2) * (tw * m + 2) + m * m * k * t
        calls = 10 + m * m
    return (gemm * GEMM_S_PER_FLOP + weights * WEIGHT_S_PER_BYTE + thin * THIN_S_PER_ELEM
            + copies * COPY_S_PER_ELEM + calls * CALL_S)


def best_unit(g):
    """The Winograd unit m with the lowest estimated cost, or 1 when im2col is cheaper."""
    if not applies(g):
        return 1
    return min((1,) + UNITS, key=lambda m: cost(g, m))


class WinogradConv(ConvCPU):
    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        g = self.g
        self.unit = m = best_unit(g)
        self.a = a = m + 2
        self.th, self.tw = tiles(g, m)
        at, bt, gm = transforms(m)
        self.bt, self.at = bt.astype(np.float32), at.astype(np.float32)
        self.u = self.prepared(f"winograd{m}", lambda w: self._transform_weights(w, gm))
        self.pad = PaddedInput(g, self.th * m + 2, self.tw * m + 2)
        self.bias = self.bias_column() if self.bias is not None else None
        # Tile rows per block: the block's transformed tiles stay near the cache.
        per_row = 4 * a * a * max(g.c, g.m) * self.tw
        self.rows = max(1, min(self.th, BLOCK_BYTES // per_row))
        # Two threads take blocks in turn, each with its own transform buffers.
        self.workers = gemm_workers(backend, a * a * g.m * g.c * self.th * self.tw)
        if self.workers > 1:
            self.rows = min(self.rows, -(-self.th // GEMM_CHUNKS))
        tb = self.rows * self.tw
        self.x1 = max(a * a * g.c, m * a * g.m) * tb
        self.x2 = a * a * max(g.c, g.m) * tb

    def _transform_weights(self, w, gm):
        """U (a^2, K, C) = G g G^T for every (K, C) kernel, in float64 then rounded once."""
        u = gm @ w.astype(np.float64) @ gm.T  # (K, C, a, a)
        return np.ascontiguousarray(u.transpose(2, 3, 0, 1).reshape(self.a * self.a, self.g.m, self.g.c),
                                    np.float32)

    def scratch_bytes(self):
        return 4 * (self.pad.floats + self.workers * (self.x1 + self.x2) + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.pad.bind(self.flat)
        pos = self.pad.floats
        step = self.x1 + self.x2
        self.bufs = [(self.flat[pos + k * step:pos + k * step + self.x1],
                      self.flat[pos + k * step + self.x1:pos + (k + 1) * step]) for k in range(self.workers)]
        self.blocks = [(r0, min(self.rows, self.th - r0)) for r0 in range(0, self.th, self.rows)]
        buf = self.pad.buf
        sc, sh, sw = buf.strides
        m = self.unit
        self.tiles_view = as_strided(buf, (self.a, self.a, self.g.c, self.th, self.tw),
                                     (sh, sw, sc, sh * m, sw * m), writeable=False)

    def run(self):
        serial_blas()
        x, out = self.inputs[0], self.outputs[0]
        for n in range(self.g.n):
            self.pad.fill(x[n])
            y = out[n]
            tmp = self.image_tmp(y)
            chunks(self._block, [(y, tmp, r0, rows) for r0, rows in self.blocks], self.workers)

    def _block(self, worker, y, tmp, r0, rows):
        """Tile rows [r0, r0 + rows): gather, transform, multiply, transform back, scatter,
        activate."""
        g, a, m = self.g, self.a, self.unit
        buf1, buf2 = self.bufs[worker]
        t = rows * self.tw
        d = buf1[:a * a * g.c * t]
        v1 = buf2[:a * a * g.c * t]
        np.copyto(d.reshape(a, a, g.c, rows, self.tw), self.tiles_view[:, :, :, r0:r0 + rows])
        # B^T d B as two thin GEMMs: B^T on the tile's rows, then on its columns.
        np.matmul(self.bt, d.reshape(a, -1), out=v1.reshape(a, -1))
        v = d
        np.matmul(self.bt, v1.reshape(a, a, -1), out=v.reshape(a, a, -1))
        mm = buf2[:a * a * g.m * t].reshape(a * a, g.m, t)
        np.matmul(self.u, v.reshape(a * a, g.c, t), out=mm)
        if self.bias is not None:
            # A^T e_p = (1, p, p^2...) is all ones at the interpolation point p = 1 (index 1), so
            # adding b there adds b to every output of the tile: on 1/a^2 of the data.
            np.add(mm[a + 1], self.bias, out=mm[a + 1])
        y1 = buf1[:m * a * g.m * t]
        np.matmul(self.at, mm.reshape(a, -1), out=y1.reshape(m, -1))
        ys = buf2[:m * m * g.m * t]
        np.matmul(self.at, y1.reshape(m, a, -1), out=ys.reshape(m, m, -1))
        ys = ys.reshape(m, m, g.m, rows, self.tw)
        for i in range(m):
            for j in range(m):
                dst = y[:, r0 * m + i:(r0 + rows) * m:m, j::m]  # numpy crops at the image edge
                np.copyto(dst, ys[i, j, :, :dst.shape[1], :dst.shape[2]])
        rows_out = slice(r0 * m, (r0 + rows) * m)  # numpy crops at the image edge
        self.epilogue.activate(y[:, rows_out], None if tmp is None else tmp[:, rows_out])
