"""Compiled 2-D max pool (imported only when backends.cpu.jit.available()).

Separable, a plane at a time, reading the image in place (no padded copy). The row max: for
each output row, the max over the window's rows that lie inside the image (rows in the pads are
skipped), written into R, which holds the padded rows split into column stride phases,
R[b][oy*q + k] = rowmax(oy)[k*sw + b - pl], so that every column tap of any stride or dilation
is one unit-stride read at a constant offset: tap j of output (oy, ox) is
R[(j*dw) % sw][oy*q + ox + (j*dw) // sw]. Stride 2 writes both phases in one loop (LLVM
vectorizes that with shuffles; one phase at a time stays scalar, docs/cpu.md). The column max
of all the plane's rows is then one loop over R's rows (q floats apart), whose first OW
columns per row are copied into the output. See plan() for the choice of q.

Loops index flat arrays with uint64 offsets: numba's wraparound of signed indices turned the
loads into gathers. Maxima are comparisons that keep a NaN from either operand, as np.maximum
does (maxps returns one fixed operand when either is NaN; onnxruntime keeps a NaN only when it
is the first element of a window). A window with no image row at all (a dilation wider than
the image) gives -inf, as the padded numpy path does.
"""
import numpy as np
from numba import carray, cfunc, int64, types, uint64

from .jit import FASTMATH, compile
from .jit_threads import address, f32_at, f64_at, fetch_add, u64_at

NEG = np.float32(-np.inf)
# Offsets are uint64, and uint64 mixed with an int64 literal is float64 in numba: typed constants.
ONE, TWO, THREE = uint64(1), uint64(2), uint64(3)


@compile(inline=True)
def _max(a, b):
    """max(a, b), NaN if either is NaN."""
    return b if (b > a or b != b) else a


@compile(inline=True)
def _max3(dst, d, src, a, b, c, n):
    """dst[d:d+n] = max of src[a:a+n], src[b:b+n], src[c:c+n]."""
    for k in range(n):
        dst[d + k] = _max(_max(src[a + k], src[b + k]), src[c + k])


@compile(inline=True)
def _max2(dst, d, src, a, b, n):
    for k in range(n):
        dst[d + k] = _max(src[a + k], src[b + k])


@compile(inline=True)
def _copy(dst, d, src, a, n):
    for k in range(n):
        dst[d + k] = src[a + k]


@compile(inline=True)
def _acc2(dst, d, src, a, b, n):
    for k in range(n):
        dst[d + k] = _max(_max(dst[d + k], src[a + k]), src[b + k])


@compile(inline=True)
def _acc1(dst, d, src, a, n):
    for k in range(n):
        dst[d + k] = _max(dst[d + k], src[a + k])


@compile(inline=True)
def _split3(dst, e, o, src, a, b, c, n):
    """Column pairs (2k, 2k + 1) of the max of three rows into two phases, in one loop."""
    for k in range(n):
        dst[e + k] = _max(_max(src[a + TWO * k], src[b + TWO * k]), src[c + TWO * k])
        dst[o + k] = _max(_max(src[a + TWO * k + ONE], src[b + TWO * k + ONE]), src[c + TWO * k + ONE])


@compile(inline=True)
def _split2(dst, e, o, src, a, b, n):
    for k in range(n):
        dst[e + k] = _max(src[a + TWO * k], src[b + TWO * k])
        dst[o + k] = _max(src[a + TWO * k + ONE], src[b + TWO * k + ONE])


@compile(inline=True)
def _split1(dst, e, o, src, a, n):
    for k in range(n):
        dst[e + k] = src[a + TWO * k]
        dst[o + k] = src[a + TWO * k + ONE]


@compile(inline=True)
def _split_acc2(dst, e, o, src, a, b, n):
    for k in range(n):
        dst[e + k] = _max(_max(dst[e + k], src[a + TWO * k]), src[b + TWO * k])
        dst[o + k] = _max(_max(dst[o + k], src[a + TWO * k + ONE]), src[b + TWO * k + ONE])


@compile(inline=True)
def _split_acc1(dst, e, o, src, a, n):
    for k in range(n):
        dst[e + k] = _max(dst[e + k], src[a + TWO * k])
        dst[o + k] = _max(dst[o + k], src[a + TWO * k + ONE])


@compile(inline=True)
def _rows_max(r, d, x, row, pitch, count, n):
    """r[d:d+n] = max over `count` (>= 1) rows x[row + i*pitch:][:n]."""
    if count >= 3:
        _max3(r, d, x, row, row + pitch, row + TWO * pitch, n)
        i = THREE
    elif count == 2:
        _max2(r, d, x, row, row + pitch, n)
        i = TWO
    else:
        _copy(r, d, x, row, n)
        i = ONE
    while i + TWO <= count:
        _acc2(r, d, x, row + i * pitch, row + (i + ONE) * pitch, n)
        i += TWO
    if i < count:
        _acc1(r, d, x, row + i * pitch, n)


