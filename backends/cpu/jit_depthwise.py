"""Compiled depthwise convolution (imported only when backends.cpu.jit.available()).

Outputs are computed flat over a row pitch -- out[oy*pitch + ox] -- so that every tap is one
long unit-stride multiply-add that LLVM vectorizes into AVX FMAs; per output row the loop
would be 7-56 long, shorter than one unrolled vector step (measured 3-4x slower). Taps go up to
three per pass: LLVM vectorizes a loop only after checking at run time that its store does not
overlap its loads, and gives up past about eight such checks. The activation is applied to
each block (jit_epilogue.activate). Channels go over a range the caller
gives (the executor shares ranges between its threads). Three paths -- the caller picks blocked
(depthwise.by_blocks) or the flat ones:

same_width (stride 1, OW == W: "same" padding, most layers) computes straight into y over the
image's own pitch W. Tap (i, j) of output flat k reads image flat k + dy*W + dx
(dy = i*dh - pt, dx = j*dw - pl) for the output rows whose input row exists (a range of k);
at the first -dx (last dx) columns of a row that read would wrap into the previous (next) row,
where it must read padding, so column j reads a copy of the image with the wrapped-into columns
zeroed (its "version"). A zero, not a correction after the fact: Inf - Inf would leave NaN in
a neighbour. Small maps take a group of channels per L1 block, so that their versions are one
copy and their activation one pass. Before, the phase planes' per-row copies in and out were
most of the time (7-28 floats a row, scalar remainder code).

phased (the rest: strides, or OW != W) copies each channel into zero-padded phase planes
P[a, b, r, k] = padded[r*sh + a, k*sw + b], so that every tap of a strided or dilated kernel
reads one plane at a constant offset: tap (i, j) of output (oy, ox) is
P[(i*dh) % sh, (j*dw) % sw, oy + (i*dh) // sh, ox + (j*dw) // sw]; outputs are computed over
the planes' pitch, the columns past OW wasted, and copied into y.

blocked (one output channel per input channel) vectorizes over channels instead, LANES at a
time, through in-register transposes in and out of a zero-padded image of LANES-float pixels
(docs/cpu.md "Depthwise by channel blocks"): no short rows, no phase planes, each output
pixel's sum in a register over all taps.
"""
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, int64, types, uint64
from numba.extending import intrinsic

from .jit import FASTMATH, compile
from .jit_gemm import _F32, _I32, _I64, _VEC, LANES, _const, _counted_loop, _declare, _lane_mask, _masked, _transpose
from .jit_threads import address, f32_at, f64_at, fetch_add
from .jit_epilogue import activate

# Outputs per block: each block goes through all tap passes while it is in L1 (8 KB).
BLOCK = 2048
# Floats per cache line: the phase planes and the accumulator start on one (measured up to
# 1.4x slower on 8-byte aligned scratch).
ALIGN = 16
NEG_INF = np.float32(-np.inf)


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


@compile(inline=True)
def _mac(acc, oa, n, taps, first, bias, s0, o0, s1, o1, s2, o2, w0, w1, w2):
    """acc[oa:oa + n] (+)= w0*s0[o0:o0 + n] + ... over `taps` (1-3) sources; the first pass
    sets bias + taps, which saves a pass filling acc with the bias. Offsets, not views: a
    view costs a reference count update, several per pass (~0.1 us per 7x7 channel)."""
    oa, o0, o1, o2 = uint64(oa), uint64(o0), uint64(o1), uint64(o2)
    if first:
        if taps == 3:
            for k in range(uint64(n)):
                acc[oa + k] = bias + w0 * s0[o0 + k] + w1 * s1[o1 + k] + w2 * s2[o2 + k]
        elif taps == 2:
            for k in range(uint64(n)):
                acc[oa + k] = bias + w0 * s0[o0 + k] + w1 * s1[o1 + k]
        else:
            for k in range(uint64(n)):
                acc[oa + k] = bias + w0 * s0[o0 + k]
    elif taps == 3:
        for k in range(uint64(n)):
            acc[oa + k] += w0 * s0[o0 + k] + w1 * s1[o1 + k] + w2 * s2[o2 + k]
    elif taps == 2:
        for k in range(uint64(n)):
            acc[oa + k] += w0 * s0[o0 + k] + w1 * s1[o1 + k]
    else:
        for k in range(uint64(n)):
            acc[oa + k] += w0 * s0[o0 + k]


