"""Packed GEMM for convolutions (imported only when backends.cpu.jit.available()).

numpy's GEMM (OpenBLAS) packs both operands on every call. For a convolution one operand, the
weights, never changes: ResNet-18's 512-channel 3x3 layers (M=512, K=4608, N=49) spend a third
of their GEMM repacking 9.4 MB of weights, and at N=49 OpenBLAS reached 62-83 GFLOP/s on one
core here against ~100 for a square GEMM (docs/cpu.md "Packed GEMM"). onnxruntime's MLAS packs
the weights once at load; so does this module, as MNN's and ncnn's convolutions do:

  A  the weights (M, K), packed at prepare into panels of MR rows, A[panel][k][MR] (zero rows
     pad the last panel);
  B  the im2col columns, gathered straight from the (padded) image into panels of NR columns,
     B[panel][k][NR] -- no separate im2col buffer, no copy into GEMM order afterwards;
  C  the output (M, N) in NCHW, written by the tile kernel with the bias (loaded as the
     accumulators' initial value), an optional residual and a clamp (Relu, Relu6, Clip):
     whole tiles through in-register transposes, one masked vector store per row.
`gemm` runs the same tiles over a row-major B (rows ldb floats apart): the compiled Winograd
path's a*a GEMMs, over its U packed once (jit_winograd).

The tile kernel (`_tile`, and two narrower ones for a short last panel) is written in LLVM IR through a numba intrinsic: an MR x NR block of
vector accumulators (MR/LANES vectors per column) kept in registers over the whole K loop, one
broadcast of B per column and k, fused multiply-adds. numba cannot keep such a block in
registers from Python source (a local array is memory). LANES, MR, NR follow the host's vector
registers: AVX-512 16 lanes, 32 x 12 (24 of 32 registers); AVX2 8 lanes, 16 x 6 (12 of 16);
otherwise 4 lanes (NEON: 16 x 6 in 24 of 32). On this Zen 4 the kernel ran 110-115 GFLOP/s on
one core for the shapes above (OpenBLAS through numpy 62-102, same shapes, docs/cpu.md).

A convolution is one native job (`conv_job`) of the pool's two threads, in one of two modes:
  shared  (few, long columns: deep layers) all panels of B are packed first, the threads taking
          panel ranges from a counter; after a wait for the last one, they take blocks of
          (A panels x B panels) from another;
  private (many columns: early layers) a part is a range of B's panels: the thread packs them
          into its own buffer (sized to stay in L2) and multiplies all of A against them.
Gather offsets come from two tables made at plan time: col[n], the image offset of output
column n's window origin, and row[k], the offset of tap k = (c, i, j) from it, so that
B[p][k][j] = image[col[p*NR + j] + row[k]] with no bounds checks (the image is zero-padded
first). A panel whose NR columns are consecutive in the image (stride 1, one output row) is
copied as a run, one whose columns are every other one (stride 2) as a strided run.
"""
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, int64, types, uint64
from numba.extending import intrinsic

from .jit import FASTMATH, compile
from .jit_threads import address, f32_at, f64_at, fetch_add, i64_at, load, relax, u64_at


