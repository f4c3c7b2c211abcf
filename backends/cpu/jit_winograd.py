"""Compiled Winograd tile transforms (numba; imported only when jit.available()).

LLVM vectorizes a loop only over a contiguous axis with a constant unit stride, and a loop
pays off only when it is long, so the transforms work on flat runs of many tiles and channels.
Tile (r, q) of a block reads padded image rows r*m .. r*m + a - 1 and columns
q*m .. q*m + a - 1: runs that overlap and step by m. Each channel is therefore first split into
m x m phases, xp[i % m, j % m][rho*tp + q'] = image[rho*m + i % m, q'*m + j % m], a phase
holding S = (rows + 1)*tp floats per channel (tp = tw + 1 columns per row, one row more than
the block has tiles): element (i, j) of every tile is then the phase plane read at a constant
offset, xp[i % m, j % m][t + (i // m)*tp + j // m] with t = c*S + r*tp + q, and each
transform is a few multiply-adds of whole planes of channels x tiles. The phase split (one
scatter of the image) and the output's phase merge are the only scalar passes.

The layout keeps one spare tile per row (q = tw) and one spare row per channel (r = rows),
which read neighbouring phases and hold garbage. The GEMM skips the spare rows (it multiplies
a strided view); the spare column rides through it (1/tp more columns, and a GEMM column only
feeds its own output) and the output transform drops both.

A plane is summed up to four terms per pass (`_terms`): a pass costs about as much with four
terms as with one (loads and stores, not multiply-adds, bound it), and LLVM gives up
vectorizing a loop when its store may overlap more than about eight loads. The terms of each
output plane -- which source row, at which offset, times which matrix entry, zeros left out --
come from tables built once per unit (`tables`).
"""
import numpy as np
from numba import carray, cfunc, int64, types, uint64

from .jit import FASTMATH, compile
from .jit_epilogue import activate
from .jit_gemm import MR, gemm
from .jit_threads import address, f32_at, f64_at, fetch_add, i64_at, load, relax, sgemm, store