@compile()
def depthwise(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta, by_blocks, work=None):
    """Output channels [first, last) of y (M, OH, OW) = depthwise conv of x (C, H, W) with
    w (M, kh*kw), bias b (M,); x and y C-contiguous. `work`: scratch of
    work_floats(...) floats, any contents (allocated here when omitted or short). by_blocks: 1 the
    channel-block path (blocked(); m == c only), 2 a max pool of the planes by channel blocks
    (w, b and the activation unused), 0 same_width or phased. Serial: the caller shares channel
    ranges between threads."""
    lo, hi = np.float32(lo), np.float32(hi)  # float64 bounds would widen the rows to float64
    alpha, beta = np.float32(alpha), np.float32(beta)
    c, h, wd = x.shape
    m, oh, ow = y.shape
    size = work_floats(c, h, wd, m, oh, ow, kh, kw, sh, sw, dh, dw, pl, by_blocks)
    if work is None or work.shape[0] < size:
        buf = np.empty(size, np.float32)
    else:
        buf = work[:size]
    if by_blocks:
        blocked(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf, by_blocks == 2)
    elif sh == 1 and sw == 1 and ow == wd:
        same_width(x, w, b, y, first, last, kh, kw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf)
    else:
        phased(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf)


@compile()
def work_floats(c, h, wd, m, oh, ow, kh, kw, sh, sw, dh, dw, pl, by_blocks):
    """Scratch floats that depthwise() needs for this geometry."""
    if by_blocks:
        return _blocked_floats(oh, ow, kh, kw, sh, sw, dh, dw)
    if sh == 1 and sw == 1 and ow == wd:
        group, rows, span, margin = _blocks(c, h, wd, m, oh, kw, dw, pl)
        return kw * span
    rows = oh + ((kh - 1) * dh) // sh
    cols = ow + ((kw - 1) * dw) // sw
    return sh * sw * rows * cols + oh * cols + 2 * ALIGN