def _host_shape():
    """(LANES, MR, NR) for the host's vector registers (module docstring)."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
        flags = {k for k, v in features.items() if v}
    except Exception:  # no host information: the portable shape
        flags = set()
    import platform
    if "avx512f" in flags:
        return 16, 32, 12
    if "avx2" in flags or "avx" in flags:
        return 8, 16, 6
    if platform.machine().lower() in ("aarch64", "arm64"):
        return 4, 16, 6
    return 4, 8, 4


LANES, MR, NR = _host_shape()
MV = MR // LANES
NEG_INF, POS_INF = np.float32(-np.inf), np.float32(np.inf)

_F32, _I64, _I32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)


def _declare(builder, name, ret, params):
    fn = builder.module.globals.get(name)
    return fn if fn is not None else ir.Function(builder.module, ir.FunctionType(ret, params), name)


def _splat(builder, scalar):
    one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _const(v):
    return ir.Constant(_I64, v)


def _counted_loop(builder, count, inits, body, name):
    """acc = inits; for k in range(count): acc = body(k, acc) -- an LLVM loop whose accumulators
    are phis (registers across the loop, which numba cannot express); returns the final values
    (inits when count <= 0), positioned after the loop."""
    pre = builder.basic_block
    loop = builder.append_basic_block(f"{name}.loop")
    done = builder.append_basic_block(f"{name}.done")
    builder.cbranch(builder.icmp_signed(">", count, _const(0)), loop, done)
    builder.position_at_end(loop)
    k = builder.phi(_I64)
    k.add_incoming(_const(0), pre)
    acc = []
    for v in inits:
        phi = builder.phi(v.type)
        phi.add_incoming(v, pre)
        acc.append(phi)
    new = body(k, acc)
    k_next = builder.add(k, _const(1))
    end = builder.basic_block
    k.add_incoming(k_next, end)
    for phi, v in zip(acc, new):
        phi.add_incoming(v, end)
    builder.cbranch(builder.icmp_signed("<", k_next, count), loop, done)
    builder.position_at_end(done)
    out = []
    for v, n in zip(inits, new):  # all phis first: LLVM wants them at the top of the block
        phi = builder.phi(v.type)
        phi.add_incoming(v, pre)
        phi.add_incoming(n, end)
        out.append(phi)
    return out


# _tile(a, b, ldb, c, ldc, bias, k, lo, hi, res, tile): one MR x NR tile, acc = bias + A_panel
# (k x MR, at a) x B (k x NR at b, rows ldb floats apart: NR for a packed panel). With tile == 0: C[i*ldc + j] = clamp(acc[i][j]
# (+ res[i*ldc + j] when res != 0), lo, hi) for the whole tile, C at c; else the raw
# accumulators go to `tile` (NR x MR floats, column j at tile + j*MR) for a caller that stores
# part of a tile. All addresses and sizes int64. The tail kernels compute only the first
# TAIL_SMALL or TAIL_LARGE columns: a layer whose last panel is short -- ResNet-18's 7x7 maps,
# 49 = 4 x 12 + 1 columns -- computes 4 more columns instead of 11.
def _tile_kernel(width):
    """The tile kernel for the first `width` (<= NR) columns of a B panel (see `_tile`)."""
    @intrinsic
    def tile_kernel(typingctx, a, b, ldb, c, ldc, bias, k, lo, hi, res, tile):
        i64 = types.int64
        sig = types.void(i64, i64, i64, i64, i64, i64, i64, types.float32, types.float32, i64, i64)
        return sig, _tile_codegen(width)
    return tile_kernel


def _tile_codegen(width):
    def codegen(context, builder, sig, args):
        a, b, ldb, c, ldc, bias, k_count, lo, hi, res, tile = args
        fp, vp = _F32.as_pointer(), _VEC.as_pointer()
        ap, bp, cp = builder.inttoptr(a, fp), builder.inttoptr(b, fp), builder.inttoptr(c, fp)
        biasp = builder.inttoptr(bias, fp)
        fma = _declare(builder, f"llvm.fma.v{LANES}f32", _VEC, [_VEC, _VEC, _VEC])
        init = [builder.load(builder.bitcast(builder.gep(biasp, [_const(v * LANES)]), vp), align=4)
                for v in range(MV)]

        def step(k, acc):
            a_at, b_at = builder.mul(k, _const(MR)), builder.mul(k, ldb)
            av = [builder.load(builder.bitcast(builder.gep(ap, [builder.add(a_at, _const(v * LANES))]), vp), align=4)
                  for v in range(MV)]
            new = []
            for j in range(width):
                s = _splat(builder, builder.load(builder.gep(bp, [builder.add(b_at, _const(j))])))
                for v in range(MV):
                    new.append(builder.call(fma, [av[v], s, acc[j * MV + v]]))
            return new
        out = _counted_loop(builder, k_count, [init[v] for j in range(width) for v in range(MV)], step, "tile")
        raw = builder.append_basic_block("tile.raw")
        direct = builder.append_basic_block("tile.direct")
        exit_ = builder.append_basic_block("tile.exit")
        builder.cbranch(builder.icmp_signed("!=", tile, _const(0)), raw, direct)

        builder.position_at_end(raw)
        tp = builder.inttoptr(tile, fp)
        for j in range(width):
            for v in range(MV):
                builder.store(out[j * MV + v], builder.bitcast(builder.gep(tp, [_const(j * MR + v * LANES)]), vp), align=4)
        builder.branch(exit_)

        # Direct stores (whole tiles only), without and with a residual. Element (i, j) of the tile
        # is lane i % LANES of vector (j, i // LANES); C's row i starts at c + i*ldc.
        builder.position_at_end(direct)
        if width < NR:  # tails always go through `tile`
            builder.branch(exit_)
            builder.position_at_end(exit_)
            return context.get_dummy_value()
        plain = builder.append_basic_block("tile.plain")
        added = builder.append_basic_block("tile.residual")
        rp = builder.inttoptr(res, fp)
        builder.cbranch(builder.icmp_signed("==", res, _const(0)), plain, added)
        for block, with_res in ((plain, False), (added, True)):
            builder.position_at_end(block)
            if NR <= LANES:
                _store_rows(builder, out, cp, rp if with_res else None, ldc, lo, hi)
            else:
                _store_lanes(builder, out, cp, rp if with_res else None, ldc, lo, hi)
            builder.branch(exit_)
        builder.position_at_end(exit_)
        return context.get_dummy_value()
    return codegen


def _clamp(builder, x, lo, hi):
    """Comparisons, not min/max: NaN stays NaN (jit_epilogue.activate). Scalars or vectors."""
    if isinstance(x.type, ir.VectorType):
        lo, hi = _splat(builder, lo), _splat(builder, hi)
    x = builder.select(builder.fcmp_ordered("<", x, lo), lo, x)
    return builder.select(builder.fcmp_ordered(">", x, hi), hi, x)


def _transpose(builder, columns):
    """LANES vectors (columns; missing ones undefined) -> LANES rows: row i lane j = column j
    lane i. log2(LANES) stages of two-source shuffles (LANES of them per stage)."""
    x = list(columns) + [ir.Constant(_VEC, ir.Undefined)] * (LANES - len(columns))
    b = LANES // 2
    while b:
        y = list(x)
        lo_mask = [l if not l & b else LANES + l - b for l in range(LANES)]
        hi_mask = [l + b if not l & b else LANES + l for l in range(LANES)]
        for p in range(LANES):
            if not p & b:
                y[p] = builder.shuffle_vector(x[p], x[p + b], ir.Constant(ir.VectorType(_I32, LANES), lo_mask))
                y[p + b] = builder.shuffle_vector(x[p], x[p + b], ir.Constant(ir.VectorType(_I32, LANES), hi_mask))
        x, b = y, b // 2
    return x


def _store_rows(builder, out, cp, rp, ldc, lo, hi):
    """A whole tile through in-register transposes: each of its MR rows is one vector (NR of its
    LANES lanes stored, under a mask when NR < LANES), the residual row loaded the same way.
    Scalar stores, one per element, cost as much as the multiply-adds of a K=64 tile."""
    vp = _VEC.as_pointer()
    mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * NR + [0] * (LANES - NR))
    masked = NR < LANES
    if masked:
        mload, mstore = _masked(builder)
    for v in range(MV):
        rows = _transpose(builder, [out[j * MV + v] for j in range(NR)])
        for lane in range(LANES):
            at = builder.mul(_const(v * LANES + lane), ldc)
            x = rows[lane]
            if rp is not None:
                ptr = builder.bitcast(builder.gep(rp, [at]), vp)
                r = (builder.call(mload, [ptr, ir.Constant(_I32, 4), mask, ir.Constant(_VEC, None)]) if masked
                     else builder.load(ptr, align=4))
                x = builder.fadd(x, r)
            x = _clamp(builder, x, lo, hi)
            ptr = builder.bitcast(builder.gep(cp, [at]), vp)
            if masked:
                builder.call(mstore, [x, ptr, ir.Constant(_I32, 4), mask])
            else:
                builder.store(x, ptr, align=4)


def _store_lanes(builder, out, cp, rp, ldc, lo, hi):
    """A whole tile one element at a time (NR > LANES: rows wider than a vector)."""
    for j in range(NR):
        for v in range(MV):
            for lane in range(LANES):
                at = builder.add(builder.mul(_const(v * LANES + lane), ldc), _const(j))
                x = builder.extract_element(out[j * MV + v], ir.Constant(_I32, lane))
                if rp is not None:
                    x = builder.fadd(x, builder.load(builder.gep(rp, [at])))
                builder.store(_clamp(builder, x, lo, hi), builder.gep(cp, [at]))


_tile = _tile_kernel(NR)
TAIL_SMALL = max(1, NR // 3)
TAIL_LARGE = max(TAIL_SMALL, 2 * NR // 3)
_tail_small, _tail_large = _tile_kernel(TAIL_SMALL), _tile_kernel(TAIL_LARGE)


def pack_weights(w, bias, mr=MR):
    """A (M, K) and its bias (M,) packed as the tile kernel reads them: (panels, K, mr) and
    (panels * mr,), zero rows after M (mr = RM for the row tiles)."""
    m, k = w.shape
    panels = -(-m // mr)
    a = np.zeros((panels * mr, k), np.float32)
    a[:m] = w
    b = np.zeros(panels * mr, np.float32)
    if bias is not None:
        b[:m] = np.asarray(bias, np.float32).reshape(-1)
    return np.ascontiguousarray(a.reshape(panels, mr, k).transpose(0, 2, 1)), b


def tables(c, hp, wp, kh, kw, sh, sw, dh, dw, oh, ow):
    """Gather tables for a (c, hp, wp) zero-padded image: col (panels*NR,) uint64, the offset
    of each output column's window origin (columns past N repeat column 0: computed, never
    stored); row (c*kh*kw,) uint64, the offset of each tap; run (panels,) int64, 1 where a
    panel's columns are consecutive in the image, 2 where they are every other one (stride 2
    within an output row), else 0."""
    n = oh * ow
    panels = -(-n // NR)
    oy, ox = np.divmod(np.arange(panels * NR) % n if n else np.zeros(panels * NR, np.int64), max(ow, 1))
    col = (oy * sh * wp + ox * sw).astype(np.uint64)
    col[n:] = col[0] if n else 0
    ci, i, j = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    row = (ci * hp * wp + i * dh * wp + j * dw).reshape(-1).astype(np.uint64)
    steps = np.diff(col.reshape(panels, NR).astype(np.int64), axis=1)
    run = np.where(np.all(steps == 1, axis=1), 1, np.where(np.all(steps == 2, axis=1), 2, 0)).astype(np.int64)
    return col, row, run


@compile(inline=True)
def _pack(x, dst, col, row, run, p0, p1, k_count):
    """B panels [p0, p1) into dst (panel p0 first): dst[(p-p0)*K*NR + k*NR + j] = x[col[p*NR+j] + row[k]]."""
    nr = uint64(NR)
    for p in range(p0, p1):
        d = uint64((p - p0) * k_count) * nr
        first = uint64(p) * nr
        if run[p] == 1:
            base = col[first]
            for k in range(k_count):
                s = base + row[k]
                o = d + uint64(k) * nr
                for j in range(NR):
                    dst[o + uint64(j)] = x[s + uint64(j)]
        elif run[p] == 2:  # a constant stride LLVM turns into loads and shuffles, not a gather
            base = col[first]
            for k in range(k_count):
                s = base + row[k]
                o = d + uint64(k) * nr
                for j in range(NR):
                    dst[o + uint64(j)] = x[s + uint64(2 * j)]
        else:
            for k in range(k_count):
                r = row[k]
                o = d + uint64(k) * nr
                for j in range(NR):
                    dst[o + uint64(j)] = x[col[first + uint64(j)] + r]


@compile()
def _multiply(a, bias, b, bstep, ldb, y, ldc, res, tile, m, n, k_count, mp0, mp1, p0, p1, pb, lo, hi):
    """y (m x n, rows ldc floats apart; res likewise) tiles for A panels [mp0, mp1) x B panels
    [p0, p1): B panel p at b + (p - pb)*bstep bytes, its k rows ldb floats apart (packed panels:
    bstep = K*NR*4, ldb = NR; a row-major B: bstep = NR*4, ldb its row length). Edge tiles go
    through `tile` (a thread's NR x MR floats): the kernels read whole panel widths (up to NR-1
    columns past n in a row-major B, never stored). Not inlined: each use of a tile kernel is a
    copy of its code, and LLVM took ~40 s to optimize the copies inlined everywhere."""
    for mp in range(mp0, mp1):
        pa = a + mp * k_count * MR * 4
        pbias = bias + mp * MR * 4
        rows = min(MR, m - mp * MR)
        for p in range(p0, p1):
            n0 = p * NR
            cols = min(NR, n - n0)
            at = (mp * MR * ldc + n0) * 4
            r = res + at if res != 0 else 0
            bp = b + (p - pb) * bstep
            whole = rows == MR and cols == NR
            if cols <= TAIL_SMALL and cols < NR:
                _tail_small(pa, bp, ldb, y + at, ldc, pbias, k_count, lo, hi, r, tile)
            elif cols <= TAIL_LARGE and cols < NR:
                _tail_large(pa, bp, ldb, y + at, ldc, pbias, k_count, lo, hi, r, tile)
            else:
                _tile(pa, bp, ldb, y + at, ldc, pbias, k_count, lo, hi, r, 0 if whole else tile)
            if not whole:
                _store(tile, y + at, ldc, r, rows, cols, lo, hi)


@compile(inline=True)
def gemm(a, b, ldb, y, ldc, m, n, k_count, zero_bias, tile):
    """y (m x n, rows ldc floats apart) = A (packed by pack_weights, m rows, depth k_count) @ B
    (k_count x n row-major, rows ldb floats apart); zero_bias: A's panels x MR zeros. Addresses
    as int64, one thread."""
    _multiply(a, zero_bias, b, NR * 4, ldb, y, ldc, 0, tile, m, n, k_count, 0, -(-m // MR), 0, -(-n // NR), 0,
              NEG_INF, POS_INF)


@compile(inline=True)
def _store(tile, c, ldc, res, rows, cols, lo, hi):
    t = carray(f32_at(tile), (NR * MR,))
    out = carray(f32_at(c), ((rows - 1) * ldc + cols,))
    added = carray(f32_at(res if res != 0 else c), ((rows - 1) * ldc + cols,))  # read only when res != 0
    for j in range(cols):
        for i in range(rows):
            v = t[j * MR + i]
            if res != 0:
                v += added[i * ldc + j]
            v = lo if v < lo else v
            out[i * ldc + j] = hi if v > hi else v


# -- row tiles: 1x1 convolutions read straight from the image ---------------------------------
# A tile of RM output channels x NV vectors of LANES consecutive pixels (AVX-512: 8 x 48): per k,
# NV vector loads of input row k, RM broadcasts of the packed weights, RM*NV multiply-adds; the
# output rows stored as they are -- no B panels to pack (a 1x1 convolution's input already is
# B, row-major), no transposes at the store. Where K is short the packed tile's per-tile costs
# (packing B, the transposed store) outweigh its multiply-adds (docs/cpu.md "Row tiles").
RM, NV = (8, 3) if LANES == 16 else (4, 2)


def _splat_i64(builder, v):
    ty = ir.VectorType(_I64, LANES)
    one = builder.insert_element(ir.Constant(ty, ir.Undefined), v, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _lane_mask(builder, n):
    """Lanes < n (an i64) as a LANES x i1 vector."""
    return builder.icmp_signed("<", ir.Constant(ir.VectorType(_I64, LANES), list(range(LANES))), _splat_i64(builder, n))


def _masked(builder):
    """llvm.masked.load / llvm.masked.store for LANES floats."""
    vp, mask_ty = _VEC.as_pointer(), ir.VectorType(ir.IntType(1), LANES)
    return (_declare(builder, f"llvm.masked.load.v{LANES}f32.p0", _VEC, [vp, _I32, mask_ty, _VEC]),
            _declare(builder, f"llvm.masked.store.v{LANES}f32.p0", ir.VoidType(), [_VEC, vp, _I32, mask_ty]))


@intrinsic
def _rows_tile(typingctx, a, b, ldb, c, ldc, bias, k, lo, hi, res, rows, cols):
    """C[i*ldc + j] = clamp(bias[i] + sum_k A[k*RM + i] * B[k*ldb + j] (+ res[i*ldc + j])) for
    rows i < rows (<= RM), columns j < cols (<= NV*LANES); A one panel of pack_weights(.., RM).
    Addresses int64 (bytes), strides in floats."""
    i64 = types.int64
    sig = types.void(i64, i64, i64, i64, i64, i64, i64, types.float32, types.float32, i64, i64, i64)
    return sig, _rows_codegen


def _rows_codegen(context, builder, sig, args):
    a, b, ldb, c, ldc, bias, k_count, lo, hi, res, rows, cols = args
    fp, vp = _F32.as_pointer(), _VEC.as_pointer()
    ap, bp, cp, biasp, rp = (builder.inttoptr(v, fp) for v in (a, b, c, bias, res))
    fma = _declare(builder, f"llvm.fma.v{LANES}f32", _VEC, [_VEC, _VEC, _VEC])
    mload, mstore = _masked(builder)
    align, zero = ir.Constant(_I32, 4), ir.Constant(_VEC, None)
    no = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [0] * LANES)
    masks = [_lane_mask(builder, builder.sub(cols, _const(v * LANES))) for v in range(NV)]
    init = [_splat(builder, builder.load(builder.gep(biasp, [_const(i)]))) for i in range(RM)]

    def step(k, acc):
        row = builder.mul(k, ldb)
        bv = [builder.call(mload, [builder.bitcast(builder.gep(bp, [builder.add(row, _const(v * LANES))]), vp), align,
                                   masks[v], zero]) for v in range(NV)]
        a_at = builder.mul(k, _const(RM))
        new = []
        for i in range(RM):
            s = _splat(builder, builder.load(builder.gep(ap, [builder.add(a_at, _const(i))])))
            for v in range(NV):
                new.append(builder.call(fma, [s, bv[v], acc[i * NV + v]]))
        return new
    out = _counted_loop(builder, k_count, [init[i] for i in range(RM) for v in range(NV)], step, "rows")
    plain = builder.append_basic_block("rows.plain")
    added = builder.append_basic_block("rows.residual")
    exit_ = builder.append_basic_block("rows.exit")
    builder.cbranch(builder.icmp_signed("==", res, _const(0)), plain, added)
    for block, with_res in ((plain, False), (added, True)):
        builder.position_at_end(block)
        for i in range(RM):
            ok = builder.icmp_signed("<", _const(i), rows)
            at = builder.mul(_const(i), ldc)
            for v in range(NV):
                mask = builder.select(ok, masks[v], no)
                x = out[i * NV + v]
                where = builder.add(at, _const(v * LANES))
                if with_res:
                    x = builder.fadd(x, builder.call(mload, [builder.bitcast(builder.gep(rp, [where]), vp), align, mask, zero]))
                builder.call(mstore, [_clamp(builder, x, lo, hi), builder.bitcast(builder.gep(cp, [where]), vp), align, mask])
        builder.branch(exit_)
    builder.position_at_end(exit_)
    return context.get_dummy_value()


@compile()
def rows_multiply(a, bias, x, y, res, m, n, k_count, t0, t1, lo, hi):
    """y (m x n) = A (pack_weights(.., RM)) @ x (k_count x n) + bias [+ res], clamped, over
    column tiles [t0, t1) of NV*LANES pixels: each tile's input rows (in L1) meet every A panel.
    Addresses int64."""
    width = NV * LANES
    panels = -(-m // RM)
    for t in range(t0, t1):
        n0 = t * width
        cols = min(width, n - n0)
        for mp in range(panels):
            at = (mp * RM * n + n0) * 4
            _rows_tile(a + mp * k_count * RM * 4, x + n0 * 4, n, y + at, n, bias + mp * RM * 4, k_count, lo, hi,
                       res + at if res != 0 else 0, min(RM, m - mp * RM), cols)

# conv_job's float64 argument block (pack_job): addresses and sizes, exact in float64.
ARGS = 24
(X, XN, COL, ROW, RUN, A, BIAS, Y, RES, BUF, TILE, M, N, K, PANELS, APANELS,
 LO, HI, SHARED, CHUNK, COUNTERS, PACK_PARTS, ASPLIT, BSPLIT) = range(ARGS)


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def conv_job(part, args, unused):
    """One image of a packed-GEMM convolution, parts from counters (module docstring). Counters
    (int64 x 3 at COUNTERS): pack parts claimed, pack parts done, multiply parts claimed."""
    g = carray(f64_at(address(args)), (ARGS,))
    panels, k_count = int64(g[PANELS]), int64(g[K])
    x = carray(f32_at(int64(g[X])), (int64(g[XN]),))
    col = carray(u64_at(int64(g[COL])), (panels * NR,))
    row = carray(u64_at(int64(g[ROW])), (k_count,))
    m, n, apanels = int64(g[M]), int64(g[N]), int64(g[APANELS])
    a, bias, y, res, buf, tile = int64(g[A]), int64(g[BIAS]), int64(g[Y]), int64(g[RES]), int64(g[BUF]), int64(g[TILE])
    lo, hi = np.float32(g[LO]), np.float32(g[HI])
    chunk = int64(g[CHUNK])
    counters = int64(g[COUNTERS])
    runs = carray(i64_at(int64(g[RUN])), (panels,))
    if g[SHARED] != 0:
        dst = carray(f32_at(buf), (panels * k_count * NR,))
        pack_parts = int64(g[PACK_PARTS])
        while True:
            i = fetch_add(counters, 1)
            if i >= pack_parts:
                break
            p0, p1 = i * chunk, min(panels, (i + 1) * chunk)
            _pack(x, dst[p0 * k_count * NR:], col, row, runs, p0, p1, k_count)
            fetch_add(counters + 8, 1)
        spins = 0
        while load(counters + 8) < pack_parts:
            spins = relax(spins)
        asplit, bsplit = int64(g[ASPLIT]), int64(g[BSPLIT])
        while True:
            i = fetch_add(counters + 16, 1)
            if i >= asplit * bsplit:
                return
            ai, bi = i // bsplit, i % bsplit
            _multiply(a, bias, buf, k_count * NR * 4, NR, y, n, res, tile, m, n, k_count, apanels * ai // asplit,
                      apanels * (ai + 1) // asplit, panels * bi // bsplit, panels * (bi + 1) // bsplit, 0, lo, hi)
    else:
        dst = carray(f32_at(buf), (chunk * k_count * NR,))
        parts = -(-panels // chunk)
        while True:
            i = fetch_add(counters, 1)
            if i >= parts:
                return
            p0, p1 = i * chunk, min(panels, (i + 1) * chunk)
            _pack(x, dst, col, row, runs, p0, p1, k_count)
            _multiply(a, bias, buf, k_count * NR * 4, NR, y, n, res, tile, m, n, k_count, 0, apanels, p0, p1, p0, lo, hi)


def pack_job(x, col, row, runs, a, bias, y, res, buf, tile, m, n, k, panels, lo, hi, shared, chunk, counters,
             pack_parts, asplit, bsplit):
    """conv_job's float64 argument block for one image and thread: x the (padded) image, y the
    output (m, n), res the residual shaped like y or None; buf the shared or this thread's B
    panels, tile this thread's NR x MR floats; the rest from PackedConv's plan."""
    assert x.dtype == y.dtype == buf.dtype == tile.dtype == a.dtype == bias.dtype == np.float32
    assert col.dtype == row.dtype == np.uint64 and runs.dtype == np.int64 and counters.dtype == np.int64
    assert y.flags.c_contiguous and x.flags.c_contiguous and (res is None or (res.flags.c_contiguous and res.dtype == np.float32))
    assert tile.size >= NR * MR and buf.size >= (panels if shared else chunk) * k * NR and col.size == panels * NR
    return np.array([x.ctypes.data, x.size, col.ctypes.data, row.ctypes.data, runs.ctypes.data, a.ctypes.data,
                     bias.ctypes.data, y.ctypes.data, 0 if res is None else res.ctypes.data, buf.ctypes.data,
                     tile.ctypes.data, m, n, k, panels, a.shape[0], lo, hi, int(shared), chunk, counters.ctypes.data,
                     pack_parts, asplit, bsplit], np.float64)


ROWS_ARGS = 13
(RX, RA, RBIAS, RY, RRES, RM_, RN, RK, RLO, RHI, RCOUNTER, RPARTS, RTILES) = range(ROWS_ARGS)


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def rows_job(part, args, unused):
    """One image of a row-tile 1x1 convolution: ranges of column tiles claimed from a counter by
    whichever thread runs this (both threads share one argument block: rows_pack_job)."""
    g = carray(f64_at(address(args)), (ROWS_ARGS,))
    parts, tiles, counter = int64(g[RPARTS]), int64(g[RTILES]), int64(g[RCOUNTER])
    while True:
        i = fetch_add(counter, 1)
        if i >= parts:
            return
        rows_multiply(int64(g[RA]), int64(g[RBIAS]), int64(g[RX]), int64(g[RY]), int64(g[RRES]), int64(g[RM_]),
                      int64(g[RN]), int64(g[RK]), tiles * i // parts, tiles * (i + 1) // parts,
                      np.float32(g[RLO]), np.float32(g[RHI]))


def rows_pack_job(x, a, bias, y, res, m, n, k, lo, hi, counter, parts):
    """rows_job's float64 argument block for one image: x (k, n), y and res (m, n) C-contiguous
    float32 (res may be None), a and bias from pack_weights(.., RM)."""
    for arr in (x, a, bias, y) + (() if res is None else (res,)):
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    assert x.size >= k * n and y.size >= m * n and counter.dtype == np.int64
    tiles = -(-n // (NV * LANES))
    return np.array([x.ctypes.data, a.ctypes.data, bias.ctypes.data, y.ctypes.data, 0 if res is None else res.ctypes.data,
                     m, n, k, lo, hi, counter.ctypes.data, min(parts, tiles), tiles], np.float64)