@compile()
def _rows_split(r, e, o, x, row, pitch, count, n):
    """The same over n column pairs (2k, 2k + 1) from x[row], into two stride phases. Not
    inlined: its five loops would be compiled twice (seconds), and it is called once per plane
    and per row whose window leaves the image."""
    if count >= 3:
        _split3(r, e, o, x, row, row + pitch, row + TWO * pitch, n)
        i = THREE
    elif count == 2:
        _split2(r, e, o, x, row, row + pitch, n)
        i = TWO
    else:
        _split1(r, e, o, x, row, n)
        i = ONE
    while i + TWO <= count:
        _split_acc2(r, e, o, x, row + i * pitch, row + (i + ONE) * pitch, n)
        i += TWO
    if i < count:
        _split_acc1(r, e, o, x, row + i * pitch, n)


@compile(inline=True)
def _column(x, row, pitch, count, c):
    """Max over `count` rows from x[row] of column c (tails, strides above 2)."""
    v = x[row + c]
    for i in range(ONE, count):
        v = _max(v, x[row + i * pitch + c])
    return v


@compile(inline=True)
def _taps_max(dst, d, src, base, offs, n):
    """dst[d:d+n] = max over the taps t of src[base + offs[t]:][:n] (at least one tap)."""
    taps = offs.shape[0]
    if taps >= 3:
        _max3(dst, d, src, base + offs[0], base + offs[1], base + offs[2], n)
    elif taps == 2:
        _max2(dst, d, src, base + offs[0], base + offs[1], n)
    else:
        _copy(dst, d, src, base + offs[0], n)
    t = 3
    while t + 2 <= taps:
        _acc2(dst, d, src, base + offs[t], base + offs[t + 1], n)
        t += 2
    if t < taps:
        _acc1(dst, d, src, base + offs[t], n)


