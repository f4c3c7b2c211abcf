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

With numba (backends/cpu/jit.py), jit_winograd.py's compiled loops do the gather + input
transform and the output transform + bias + activation + scatter instead, over stride phases of
the image (its docstring); U and the GEMM stay the same.

The unit m is chosen per layer by a cost model, as MNN's bestWinogradUnit does: each
candidate's GEMM FLOPs, weight bytes and transform passes are priced with rates measured on
this backend (docs/cpu.md), and im2col (m = 1) wins when nothing beats it. The same model
picks the numpy or the compiled transforms: the compiled ones win except on small images of
many channels, where the spare tile column they carry through the GEMM costs more.
"""
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import jit
from .conv import GEMM_CHUNKS, ConvCPU, PaddedInput, phased
from .parallel import NativeJob, blas, chunks, gemm_workers, serial_blas

UNITS = (2, 4, 6)
_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
# Cost model rates, fitted to 1-thread layer times (20 shapes x 4 units x both paths,
# docs/cpu.md): seconds per GEMM FLOP; per byte of (transformed) weights the GEMMs pack, from
# cache up to WEIGHT_CACHED bytes and from memory beyond; per element through numpy's thin
# transform GEMMs (inner dimension m+2) and strided copies, and per numpy call; and for the
# compiled path per float written by a multiply-add pass over a plane (up to four terms per
# pass) and per float through the phase split or merge.
GEMM_S_PER_FLOP = 1 / 100e9
WEIGHT_S_PER_BYTE = 1 / 49e9
WEIGHT_CACHED = 6e6
WEIGHT_S_PER_DRAM_BYTE = 1 / 8.5e9
THIN_S_PER_ELEM = 0.086e-9
COPY_S_PER_ELEM = 0.367e-9
CALL_S = 2.4e-6
PASS_S_PER_ELEM = 0.174e-9
SCALAR_S_PER_ELEM = 0.305e-9
# Winograd is taken only when it is estimated this much cheaper than im2col (the model's median
# error is 5%).
IM2COL_TIE = 1.03
# Tile rows are transformed and multiplied in blocks of about this many bytes of tiles.
BLOCK_BYTES = 2 << 20
# The compiled path's blocks (V and M together), and the bytes its kernels keep per pass.
JIT_BLOCK_BYTES = 4 << 20
PASS_BYTES = 256 << 10
# With the thread pool (parallel.py), the blocks -- transform, GEMM on one thread, transform
# back -- are shared by two threads from this many multiply-adds (of the Winograd GEMMs): the
# transforms then use both cores, where before they ran on one between OpenBLAS's 2-thread
# GEMMs (measured, 2 threads: PP-OCRv4 det 47 -> 37 ms; per layer 1.4-1.9x from YOLOv8n's
# 16 channels at 80x80 to ResNet-18's 64 at 56x56; none at 1.3M, 64 channels at 10x10).
SHARE_MACS = 1 << 19
# A shared layer whose transformed weights U take at least this many bytes, and which fits one
# block, runs as one block whose a*a GEMMs the two threads split (jit_winograd.layer_job).
WHOLE_U_BYTES = 2 << 20
# The compiled path's GEMMs through jit_gemm's kernel over U packed once (else cblas_sgemm,
# which repacks U on every call; kept for A/B measurements).
PACKED_GEMM = True
# ... except where the kernel's MR-row panels would be mostly padding: output channels that
# fill MR-row panels less than this (16 -> 32 rows: YOLOv8n's 16-channel 80x80 F(4,3) layers
# 0.87 -> 0.61 ms on one thread; 24: PP-OCR det's 96 -> 24 layers 1.15x) keep OpenBLAS.
PACKED_FILL = 0.8


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


def cost(g, m, compiled=False):
    """Estimated seconds for one image: m = 1 is im2col + GEMM, m > 1 Winograd F(m, 3); numpy's
    paths, or the compiled ones (jit_winograd, and jit_im2col where Im2colConv takes it)."""
    c, k = g.c, g.m
    pixels = c * (g.h + 2) * (g.w + 2)
    passes = scalar = thin = copies = calls = 0
    if m == 1:
        wq = g.ow + 2
        n = g.oh * (wq if compiled and phased(wq - g.ow, g.ow, k) else g.ow)
        gemm, weights = 2 * k * 9 * c * n, 4 * k * 9 * c
        if n > g.oh * g.ow:  # phase planes, columns and the crop: long compiled copies
            passes = pixels + (9 * c + k) * n
        else:
            copies, calls = 9 * c * n + pixels, 6
    else:
        a = m + 2
        th, tw = tiles(g, m)
        if compiled:
            tp = tw + 1
            span = (th + 1) * tp
            nb, na = _passes(m)
            gemm, weights = 2 * a * a * k * c * th * tp, 4 * a * a * k * c
            passes = (m + a) * nb * c * span + (a + m) * na * k * span + m * m * c * span
            scalar = c * g.h * g.w + k * g.oh * g.ow
        else:
            t = th * tw
            gemm, weights = 2 * a * a * k * c * t, 4 * a * a * k * c
            # B^T on rows then columns of the tiles, then A^T twice: elements read + written.
            thin = 4 * a * a * c * t + 2 * (a * a + m * a) * k * t + (m * a + m * m) * k * t
            copies = a * a * c * t + c * (th * m + 2) * (tw * m + 2) + m * m * k * t
            calls = 10 + m * m
    return (gemm * GEMM_S_PER_FLOP + min(weights, WEIGHT_CACHED) * WEIGHT_S_PER_BYTE
            + max(0, weights - WEIGHT_CACHED) * WEIGHT_S_PER_DRAM_BYTE + thin * THIN_S_PER_ELEM
            + copies * COPY_S_PER_ELEM + calls * CALL_S + passes * PASS_S_PER_ELEM
            + scalar * SCALAR_S_PER_ELEM)


@lru_cache(maxsize=None)
def _passes(m):
    """Passes of up to four terms over a plane, summed over B^T's rows and over A^T's rows."""
    at, bt, _ = transforms(m)
    return tuple(sum(-(-int(np.count_nonzero(r)) // 4) for r in x) for x in (bt, at))


def paths():
    """compiled=False, and True when numba is there."""
    return (False, True) if jit.available() else (False,)


def best_unit(g):
    """The Winograd unit m with the lowest estimated cost on either path, or 1 when im2col is
    cheaper -- or within IM2COL_TIE of it: then the untransformed weights, (m+2)^2/9 times
    fewer bytes, win (512 channels on 7x7: F(2,3) 3.118 ms, im2col 3.117)."""
    if not applies(g):
        return 1
    costs = {(m, p): cost(g, m, p) for m in (1,) + UNITS for p in paths()}
    (m, _), best = min(costs.items(), key=lambda kv: kv[1])
    im2col = min(costs[1, p] for p in paths())
    return m if best * IM2COL_TIE < im2col else 1


def compiled_pays(g, m):
    """Whether the compiled transforms beat numpy's for unit m: they do except where the GEMM's
    spare column (1/(tw + 1) more work) outweighs them, on small images of many channels."""
    return jit.available() and cost(g, m, True) <= cost(g, m, False)


def packs_well(m):
    """Whether the a*a GEMMs of a layer with m output channels run jit_gemm's kernel (PACKED_FILL)."""
    from . import jit_gemm
    return PACKED_GEMM and m >= PACKED_FILL * jit_gemm.MR * -(-m // jit_gemm.MR)


class WinogradConv(ConvCPU):
    """F(m x m, 3 x 3) by blocks of tile rows, through numpy's strided copies and thin GEMMs or,
    when numba is there, the compiled transforms of jit_winograd.py (same U, same GEMM)."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        g = self.g
        self.unit = m = best_unit(g)
        self.a = a = m + 2
        self.th, self.tw = tiles(g, m)
        self.compiled = compiled_pays(g, m)
        # Two threads take blocks in turn, each with its own transform buffers.
        self.workers = gemm_workers(backend, a * a * g.m * g.c * self.th * self.tw,
                                    SHARE_MACS)
        # Or, where U dominates, the whole layer as one block with the GEMMs split (layer_job).
        self.whole = bool(self.workers == 2 and jit.available()
                          and 4 * a * a * g.m * g.c >= WHOLE_U_BYTES
                          and 4 * a * a * (g.c + g.m) * (self.th + 1) * (self.tw + 1) <= JIT_BLOCK_BYTES)
        if self.whole:
            self.compiled, self.workers = True, 1
        (self._plan_compiled if self.compiled else self._plan_numpy)()
        self.whole = self.whole and not self.after and self.rows == self.th
        # U = G g G^T per position, or only its packed copy where jit_gemm's kernel runs every
        # GEMM (the native jobs, below): then U itself is never read and is not kept.
        self.packed_u = self.compiled and not self.after and packs_well(g.m)
        self.u = None if self.packed_u else self.prepared(f"winograd{m}", self._transform_weights)

    def _block_rows(self, per_row, budget):
        rows = max(1, min(self.th, budget // per_row))
        return min(rows, -(-self.th // GEMM_CHUNKS)) if self.workers > 1 else rows

    def _plan_numpy(self):
        g, a, m = self.g, self.a, self.unit
        at, bt, _ = transforms(m)
        self.bt, self.at = bt.astype(np.float32), at.astype(np.float32)
        self.x3 = 0
        self.pad = PaddedInput(g, self.th * m + 2, self.tw * m + 2)
        self.bias = self.bias_column() if self.bias is not None else None
        # Tile rows per block: the block's transformed tiles stay near the cache.
        self.rows = self._block_rows(4 * a * a * max(g.c, g.m) * self.tw, BLOCK_BYTES)
        tb = self.rows * self.tw
        self.x1 = max(a * a * g.c, m * a * g.m) * tb
        self.x2 = a * a * max(g.c, g.m) * tb

    def _plan_compiled(self):
        from . import jit_epilogue, jit_winograd
        g, a, m = self.g, self.a, self.unit
        self.kernels = jit_winograd.input_transform, jit_winograd.output_transform
        self.tables = jit_winograd.tables(*transforms(m)[:2])
        self.act, self.after = jit_epilogue.params(self.epilogue)
        self.b = np.ascontiguousarray(self.bias_column().reshape(-1))
        tp = self.tw + 1
        rows = max(1, min(self.th, JIT_BLOCK_BYTES // (4 * a * a * (g.c + g.m) * tp)))
        if self.workers > 1:  # a block per thread, together no larger than one thread's block,
            most = max(1, (rows + 1) // self.workers - 1)  # and as many blocks per thread
            blocks = -(-self.th // most)
            blocks += -blocks % self.workers
            rows = -(-self.th // blocks)
        self.rows = rows
        span = (self.rows + 1) * tp  # floats per channel in a block's V and M (see jit_winograd)
        # Channels per pass of the kernels: their phases and half-transformed tiles stay in L2.
        self.per_c = max(1, min(g.c, PASS_BYTES // (4 * m * (m + a) * span)))
        self.per_k = max(1, min(g.m, PASS_BYTES // (4 * (a + m) * span)))
        self.x1, self.x2 = a * a * g.c * span, a * a * g.m * span
        self.x3 = jit_winograd.scratch_floats(m, self.per_c, self.per_k, span)  # the kernels' own

    def _transform_weights(self, w):
        """U (a^2, K, C) = G g G^T for every (K, C) kernel, in float64 then rounded once."""
        gm = transforms(self.unit)[2]
        u = gm @ w.astype(np.float64) @ gm.T  # (K, C, a, a)
        return np.ascontiguousarray(u.transpose(2, 3, 0, 1).reshape(self.a * self.a, self.g.m, self.g.c),
                                    np.float32)

    def tmp_floats(self):
        return 0 if self.compiled and not self.after else super().tmp_floats()

    def scratch_bytes(self):
        if self.compiled:
            return 4 * (self.workers * (self.x1 + self.x2 + self.x3) + self.tmp_floats())
        return 4 * (self.pad.floats + self.workers * (self.x1 + self.x2) + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        pos = 0
        if not self.compiled:
            self.pad.bind(self.flat)
            pos = self.pad.floats
        step = self.x1 + self.x2 + self.x3
        self.bufs = [tuple(self.flat[pos + k * step + lo:pos + k * step + hi] for lo, hi in
                           ((0, self.x1), (self.x1, self.x1 + self.x2), (self.x1 + self.x2, step)))
                     for k in range(self.workers)]
        self.blocks = [(r0, min(self.rows, self.th - r0)) for r0 in range(0, self.th, self.rows)]
        self._bind_jobs()
        if not self.compiled:
            buf = self.pad.buf
            sc, sh, sw = buf.strides
            m = self.unit
            self.tiles_view = as_strided(buf, (self.a, self.a, self.g.c, self.th, self.tw),
                                         (sh, sw, sc, sh * m, sw * m), writeable=False)

    def _bind_jobs(self):
        """The compiled blocks as one native job per image (jit_winograd.block_job: both threads
        claim blocks from an atomic counter, no GIL; or layer_job), where the activation is the
        kernels' own. The GEMMs run jit_gemm's kernel over U packed once per session."""
        self.jobs, self.packed = [], None
        if not (self.compiled and not self.after):
            return
        from . import jit_gemm, jit_winograd
        a, g = self.a, self.g
        self.tiles = [np.empty(jit_gemm.NR * jit_gemm.MR, np.float32) for _ in range(2)]
        if self.packed_u:
            def pack(w):
                u = self._transform_weights(w)
                return np.ascontiguousarray(np.stack([jit_gemm.pack_weights(u[i], None)[0] for i in range(a * a)]))
            pu = self.prepared(f"winograd{self.unit}-packed{jit_gemm.MR}", pack)
            # kept by the executor: the jobs know them by address only
            self.packed, sgemm = (pu, np.zeros(pu.shape[1] * jit_gemm.MR, np.float32)), 0
        else:  # cblas_sgemm over U as it is (ILP64 OpenBLAS only), for two threads only, as before
            self.packed, sgemm = None, blas().sgemm64
            if not sgemm or not (self.workers == 2 or self.whole):
                return
        counter = np.zeros(3, np.int64)  # held by the NativeJob
        x, out = self.inputs[0], self.outputs[0]
        job = jit_winograd.layer_job if self.whole else jit_winograd.block_job
        # layer_job's threads share one set of buffers; block_job's have one each
        bufs = [self.bufs[0]] * 2 if self.whole else self.bufs
        self.jobs = [NativeJob(job, [jit_winograd.pack_job(x[n], self.u, out[n], self.b, self.tables, self.unit,
                                                           g.pt, g.pl, self.tw, self.th, self.rows, self.per_c,
                                                           self.per_k, self.act, counter, sgemm, buf,
                                                           self.packed and (*self.packed, tile), g.m)
                                     for buf, tile in zip(bufs, self.tiles)], counter,
                               blas=self.packed is None, solo=len(bufs) == 1) for n in range(g.n)]

    def run(self):
        serial_blas()
        if self.jobs:
            for job in self.jobs:
                job.run()
            return
        x, out = self.inputs[0], self.outputs[0]
        block = self._compiled_block if self.compiled else self._block
        for n in range(self.g.n):
            if not self.compiled:
                self.pad.fill(x[n])
            y = out[n]
            tmp = self.image_tmp(y)
            chunks(block, [(x[n], y, tmp, r0, rows) for r0, rows in self.blocks], self.workers)

    def _compiled_block(self, worker, x, y, tmp, r0, rows):
        """Tile rows [r0, r0 + rows): transform (compiled), multiply (BLAS), transform back,
        activate (compiled, or numpy's epilogue for an activation jit_epilogue lacks)."""
        g, a, m, tp = self.g, self.a, self.unit, self.tw + 1
        buf1, buf2, buf3 = self.bufs[worker]
        span = (rows + 1) * tp
        v = buf1[:a * a * g.c * span].reshape(a * a, g.c, span)
        mm = buf2[:a * a * g.m * span].reshape(a * a, g.m, span)
        to_tiles, from_tiles = self.kernels
        cols_b, rows_b, rows_a, cols_a = self.tables
        to_tiles(x, cols_b, rows_b, m, g.pt, g.pl, r0, self.tw, self.per_c, v, buf3)
        np.matmul(self.u, v[:, :, :rows * tp], out=mm[:, :, :rows * tp])  # the spare rows skipped
        from_tiles(mm, self.b, rows_a, cols_a, m, r0, self.tw, self.per_k, y, buf3, *self.act)
        if self.after:
            rows_out = slice(r0 * m, (r0 + rows) * m)
            self.epilogue.activate(y[:, rows_out], None if tmp is None else tmp[:, rows_out])

    def _block(self, worker, x, y, tmp, r0, rows):
        """Tile rows [r0, r0 + rows): gather, transform, multiply, transform back, scatter,
        activate."""
        g, a, m = self.g, self.a, self.unit
        buf1, buf2, _ = self.bufs[worker]
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