def tables(at, bt):
    """Term tables (rows, offsets, coefficients, counts) for the four stages of F(m, 3), from
    its A^T (m, a) and B^T (a, a)."""
    m, a = at.shape

    def table(matrix, row, off):
        terms = [[(row(c), off(c), v) for c, v in enumerate(r) if v != 0] for r in matrix]
        width = max(len(t) for t in terms)
        rows = np.zeros((len(terms), width), np.int64)
        offs = np.zeros((len(terms), width), np.int64)
        coef = np.zeros((len(terms), width), np.float32)
        for k, t in enumerate(terms):
            for s, (r, o, v) in enumerate(t):
                rows[k, s], offs[k, s], coef[k, s] = r, o, v
        return rows, offs, coef, np.array([len(t) for t in terms], np.int64)

    return (table(bt, lambda j: j % m, lambda j: j // m),   # B^T on columns: phase j % m, shift j // m
            table(bt, lambda i: i % m, lambda i: i // m),   # B^T on rows: phase row i % m, shift i // m rows
            table(at, lambda k: k * a, lambda k: 0),        # A^T on rows: M[k*a + l]
            table(at, lambda l: l, lambda l: 0))            # A^T on columns


def scratch_floats(m, per_c, per_k, span):
    """Floats of scratch the kernels need: phases and half-transformed tiles of per_c channels,
    or the output transform's two stages for per_k channels."""
    a = m + 2
    return max(m * m * (per_c * span + 1) + a * m * per_c * span, (a + m) * per_k * span)


@compile(inline=True)
def _terms(out, s0, s1, s2, s3, w0, w1, w2, w3, take, first):
    """out = (or += when not first) the first `take` terms of w0*s0 + w1*s1 + w2*s2 + w3*s3."""
    n = out.shape[0]
    if take == 4:
        if first:
            for e in range(n):
                out[e] = w0 * s0[e] + w1 * s1[e] + w2 * s2[e] + w3 * s3[e]
        else:
            for e in range(n):
                out[e] += w0 * s0[e] + w1 * s1[e] + w2 * s2[e] + w3 * s3[e]
    elif take == 3:
        if first:
            for e in range(n):
                out[e] = w0 * s0[e] + w1 * s1[e] + w2 * s2[e]
        else:
            for e in range(n):
                out[e] += w0 * s0[e] + w1 * s1[e] + w2 * s2[e]
    elif take == 2:
        if first:
            for e in range(n):
                out[e] = w0 * s0[e] + w1 * s1[e]
        else:
            for e in range(n):
                out[e] += w0 * s0[e] + w1 * s1[e]
    elif first:
        for e in range(n):
            out[e] = w0 * s0[e]
    else:
        for e in range(n):
            out[e] += w0 * s0[e]


@compile(inline=True)
def _plane(out, src, tab, k, shift, unit, base):
    """out[e] = sum_t coef[k, t] * src[rows[k, t] + shift, base + offs[k, t]*unit + e], with
    (rows, offs, coef, cnt) = tab; four terms per pass."""
    rows, offs, coef, cnt = tab
    n = out.shape[0]
    t = 0
    while t < cnt[k]:
        take = min(4, cnt[k] - t)
        # Unused slots repeat the last term; _terms leaves them out.
        t1, t2, t3 = t + min(1, take - 1), t + min(2, take - 1), t + min(3, take - 1)
        o0, o1 = base + offs[k, t] * unit, base + offs[k, t1] * unit
        o2, o3 = base + offs[k, t2] * unit, base + offs[k, t3] * unit
        _terms(out, src[rows[k, t] + shift, o0:o0 + n], src[rows[k, t1] + shift, o1:o1 + n],
               src[rows[k, t2] + shift, o2:o2 + n], src[rows[k, t3] + shift, o3:o3 + n],
               coef[k, t], coef[k, t1], coef[k, t2], coef[k, t3], take, t == 0)
        t += take


@compile(inline=True)
def _geometry(m, tw, tiles):
    """For F(m, 3) on tw tiles per row, a block's tile array (a*a, channels, span): a, the
    tiles' row pitch tp (tw + a spare), span, its tile rows, and the array as (a*a, rest)."""
    a = m + 2
    tp = tw + 1
    span = tiles.shape[2]
    return a, tp, span, span // tp - 1, tiles.reshape(a * a, tiles.shape[1] * span)


@compile()
def input_transform(x, cols_tab, rows_tab, m, pt, pl, r0, tw, per, v, scratch):
    """v[k*a + l, c, r*tp + q] = (B^T d B)[k, l] for tile (r0 + r, q) of channel c, d being the
    a x a window of x[c] at row (r0 + r)*m - pt, column q*m - pl (zeros outside x).
    v is (a*a, C, S); `per` channels at a time, their phases and half-transformed tiles in
    `scratch` (scratch_floats), where they stay in L2."""
    n_c, h, w = x.shape
    a, tp, span, rows, vf = _geometry(m, tw, v)
    xf = x.reshape(n_c * h * w)
    for c0 in range(0, n_c, per):
        c1 = min(n_c, c0 + per)
        n = (c1 - c0) * span
        ph = scratch[:m * m * (n + 1)].reshape(m, m * (n + 1))
        ph[:] = 0.0
        # Column col of x lands in phase (col + pl) % m at column (col + pl) // m: at
        # dest[col] of its phase row's flat run. Unsigned offsets: numba wraps negative indices
        # around, and a signed offset LLVM cannot prove positive turns stores into scatters.
        dest = np.empty(w, np.uint64)
        for col in range(w):
            dest[col] = uint64(((col + pl) % m) * (n + 1) + (col + pl) // m)
        for c in range(c0, c1):
            for rho in range(rows + 1):
                for pr in range(m):
                    yy = (r0 + rho) * m + pr - pt
                    if 0 <= yy < h:
                        dst = ph[pr]
                        d0 = uint64((c - c0) * span + rho * tp)
                        s0 = uint64((c * h + yy) * w)
                        for col in range(uint64(w)):
                            dst[d0 + dest[col]] = xf[s0 + col]
        # B^T over the tiles' columns, for every phase row: cb[l, pr] (n floats).
        cb = scratch[m * m * (n + 1):m * m * (n + 1) + a * m * n].reshape(a, m, n)
        for pr in range(m):
            src = ph[pr].reshape(m, n + 1)
            for l in range(a):
                _plane(cb[l, pr], src, cols_tab, l, 0, 1, 0)
        # B^T over the tiles' rows; the last channel's spare row is left alone.
        n_v = n - tp
        for l in range(a):
            for k in range(a):
                _plane(vf[k * a + l, c0 * span:c0 * span + n_v], cb[l], rows_tab, k, 0, tp, 0)


@compile()
def output_transform(mm, bias, rows_tab, cols_tab, m, r0, tw, per, y, scratch, act, lo, hi, alpha, beta):
    """y[k, (r0 + r)*m + i, q*m + j] = act((A^T M A)[i, j] + bias[k]) for tile (r0 + r, q),
    M[k', l] = mm[k'*a + l, k, r*tp + q] (mm is (a*a, K, S)); outputs past the edge are dropped.
    `per` output channels at a time, their two stages in `scratch`. The activation is
    jit_epilogue.activate's (act, lo, hi, alpha, beta)."""
    n_k, oh, ow = y.shape
    a, tp, span, rows, mmf = _geometry(m, tw, mm)
    lo, hi = np.float32(lo), np.float32(hi)  # float64 bounds would widen the rows to float64
    alpha, beta = np.float32(alpha), np.float32(beta)
    for k0 in range(0, n_k, per):
        k1 = min(n_k, k0 + per)
        n = (k1 - k0) * span
        zp = scratch[:a * n].reshape(a, n)
        ypf = scratch[a * n:(a + m) * n]
        yp = ypf.reshape(m, n)
        # Output column col is position col % m of tile column col // m: yt at origin[col].
        origin = np.empty(ow, np.uint64)
        for col in range(ow):
            origin[col] = uint64((col % m) * n + col // m)
        for i in range(m):
            for l in range(a):      # A^T over the tiles' rows: z[l] = sum_k' A^T[i, k'] M[k', l]
                _plane(zp[l], mmf, rows_tab, i, l, 0, k0 * span)
            for j in range(m):      # A^T over the columns
                _plane(yp[j], zp, cols_tab, j, 0, 0, 0)
            # Row (r0 + r)*m + i of every output channel: bias, activation, cropped at the edge.
            for k in range(k0, k1):
                b = bias[k]
                for r in range(rows):
                    row = (r0 + r) * m + i
                    if row >= oh:
                        break
                    s0 = uint64((k - k0) * span + r * tp)
                    dst = y[k, row]
                    for col in range(ow):
                        dst[col] = ypf[s0 + origin[col]] + b
                    activate(dst, act, lo, hi, alpha, beta)


# A layer's tile-row blocks as a native job (block_job): float64 slots, addresses and sizes
# exact. (Last in the module: a cfunc compiles, or loads from the cache, where it is defined.)
X, C, H, W, U, K, Y, OH, OW, BIAS, M, PT, PL, TW, TH, ROWS, BLOCKS, PER_C, PER_K = range(19)
ACT, LO, HI, ALPHA, BETA, COUNTER, SGEMM, BUF1, N1, BUF2, N2, BUF3, N3, PACKED, ZERO, TILE, TABLES = range(19, 36)
ARGS = TABLES + 4 * 6


@compile(inline=True)
def _multiply(p, i, k, n, c, v_at, mm_at, span):
    """M[i] (k x n) = U[i] (k x c) @ V[i] (c x n), rows span floats apart: through jit_gemm's
    kernel over U packed once (PACKED), else cblas_sgemm (SGEMM) over U as it is."""
    packed = int64(p[PACKED])
    if packed != 0:
        gemm(packed + 4 * i * (-(-k // MR)) * MR * c, v_at + 4 * i * c * span, span, mm_at + 4 * i * k * span, span,
             k, n, c, int64(p[ZERO]), int64(p[TILE]))
    else:
        sgemm(int64(p[SGEMM]), k, n, c, int64(p[U]) + 4 * i * k * c, c, v_at + 4 * i * c * span, span,
              mm_at + 4 * i * k * span, span)


@compile(inline=True)
def _table(p, base):
    n, width = int64(p[base + 4]), int64(p[base + 5])
    return (carray(i64_at(int64(p[base])), (n, width)), carray(i64_at(int64(p[base + 1])), (n, width)),
            carray(f32_at(int64(p[base + 2])), (n, width)), carray(i64_at(int64(p[base + 3])), (n,)))


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def block_job(part, args, unused):
    """Blocks of tile rows claimed one at a time (an atomic counter) by whichever thread runs
    this: transform, a*a GEMMs through cblas_sgemm (BLAS on one thread), transform back with
    bias and activation -- WinogradConv._compiled_block without the GIL. Arguments: pack_job."""
    p = carray(f64_at(address(args)), (ARGS,))
    c, h, w, k, oh, ow = int64(p[C]), int64(p[H]), int64(p[W]), int64(p[K]), int64(p[OH]), int64(p[OW])
    m, tw, th, rows = int64(p[M]), int64(p[TW]), int64(p[TH]), int64(p[ROWS])
    a, tp = m + 2, int64(p[TW]) + 1
    x = carray(f32_at(int64(p[X])), (c, h, w))
    y = carray(f32_at(int64(p[Y])), (k, oh, ow))
    bias = carray(f32_at(int64(p[BIAS])), (k,))
    buf1 = carray(f32_at(int64(p[BUF1])), (int64(p[N1]),))
    buf2 = carray(f32_at(int64(p[BUF2])), (int64(p[N2]),))
    buf3 = carray(f32_at(int64(p[BUF3])), (int64(p[N3]),))
    cols_b, rows_b, rows_a, cols_a = _table(p, TABLES), _table(p, TABLES + 6), _table(p, TABLES + 12), _table(p, TABLES + 18)
    counter = int64(p[COUNTER])
    v_at, mm_at = int64(p[BUF1]), int64(p[BUF2])
    while True:
        block = fetch_add(counter, 1)
        if block >= int64(p[BLOCKS]):
            return
        r0 = block * rows
        nr = min(rows, th - r0)
        span = (nr + 1) * tp
        v = buf1[:a * a * c * span].reshape(a * a, c, span)
        mm = buf2[:a * a * k * span].reshape(a * a, k, span)
        input_transform(x, cols_b, rows_b, m, int64(p[PT]), int64(p[PL]), r0, tw, int64(p[PER_C]), v, buf3)
        for i in range(a * a):  # the spare row of each block's tiles skipped, as in the numpy GEMM
            _multiply(p, i, k, nr * tp, c, v_at, mm_at, span)
        output_transform(mm, bias, rows_a, cols_a, m, r0, tw, int64(p[PER_K]), y, buf3,
                         int64(p[ACT]), p[LO], p[HI], p[ALPHA], p[BETA])


def pack_job(x, u, y, bias, tables, m, pt, pl, tw, th, rows, per_c, per_k, act, counter, sgemm_fn, bufs,
             packed=None, k=None):
    """The float64 argument block of block_job (arrays C-contiguous, alive as long as the job:
    arena views and the executor's own). packed: (U packed per position by jit_gemm.pack_weights,
    its zero bias, this thread's tile) for jit_gemm's kernel, or None for cblas_sgemm over u
    (which only then must be given: (a*a, K, C), as it is; else u is None and k gives K)."""
    p = np.zeros(ARGS, np.float64)
    if packed is not None:
        for arr in packed:
            assert arr.dtype == np.float32 and arr.flags.c_contiguous
        p[[PACKED, ZERO, TILE]] = [arr.ctypes.data for arr in packed]
    assert (u is None) == (packed is not None)
    for arr in (x, y, bias) + tuple(bufs) + (() if u is None else (u,)):
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    p[[X, C, H, W]] = (x.ctypes.data, *x.shape)
    p[[U, K]] = (0, k) if u is None else (u.ctypes.data, u.shape[1])
    p[[Y, OH, OW]] = (y.ctypes.data, *y.shape[1:])
    p[BIAS] = bias.ctypes.data
    p[[M, PT, PL, TW, TH, ROWS, BLOCKS, PER_C, PER_K]] = m, pt, pl, tw, th, rows, -(-th // rows), per_c, per_k
    p[[ACT, LO, HI, ALPHA, BETA]] = act
    p[[COUNTER, SGEMM]] = counter.ctypes.data, sgemm_fn
    for slot, arr in zip((BUF1, BUF2, BUF3), bufs):
        p[slot], p[slot + 1] = arr.ctypes.data, arr.size
    for t, (r, o, coef, counts) in enumerate(tables):
        assert r.dtype == o.dtype == counts.dtype == np.int64 and coef.dtype == np.float32
        p[TABLES + 6 * t:TABLES + 6 * t + 6] = (r.ctypes.data, o.ctypes.data, coef.ctypes.data, counts.ctypes.data,
                                                *r.shape)
    return p


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def layer_job(part, args, unused):
    """The whole layer as one block, for layers whose transformed weights U dominate: part 0
    transforms the input, then both threads take the a*a GEMMs from an atomic counter (each
    streams its share of U once, where blocks per thread streamed all of it each), then part
    0 transforms back once all are done. Counter slots: next GEMM, GEMMs done, input ready.
    Run on one thread (part 0, then part 1), part 0 does everything and part 1 finds nothing
    left. Arguments: pack_job with rows = th."""
    p = carray(f64_at(address(args)), (ARGS,))
    c, h, w, k, oh, ow = int64(p[C]), int64(p[H]), int64(p[W]), int64(p[K]), int64(p[OH]), int64(p[OW])
    m, tw, th = int64(p[M]), int64(p[TW]), int64(p[TH])
    a, tp = m + 2, int64(p[TW]) + 1
    span = (th + 1) * tp
    counter = int64(p[COUNTER])
    if part == 0:
        x = carray(f32_at(int64(p[X])), (c, h, w))
        buf1 = carray(f32_at(int64(p[BUF1])), (int64(p[N1]),))
        buf3 = carray(f32_at(int64(p[BUF3])), (int64(p[N3]),))
        v = buf1[:a * a * c * span].reshape(a * a, c, span)
        input_transform(x, _table(p, TABLES), _table(p, TABLES + 6), m, int64(p[PT]), int64(p[PL]), 0, tw,
                        int64(p[PER_C]), v, buf3)
        store(counter + 16, 1)
    else:
        spins = 0
        while load(counter + 16) == 0:
            spins = relax(spins)
    v_at, mm_at = int64(p[BUF1]), int64(p[BUF2])
    while True:
        i = fetch_add(counter, 1)
        if i >= a * a:
            break
        _multiply(p, i, k, th * tp, c, v_at, mm_at, span)
        fetch_add(counter + 8, 1)
    if part != 0:
        return
    spins = 0
    while load(counter + 8) < a * a:
        spins = relax(spins)
    y = carray(f32_at(int64(p[Y])), (k, oh, ow))
    bias = carray(f32_at(int64(p[BIAS])), (k,))
    buf2 = carray(f32_at(int64(p[BUF2])), (int64(p[N2]),))
    buf3 = carray(f32_at(int64(p[BUF3])), (int64(p[N3]),))
    mm = buf2[:a * a * k * span].reshape(a * a, k, span)
    output_transform(mm, bias, _table(p, TABLES + 12), _table(p, TABLES + 18), m, 0, tw, int64(p[PER_K]), y, buf3,
                     int64(p[ACT]), p[LO], p[HI], p[ALPHA], p[BETA])