def plan(h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl):
    """The arguments of max_pool after (x, y, r, planes), and the scratch floats r needs.

    R holds every output row of a plane, q floats apart, so that the column max of all rows
    is one loop (into a buffer of that pitch, then copied out row by row): one short loop per
    row and pass cost more than the columns computed past each row's end. With stride-2
    columns, output row oy's column pairs sit sh*w floats after row oy - 1's, so at
    q = sh*w / 2 one loop also splits the pairs of every row whose window lies inside the
    image (`split`; twice the pairs needed: the same time as a loop per row at 112 columns,
    1.5x faster at 27). The cells of R no row loop writes are listed here and redone in every
    row: the pads (-inf), and the image columns past the pairs (`tails`: a stride-2 row's odd
    end, every column of larger strides)."""
    cols = ow + ((kw - 1) * dw) // sw
    q, split = cols, False
    if sw == 2 and sh * w % 2 == 0 and cols <= sh * w // 2:
        q, split = sh * w // 2, True
    span = oh * q + cols + w // 2 + pl + 1  # one phase of R, with room for the last row's pairs
    # Stride 2: image columns (2m, 2m + 1) land in phases pl % 2 and 1 - pl % 2, at cells
    # m + pl // 2 and m + (pl + 1) // 2; `pairs` of them fit both phases of one R row.
    pairs = max(0, min(w // 2, cols - pl // 2, cols - (pl + 1) // 2)) if sw == 2 else 0
    pad_cells, tails = [], []
    for b in range(sw):
        for k in range(cols):
            c = k * sw + b - pl
            if c < 0 or c >= w:
                pad_cells.append(b * span + k)
            elif sw > 2 or (sw == 2 and c >= 2 * pairs):
                tails.append((b * span + k, c))
    taps = [((j * dw) % sw) * span + (j * dw) // sw for j in range(kw)]  # R cells of output 0's taps
    tails = np.array(tails, np.uint64).reshape(-1, 2)
    args = (h, w, oh, ow, kh, sh, sw, dh, pt, pl, cols, q, span, split, pairs, np.array(pad_cells, np.uint64),
            tails[:, 0].copy(), tails[:, 1].copy(), np.array(taps, np.uint64))
    return args, sw * span + oh * q


@compile()
def max_pool(x, y, r, planes, h, w, oh, ow, kh, sh, sw, dh, pt, pl, cols, q, span, split, pairs,
             pad_cell, tail_cell, tail_col, taps):
    """y = 2-D max pool of x, both flat: `planes` (batch * channels) of h x w in, oh x ow out;
    begin pads pt, pl (the end pads are implied by the output's size). r: scratch; the rest
    from plan()."""
    if oh == 0 or ow == 0:
        return
    pe = pl % 2
    even, odd = uint64(pe * span + pl // 2), uint64((1 - pe) * span + (pl + 1) // 2)
    pitch = uint64(dh * w)
    # Output rows [oy0, oy1) have all their window's rows inside the image.
    oy0 = (pt + sh - 1) // sh
    oy1 = max(oy0, min(oh, (h - 1 - (kh - 1) * dh + pt) // sh + 1))
    flat = split and oy1 > oy0
    o = r[sw * span:]  # the column pass's output rows, pitch q
    for ch in range(planes):
        if flat:  # the pairs of rows [oy0, oy1) in one loop; all but the last row's tails too
            u0 = uint64(oy0 * q)
            _rows_split(r, even + u0, odd + u0, x, uint64((ch * h + oy0 * sh - pt) * w), pitch, uint64(kh),
                        uint64((oy1 - 1 - oy0) * q + w // 2))
        for oy in range(oh):
            y0 = oy * sh - pt
            i0 = max(0, (-y0 + dh - 1) // dh)
            i1 = min(kh, (h - 1 - y0) // dh + 1)
            base = uint64(oy * q)
            if i1 <= i0:  # the window misses the image: all -inf
                for b in range(sw):
                    r[b * span + base:b * span + base + cols] = NEG
                continue
            row = uint64((ch * h + y0 + i0 * dh) * w)
            count = uint64(i1 - i0)
            inside = flat and oy0 <= oy < oy1
            if sw == 1:
                _rows_max(r, base + uint64(pl), x, row, pitch, count, uint64(max(0, min(w, cols - pl))))
            elif sw == 2 and not inside:
                _rows_split(r, even + base, odd + base, x, row, pitch, count, uint64(pairs))
            for f in range(pad_cell.shape[0]):
                r[base + pad_cell[f]] = NEG
            if not inside or oy == oy1 - 1:
                for f in range(tail_cell.shape[0]):
                    r[base + tail_cell[f]] = _column(x, row, pitch, count, tail_col[f])
        _taps_max(o, uint64(0), r, uint64(0), taps, uint64((oh - 1) * q + ow))
        for oy in range(oh):
            _copy(y, uint64((ch * oh + oy) * ow), o, uint64(oy * q), uint64(ow))


# A pool's planes as a native job (pool_job): float64 slots, addresses and sizes exact.
# (Last in the module: a cfunc compiles, or loads from the cache, where it is defined.)
ARGS = 30


@cfunc(types.void(types.int32, types.voidptr, types.int32), cache=True, nogil=True,
       fastmath=FASTMATH, error_model="numpy")
def pool_job(part, args, unused):
    """max_pool() over ranges of planes claimed one at a time (an atomic counter) by whichever
    thread runs this (parallel.pair), each thread with its own R. Arguments: pack_job."""
    a = carray(f64_at(address(args)), (ARGS,))
    planes, h, w, oh, ow = int64(a[2]), int64(a[3]), int64(a[4]), int64(a[5]), int64(a[6])
    x = carray(f32_at(int64(a[0])), (planes * h * w,))
    y = carray(f32_at(int64(a[1])), (planes * oh * ow,))
    pad_cell = carray(u64_at(int64(a[18])), (int64(a[19]),))
    tail_cell = carray(u64_at(int64(a[20])), (int64(a[21]),))
    tail_col = carray(u64_at(int64(a[22])), (int64(a[23]),))
    taps = carray(u64_at(int64(a[24])), (int64(a[25]),))
    r = carray(f32_at(int64(a[26])), (int64(a[27]),))
    counter, parts = int64(a[28]), int64(a[29])
    while True:
        i = fetch_add(counter, 1)
        if i >= parts:
            return
        lo, hi = planes * i // parts, planes * (i + 1) // parts
        max_pool(x[lo * h * w:hi * h * w], y[lo * oh * ow:hi * oh * ow], r, hi - lo, h, w, oh, ow,
                 int64(a[7]), int64(a[8]), int64(a[9]), int64(a[10]), int64(a[11]), int64(a[12]), int64(a[13]),
                 int64(a[14]), int64(a[15]), a[16] != 0, int64(a[17]), pad_cell, tail_cell, tail_col, taps)


def pack_job(x, y, planes, plan, r, counter, parts):
    """The float64 argument block of pool_job: max_pool(x, y, r, planes, *plan) in `parts`
    ranges of planes claimed through counter[0] (x, y flat arena views; r this thread's)."""
    (h, w, oh, ow, kh, sh, sw, dh, pt, pl, cols, q, span, split, pairs, pad_cell, tail_cell, tail_col, taps) = plan
    arrays = (pad_cell, tail_cell, tail_col, taps)
    assert all(v.dtype == np.uint64 and v.flags.c_contiguous for v in arrays) and counter.dtype == np.int64
    assert x.dtype == y.dtype == r.dtype == np.float32
    return np.array([x.ctypes.data, y.ctypes.data, planes, h, w, oh, ow, kh, sh, sw, dh, pt, pl, cols, q, span,
                     int(split), pairs] + [v for arr in arrays for v in (arr.ctypes.data, arr.size)]
                    + [r.ctypes.data, r.size, counter.ctypes.data, parts], np.float64)