@compile()
def _blocks(c, h, wd, m, oh, kw, dw, pl):
    """same_width's (channels per group, output rows per block, floats per version, margin).
    Small maps: the channels of one L1 block share each version fill and activation pass."""
    margin = 0
    for j in range(kw):
        dx = j * dw - pl
        if abs(dx) < wd:
            margin = max(margin, abs(dx))
    n = max(1, oh * wd)
    group = max(1, BLOCK // n) if m == c else 1
    rows = oh if group > 1 else max(1, BLOCK // wd)
    return group, rows, group * h * wd + 2 * margin, margin


@compile()
def same_width(x, w, b, y, first, last, kh, kw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf):
    """Stride 1 with OW == W (module docstring): flat over the image's own row pitch, into y."""
    c, h, wd = x.shape
    m, oh, _ = y.shape
    mult = m // c
    hw, n = h * wd, oh * wd
    if n == 0:
        return
    xa = x.reshape(c * hw)
    ya = y.reshape(m * n)
    cols = np.empty(kw, np.int64)  # the kernel columns that read inside the image at all
    n_cols = 0
    for j in range(kw):
        if abs(j * dw - pl) < wd:
            cols[n_cols] = j
            n_cols += 1
    group, rows, span, margin = _blocks(c, h, wd, m, oh, kw, dw, pl)
    for j in range(kw):  # the margins: the reads before the first row and past the last
        buf[j * span:j * span + margin] = 0
        buf[(j + 1) * span - margin:(j + 1) * span] = 0
    for c0 in range(first, last, group):
        c1 = min(last, c0 + group)
        for oy0 in range(0, oh, rows):
            oy1 = min(oh, oy0 + rows)
            # the input rows this block reads, in the group's flat image
            ra = max(0, oy0 - pt) if group == 1 else 0
            rb = min(h, oy1 - pt + (kh - 1) * dh) if group == 1 else (c1 - c0) * h
            rows_held = group * h  # past them, the trailing margin
            i_set = _covering_row(kh, dh, pt, oy0, oy1, h) if n_cols else -1
            for ch in range(c0, c1):
                if ch == c0 or group == 1:
                    src = xa[(ch // mult) * hw:]
                    for t in range(n_cols):
                        dx = cols[t] * dw - pl
                        if dx != 0:
                            _version(buf[cols[t] * span + margin:], src, ra, rb, rows_held, wd, dx)
                cin = (ch // mult) * hw
                g = (ch - c0) * hw
                bias = b[ch]
                started = i_set < 0
                if started:  # no pass covers every row: the bias first
                    for k in range(ch * n + oy0 * wd, ch * n + oy1 * wd):
                        ya[k] = bias
                for ii in range(kh):
                    # kernel row i_set first, then the others in order
                    i = i_set if ii == 0 else (ii - 1 if ii <= i_set else ii)
                    i = ii if i_set < 0 else i
                    dy = i * dh - pt
                    r0 = max(oy0, -dy) * wd
                    r1 = min(oy1, h - dy) * wd
                    if r0 >= r1:
                        continue
                    t = 0
                    while t < n_cols:
                        taps = min(3, n_cols - t)
                        j0, j1, j2 = cols[t], cols[t + min(1, taps - 1)], cols[t + taps - 1]
                        # where column j reads image flat q: x itself for dx == 0, else its version
                        d0, d1, d2 = j0 * dw - pl, j1 * dw - pl, j2 * dw - pl
                        q = r0 + dy * wd
                        o0 = cin + q if d0 == 0 else j0 * span + margin + g + d0 + q
                        o1 = cin + q if d1 == 0 else j1 * span + margin + g + d1 + q
                        o2 = cin + q if d2 == 0 else j2 * span + margin + g + d2 + q
                        _mac(ya, ch * n + r0, r1 - r0, taps, not started, bias,
                             xa if d0 == 0 else buf, o0, xa if d1 == 0 else buf, o1,
                             xa if d2 == 0 else buf, o2,
                             w[ch, i * kw + j0], w[ch, i * kw + j1], w[ch, i * kw + j2])
                        started = True
                        t += taps
            activate(ya[c0 * n + oy0 * wd:(c1 - 1) * n + oy1 * wd], act, lo, hi, alpha, beta)


@compile(inline=True)
def _covering_row(kh, dh, pt, oy0, oy1, h):
    """A kernel row whose taps read inside the image for all output rows [oy0, oy1): its pass
    sets acc = bias + taps; -1 if there is none."""
    for i in range(kh):
        dy = i * dh - pt
        if -dy <= oy0 and oy1 <= h - dy:
            return i
    return -1


@compile(inline=True)
def _version(v, src, ra, rb, held, wd, dx):
    """Image rows [ra, rb) of src into v as a flat read at column offset dx wants them: the
    columns that the read wraps into from the neighbouring row (the last -dx of each row for
    dx < 0, the first dx for dx > 0) zeroed, and so in rows ra - 1 and rb (of the `held`
    rows; beyond them lie the zero margins), which the block's first and last rows read."""
    _copy(v[ra * wd:rb * wd], src[ra * wd:rb * wd])
    z0 = wd + dx if dx < 0 else 0
    for r in range(max(0, ra - 1), min(held, rb + 1)):
        for q in range(r * wd + z0, r * wd + z0 + abs(dx)):
            v[q] = 0


@compile(inline=True)
def _aligned(buf, k):
    """The first index >= k of buf at a cache line boundary."""
    return k + (-(buf.ctypes.data // 4 + k)) % ALIGN


@compile()
def phased(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf):
    """The strided and OW != W layers (module docstring), scratch in buf."""
    c = x.shape[0]
    m, oh, ow = y.shape
    mult = m // c
    rows = oh + ((kh - 1) * dh) // sh
    cols = ow + ((kw - 1) * dw) // sw
    plane = rows * cols
    p0 = _aligned(buf, 0)
    p = buf[p0:p0 + sh * sw * plane]
    n = oh * cols
    a0 = _aligned(buf, p0 + sh * sw * plane)
    acc = buf[a0:a0 + n]
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


# -- channel blocks (small maps and strides) ---------------------------------------------------
# Intrinsics in LLVM IR (as jit_gemm's tile kernel): one LANES x LANES block through in-register
# transposes (jit_gemm._transpose), under masks for a short block.
def _transpose_block(builder, src, src_stride, src_masks, dst, dst_stride, dst_masks):
    """LANES vectors loaded from src + i*src_stride floats (under src_masks[i], 0 elsewhere),
    transposed in registers (jit_gemm._transpose), stored at dst + j*dst_stride floats under
    dst_masks[j]. Addresses and strides are i64 values."""
    fp, vp = _F32.as_pointer(), _VEC.as_pointer()
    sp, dp = builder.inttoptr(src, fp), builder.inttoptr(dst, fp)
    mload, mstore = _masked(builder)
    zero, align = ir.Constant(_VEC, None), ir.Constant(_I32, 4)
    vecs = [builder.call(mload, [builder.bitcast(builder.gep(sp, [builder.mul(_const(i), src_stride)]), vp), align,
                                 src_masks[i], zero]) for i in range(LANES)]
    for j, vec in enumerate(_transpose(builder, vecs)):
        builder.call(mstore, [vec, builder.bitcast(builder.gep(dp, [builder.mul(_const(j), dst_stride)]), vp), align,
                              dst_masks[j]])


def _row_masks(builder, n, valid):
    """Masks of channel rows: lanes < n of rows l < valid, nothing of the others."""
    lanes, no = _lane_mask(builder, n), ir.Constant(ir.VectorType(ir.IntType(1), LANES), [0] * LANES)
    return [builder.select(builder.icmp_signed("<", _const(l), valid), lanes, no) for l in range(LANES)]


def _pixel_masks(builder, n):
    """Masks of pixel vectors: all of vectors r < n, nothing of the others."""
    mask_ty = ir.VectorType(ir.IntType(1), LANES)
    yes, no = ir.Constant(mask_ty, [1] * LANES), ir.Constant(mask_ty, [0] * LANES)
    return [builder.select(builder.icmp_signed("<", _const(r), n), yes, no) for r in range(LANES)]


@intrinsic
def _to_pixels(typingctx, src, stride, valid, n, dst):
    """Channel rows -> pixel vectors: lane l of dst[r*LANES:] = src[l*stride + r] for pixels
    r < n (n <= LANES) of channel rows l < valid (other lanes 0); dst's vectors past n untouched.
    Addresses in bytes, stride in floats."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        src, stride, valid, n, dst = args
        _transpose_block(builder, src, stride, _row_masks(builder, n, valid), dst, _const(LANES),
                         _pixel_masks(builder, n))
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _to_channels(typingctx, src, n, dst, stride, valid):
    """Pixel vectors -> channel rows: dst[l*stride + r] = lane l of src[r*LANES:] for pixels
    r < n (n <= LANES), channel rows l < valid. src holds LANES whole vectors."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        src, n, dst, stride, valid = args
        every = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * LANES)
        _transpose_block(builder, src, _const(LANES), [every] * LANES, dst, stride, _row_masks(builder, n, valid))
        return context.get_dummy_value()
    return sig, codegen


def _taps_kernel(pixels, maximum=False):
    """Intrinsic: `pixels` consecutive output pixels of a channel block (see _taps_dot), or
    their maxima over the taps (maximum: wts unused; -inf where there are no taps)."""
    @intrinsic
    def taps_dot(typingctx, src, step, offs, taps, wts, out):
        sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64)
        return sig, _taps_codegen(pixels, maximum)
    return taps_dot


def _nan_max(builder, a, b):
    """max(a, b) that keeps a NaN from either side (as np.maximum and jit_pool._max)."""
    m = builder.select(builder.fcmp_ordered(">", b, a), b, a)  # a NaN: a
    return builder.select(builder.fcmp_unordered("uno", b, b), b, m)  # b NaN: b


def _taps_codegen(pixels, maximum):
    def codegen(context, builder, sig, args):
        src, step, offs, taps, wts, out = args
        bp, fp, vp = ir.IntType(8).as_pointer(), _F32.as_pointer(), _VEC.as_pointer()
        sp, op_, wp_ = builder.inttoptr(src, bp), builder.inttoptr(offs, _I64.as_pointer()), builder.inttoptr(wts, fp)
        fma = _declare(builder, f"llvm.fma.v{LANES}f32", _VEC, [_VEC, _VEC, _VEC])
        starts = [builder.gep(sp, [builder.mul(step, _const(p))]) for p in range(pixels)]
        if maximum:
            start = ir.Constant(_VEC, [float("-inf")] * LANES)
        else:  # the bias
            start = builder.load(builder.bitcast(builder.gep(wp_, [builder.mul(taps, _const(LANES))]), vp), align=4)

        def tap(k, acc):
            off = builder.load(builder.gep(op_, [k]))
            xs = [builder.load(builder.bitcast(builder.gep(starts[p], [off]), vp), align=4) for p in range(pixels)]
            if maximum:
                return [_nan_max(builder, acc[p], xs[p]) for p in range(pixels)]
            wv = builder.load(builder.bitcast(builder.gep(wp_, [builder.mul(k, _const(LANES))]), vp), align=4)
            return [builder.call(fma, [wv, xs[p], acc[p]]) for p in range(pixels)]
        results = _counted_loop(builder, taps, [start] * pixels, tap, "taps")
        outp = builder.inttoptr(out, fp)
        for p, res in enumerate(results):
            builder.store(res, builder.bitcast(builder.gep(outp, [_const(p * LANES)]), vp), align=4)
        return context.get_dummy_value()
    return codegen


# _taps_dot(src, step, offs, taps, wts, out): TAPS_PIXELS consecutive output pixels p of a
# channel block, out[p*LANES:][:LANES] = wts[taps*LANES:][:LANES] (the bias) + sum over k < taps
# of wts[k*LANES:][:LANES] * src[p*step + offs[k]:][:LANES] (src, step, offs in bytes) -- the
# sums in registers, TAPS_PIXELS independent chains of multiply-adds (one chain waits out each
# FMA's latency: 4x slower measured); _taps_dot1 for the last pixels of a row.
TAPS_PIXELS = 4
_taps_dot, _taps_dot1 = _taps_kernel(TAPS_PIXELS), _taps_kernel(1)
_taps_max, _taps_max1 = _taps_kernel(TAPS_PIXELS, True), _taps_kernel(1, True)


@compile(inline=True)
def _geometry_blocked(oh, ow, kh, kw, sh, sw, dh, dw):
    """(rows, cols) of the padded image a channel block keeps: just what the outputs read."""
    return (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1


@compile(inline=True)
def _blocked_floats(oh, ow, kh, kw, sh, sw, dh, dw):
    hp, wp = _geometry_blocked(oh, ow, kh, kw, sh, sw, dh, dw)
    return LANES * (hp * wp + oh * ow + LANES + kh * kw + 1) + 4 * ALIGN


@compile()
def blocked(x, w, b, y, first, last, kh, kw, sh, sw, dh, dw, pt, pl, act, lo, hi, alpha, beta, buf, pool):
    """Channels [first, last) of a depthwise layer (m == c) LANES at a time: the block's image
    rows into pixel vectors of a zero-padded image T (in-register transposes), each output pixel
    a vector of LANES channels summed over the taps, the activation, then back into channel
    rows of y. No phase planes, no short rows: every multiply-add is a whole vector. With pool,
    a 2-D max pool of the planes instead (pads -inf, w and b unused, no activation)."""
    c, h, wd = x.shape
    m, oh, ow = y.shape
    n = oh * ow
    if n == 0 or last <= first:
        return
    hp, wp = _geometry_blocked(oh, ow, kh, kw, sh, sw, dh, dw)
    taps = kh * kw
    t0 = _aligned(buf, 0)
    tb = buf[t0:t0 + hp * wp * LANES]
    o0 = _aligned(buf, t0 + hp * wp * LANES)
    ob = buf[o0:o0 + (n + LANES) * LANES]
    w0 = _aligned(buf, o0 + (n + LANES) * LANES)
    wv = buf[w0:w0 + (taps + 1) * LANES]  # the block's taps as vectors, then its bias
    rows_in = max(0, min(h, hp - pt))  # image rows and columns that outputs read
    cols_in = max(0, min(wd, wp - pl))
    # The pads: never written by the copies, filled once per call.
    pad = NEG_INF if pool else np.float32(0)
    for yy in range(hp):
        if yy < pt or yy >= pt + rows_in:
            tb[yy * wp * LANES:(yy + 1) * wp * LANES] = pad
        else:
            tb[yy * wp * LANES:(yy * wp + pl) * LANES] = pad
            tb[(yy * wp + pl + cols_in) * LANES:(yy + 1) * wp * LANES] = pad
    xa, ya, ta, oa = x.ctypes.data, y.ctypes.data, tb.ctypes.data, ob.ctypes.data
    plane_in, fl = h * wd, 4
    offs = np.empty(taps, np.int64)  # where tap (i, j) reads, bytes from the output pixel's window origin
    for i in range(kh):
        for j in range(kw):
            offs[i * kw + j] = (i * dh * wp + j * dw) * LANES * fl
    for c0 in range(first, last, LANES):
        valid = min(LANES, last - c0)
        for l in range(0 if pool else LANES):
            cl = min(c0 + l, last - 1)
            for t in range(taps):
                wv[t * LANES + l] = w[cl, t]
            wv[taps * LANES + l] = b[cl]
        for yy in range(rows_in):
            src = xa + ((c0 * h + yy) * wd) * fl
            dst = ta + ((yy + pt) * wp + pl) * LANES * fl
            for x0 in range(0, cols_in, LANES):
                _to_pixels(src + x0 * fl, plane_in, valid, min(LANES, cols_in - x0), dst + x0 * LANES * fl)
        wa = wv.ctypes.data
        step, oa_ = sw * LANES * fl, offs.ctypes.data
        for oy in range(oh):
            row = ta + oy * sh * wp * LANES * fl
            dst = oa + oy * ow * LANES * fl
            ox = 0
            while ox + TAPS_PIXELS <= ow:
                if pool:
                    _taps_max(row + ox * step, step, oa_, taps, wa, dst + ox * LANES * fl)
                else:
                    _taps_dot(row + ox * step, step, oa_, taps, wa, dst + ox * LANES * fl)
                ox += TAPS_PIXELS
            while ox < ow:
                if pool:
                    _taps_max1(row + ox * step, step, oa_, taps, wa, dst + ox * LANES * fl)
                else:
                    _taps_dot1(row + ox * step, step, oa_, taps, wa, dst + ox * LANES * fl)
                ox += 1
        if not pool:
            activate(ob[:n * LANES], act, lo, hi, alpha, beta)
        for p0 in range(0, n, LANES):
            _to_channels(oa + p0 * LANES * fl, min(LANES, n - p0), ya + (c0 * n + p0) * fl, n, valid)


@compile(inline=True)
def _part(first, last, i, parts, by_blocks):
    """Where part i of `parts` of the channels [first, last) starts; with by_blocks on a whole
    channel block (LANES), so that no block is cut between two threads."""
    at = first + (last - first) * i // parts
    if by_blocks and first < at < last:
        at = min(last, first + (at - first + LANES // 2) // LANES * LANES)
    return at

# A half of a layer as a native job (depthwise_job): float64 slots, addresses and sizes exact.
# (Last in the module: a cfunc compiles, or loads from the cache, where it is defined.)
ARGS = 31


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def depthwise_job(part, args, unused):
    """depthwise() over channel ranges claimed one at a time (an atomic counter) by whichever
    thread runs this -- the pool's helper through a function pointer (parallel.pair), without
    the GIL -- so that a thread the OS holds back leaves its ranges to the other. Arguments:
    pack_job."""
    a = carray(f64_at(address(args)), (ARGS,))
    c, h, wd, m, kk, oh, ow = int64(a[1]), int64(a[2]), int64(a[3]), int64(a[5]), int64(a[6]), int64(a[9]), int64(a[10])
    x = carray(f32_at(int64(a[0])), (c, h, wd))
    w = carray(f32_at(int64(a[4])), (m, kk))
    b = carray(f32_at(int64(a[7])), (m,))
    y = carray(f32_at(int64(a[8])), (m, oh, ow))
    work = carray(f32_at(int64(a[26])), (int64(a[27]),))
    first, last, counter, parts = int64(a[11]), int64(a[12]), int64(a[28]), int64(a[29])
    by_blocks = int64(a[30])
    while True:
        i = fetch_add(counter, 1)
        if i >= parts:
            return
        lo, hi = _part(first, last, i, parts, by_blocks), _part(first, last, i + 1, parts, by_blocks)
        depthwise(x, w, b, y, lo, hi, int64(a[13]), int64(a[14]), int64(a[15]), int64(a[16]),
                  int64(a[17]), int64(a[18]), int64(a[19]), int64(a[20]), int64(a[21]), a[22], a[23], a[24], a[25],
                  by_blocks, work)


def part_bounds(first, last, parts, by_blocks):
    """The channel ranges depthwise_job cuts [first, last) into (whole channel blocks when
    by_blocks)."""
    return [(_part(first, last, i, parts, by_blocks), _part(first, last, i + 1, parts, by_blocks))
            for i in range(parts)]


def pack_job(x, w, b, y, first, last, params, work, counter, parts, by_blocks):
    """The float64 argument block of depthwise_job: channels [first, last) in `parts` ranges
    claimed through counter[0] (arrays C-contiguous; they must outlive every run of the job:
    arena views and the executor's own)."""
    for arr in (x, w, b, y, work):
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    assert counter.dtype == np.int64
    return np.array([x.ctypes.data, *x.shape, w.ctypes.data, *w.shape, b.ctypes.data, y.ctypes.data,
                     *y.shape[1:], first, last, *params, work.ctypes.data, work.size, counter.ctypes.data, parts,
                     int(by_blocks)], np.float64)
