"""Depthwise convolution (group == C_in, any channel multiplier, stride, dilation, pads).

numpy has no fused multiply-add, so the textbook loop -- for each of the kh*kw taps, multiply a
shifted view by a per-channel weight and add it in -- costs two passes per tap, each slowed by
broadcasting the weight along rows. Here every tap is instead one contiguous 1-D copy and the
weighted sum over taps is one batched BLAS product per channel block:

  planes   the image, zero-padded and split into stride phases (sh*sw planes of Hq x Wq per
           channel, channels back to back), so that every tap of a strided or dilated kernel
           reads one plane at a constant offset;
  taps     S[t] = plane_t.flat[offset_t : offset_t + block]: kh*kw contiguous copies, plus a
           row of ones when there is a bias (numpy's broadcast add of a per-channel bias is
           buffered and twice as slow as a plain pass; as a weight it costs one GEMV row);
  product  acc (C, mult, Hq*Wq) = [w | b] (C, mult, taps) @ S (C, taps, Hq*Wq): one GEMV per channel;
  store    y = acc[:, :, :OH, :OW], then the fused activation, in place.

Outputs are computed on the padded width Wq, and on the OH output rows of each channel -- or,
for small images where one channel's rows are too short a copy, on all Hq plane rows, so that
each tap copy becomes one contiguous run across channels. The store drops the rest.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import jit
from .conv import ConvCPU
from .parallel import NativeJob, helper_allowed, serial_blas, split, worth_splitting

# Tap copies are made for a block of channels at a time, at most this many bytes.
TAPS_BUDGET = 1 << 20
# Only the OH output rows of each channel are computed when one channel's run of them is at
# least this many floats (a copy that long costs what a contiguous one does) or when all Hq
# plane rows would be more than ROW_WASTE times as many.
ROW_MIN = 256
ROW_WASTE = 1.5


# With the compiled kernel (jit_depthwise.py) and the thread pool, a layer of at least
# JIT_SPLIT_MIN output floats' worth of 3x3 work (outputs x taps >= JIT_SPLIT_MIN x 9: PP-OCR's
# 5x5 layers on 3x96 maps 47 -> 33 us) is cut into two channel halves run at once by the caller and the
# pool's helper as one native job (parallel.pair: ~1 us to hand over, against 20-80 us for the
# GIL hand-offs of 8 Python-claimed ranges, which got 1.3-1.6x on MobileNetV2's layers).
JIT_SPLIT_MIN = 1 << 15
# ... in this many channel ranges per thread, claimed one at a time (a thread held back by
# the OS leaves its ranges to the other).
JIT_PARTS_PER_THREAD = 4

# Depthwise by channel blocks (jit_depthwise.blocked: LANES channels a vector, in-register
# transposes in and out, several output pixels' sums held in registers over all taps) wherever a
# block's zero-padded image (LANES floats a pixel) fits BLOCKED_BYTES; beyond that (PP-OCR det's
# 320x320 maps) the flat per-channel passes measured as fast or faster. One output channel per
# input channel only. Per layer in docs/cpu.md "Depthwise by channel blocks".
BLOCKED = True
BLOCKED_BYTES = 2 << 20


def by_blocks(g):
    """Whether the compiled kernel takes layer g by channel blocks (above)."""
    return BLOCKED and g.m == g.c and blocks_fit(g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw)


def blocks_fit(oh, ow, kh, kw, sh, sw, dh, dw, limit=None):
    """Whether a channel block's padded image (what the outputs read) fits `limit` bytes
    (BLOCKED_BYTES)."""
    from .jit_depthwise import LANES, _geometry_blocked
    hp, wp = _geometry_blocked(oh, ow, kh, kw, sh, sw, dh, dw)
    return 4 * LANES * hp * wp <= (BLOCKED_BYTES if limit is None else limit)


def __getattr__(name):
    """`DepthwiseConv`, the executor class conv.strategy() hands depthwise layers: the compiled
    one when numba is there, else the numpy one (decided at first use, not at import)."""
    if name == "DepthwiseConv":
        return CompiledDepthwise if jit.available() else NumpyDepthwise
    raise AttributeError(name)


class CompiledDepthwise(ConvCPU):
    """The loop of jit_depthwise.depthwise over channel ranges shared by the session's threads;
    the activation rides in the kernel (jit_epilogue.activate)."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        from . import jit_depthwise, jit_epilogue
        g = self.g
        self.kernel = jit_depthwise.depthwise
        self.w = self.prepared("depthwise-jit", lambda w: np.ascontiguousarray(w.reshape(g.m, g.kh * g.kw), np.float32))
        self.b = np.ascontiguousarray(self.bias_column().reshape(-1))
        act, self.after = jit_epilogue.params(self.epilogue)
        self.params = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl) + act
        self.by_blocks = by_blocks(g)
        self.workers = 2 if helper_allowed(backend) and self.out_floats * g.kh * g.kw >= JIT_SPLIT_MIN * 9 and g.m >= 2 else 1
        parts = min(g.m, self.workers * JIT_PARTS_PER_THREAD) if self.workers > 1 else 1
        self.ranges = jit_depthwise.part_bounds(0, g.m, parts, self.by_blocks)  # as the job cuts them
        # The kernel's scratch (phase planes, shifted copies or a block's pixels), one per thread.
        self.work_floats = int(jit_depthwise.work_floats(g.c, g.h, g.w, g.m, g.oh, g.ow, g.kh, g.kw,
                                                         g.sh, g.sw, g.dh, g.dw, g.pl, self.by_blocks))

    def tmp_floats(self):
        return self.out_floats if self.after and self.epilogue.needs_tmp else 0

    def scratch_bytes(self):
        return 4 * (self.workers * self.work_floats + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        n = self.work_floats
        self.work = [self.flat[k * n:(k + 1) * n] for k in range(self.workers)]
        self.jobs = []
        if self.workers == 2:  # per image: one native job, an argument block per thread
            from .jit_depthwise import depthwise_job, pack_job
            x, out = self.inputs[0], self.outputs[0]
            counter = np.zeros(1, np.int64)
            self.jobs = [NativeJob(depthwise_job, [pack_job(x[n], self.w, self.b, out[n], 0, self.g.m, self.params,
                                                            self.work[k], counter, len(self.ranges), int(self.by_blocks))
                                                   for k in range(2)],
                                   counter) for n in range(self.g.n)]

    def run(self):
        x, out = self.inputs[0], self.outputs[0]
        for n in range(self.g.n):
            if self.jobs:
                self.jobs[n].run()
            else:
                self.kernel(x[n], self.w, self.b, out[n], 0, self.g.m, *self.params, int(self.by_blocks), self.work[0])
            if self.after:
                self.epilogue.activate(out[n], self.image_tmp(out[n]))


class NumpyDepthwise(ConvCPU):
    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        g = self.g
        self.mult = g.m // g.c
        self.taps = g.kh * g.kw
        # Tap (i, j) reads phase plane (i*dh % sh, j*dw % sw) at row i*dh // sh, column j*dw // sw.
        self.tap_at = [((i * g.dh) % g.sh, (j * g.dw) % g.sw, (i * g.dh) // g.sh, (j * g.dw) // g.sw)
                       for i in range(g.kh) for j in range(g.kw)]
        self.hq = g.oh + max(t[2] for t in self.tap_at)
        self.wq = g.ow + max(t[3] for t in self.tap_at)
        self.plane = self.hq * self.wq                      # floats per channel per phase
        self.slack = max(r * self.wq + c for _, _, r, c in self.tap_at)
        self.phases = g.sh * g.sw
        self.phase_floats = g.c * self.plane + self.slack
        short = g.oh * self.wq >= ROW_MIN or self.hq > ROW_WASTE * g.oh
        self.out_rows = g.oh if short else self.hq
        self.span = self.out_rows * self.wq                 # outputs computed per channel
        self.block = max(1, min(g.c, TAPS_BUDGET // (4 * (self.taps + 1) * self.span)))
        self.rows = self.taps + (self.bias is not None)  # GEMV rows: taps, then the bias's ones
        self.w = self.prepared("depthwise", self._pack)
        # Two threads each take half of the channels, with their own tap buffer.
        self.parts = 2 if g.c >= 2 and worth_splitting(backend, g.c * self.span * self.rows) else 1

    def _pack(self, w):
        g = self.g
        packed = w.reshape(g.c, self.mult, self.taps)
        if self.bias is not None:
            packed = np.concatenate([packed, self.bias_column().reshape(g.c, self.mult, 1)], axis=2)
        return np.ascontiguousarray(packed, np.float32)

    def scratch_bytes(self):
        g = self.g
        return 4 * (self.phases * self.phase_floats + self.parts * self.rows * self.block * self.span
                    + g.m * self.span + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        g = self.g
        pos = self.phases * self.phase_floats
        self.planes = self.flat[:pos].reshape(self.phases, self.phase_floats)
        n_taps = self.rows * self.block * self.span
        taps = [self.flat[pos + k * n_taps:pos + (k + 1) * n_taps].reshape(self.rows, self.block, self.span)
                for k in range(self.parts)]
        pos += self.parts * n_taps
        self.acc = self.flat[pos:pos + g.m * self.span].reshape(g.c, self.mult, self.span)
        store = self.acc.reshape(g.m, self.out_rows, self.wq)[:, :g.oh, :g.ow]
        cut = [g.c * k // self.parts for k in range(self.parts + 1)]
        self.work = [self._part(lo, hi, taps[k], store) for k, (lo, hi) in enumerate(zip(cut, cut[1:]))]

    def _part(self, lo, hi, s, store):
        """Everything that input channels [lo, hi) need, precomputed as views."""
        g = self.g
        fills = [self._phase_fill(a, b, lo, hi) for a in range(g.sh) for b in range(g.sw)]
        blocks = []
        for c0 in range(lo, hi, self.block):
            c1 = min(hi, c0 + self.block)
            copies = []
            for t, (a, b, r, c) in enumerate(self.tap_at):
                src = self.planes[a * g.sw + b, c0 * self.plane + r * self.wq + c:]
                copies.append((s[t, :c1 - c0], as_strided(src, (c1 - c0, self.span), (4 * self.plane, 4),
                                                           writeable=False)))
            ones = s[self.taps, :c1 - c0] if self.rows > self.taps else None
            blocks.append((copies, ones, self.w[c0:c1], s[:, :c1 - c0].transpose(1, 0, 2), self.acc[c0:c1]))
        out = slice(lo * self.mult, hi * self.mult)
        return fills, blocks, store[out], out

    def _phase_fill(self, a, b, lo, hi):
        """(zeroed regions, destination, source slices) that fill channels [lo, hi) of phase plane
        (a, b) from an image."""
        g = self.g
        flat = self.planes[a * g.sw + b]
        plane = flat[:g.c * self.plane].reshape(g.c, self.hq, self.wq)[lo:hi]
        # Plane row i holds padded row i*sh + a, that is image row i*sh + a - pt.
        r0, r1 = _valid(a, g.pt, g.sh, g.h, self.hq)
        c0, c1 = _valid(b, g.pl, g.sw, g.w, self.wq)
        zero = [plane[:, :r0], plane[:, r1:], plane[:, r0:r1, :c0], plane[:, r0:r1, c1:]]
        if hi == g.c:
            zero.append(flat[g.c * self.plane:])  # the slack that the last channel's taps overrun into
        src = (slice(lo, hi), slice(r0 * g.sh + a - g.pt, None, g.sh), slice(c0 * g.sw + b - g.pl, None, g.sw))
        return [z for z in zero if z.size], plane[:, r0:r1, c0:c1], src

    def run(self):
        serial_blas()
        x, out = self.inputs[0], self.outputs[0]
        for n in range(self.g.n):
            split(self._run_part, [(x[n], out[n], part) for part in self.work])

    def _run_part(self, image, y, part):
        fills, blocks, store, out = part
        for zero, dst, src in fills:
            for z in zero:
                z.fill(0)
            if dst.size:
                np.copyto(dst, image[src][:, :dst.shape[1], :dst.shape[2]])
        for copies, ones, w, taps, acc in blocks:
            for dst, src in copies:
                np.copyto(dst, src)
            if ones is not None:
                ones.fill(1)
            np.matmul(w, taps, out=acc)
        y = y[out]
        np.copyto(y, store)
        tmp = self.image_tmp(self.outputs[0][0])
        self.epilogue.activate(y, None if tmp is None else tmp[out])


def _valid(phase, pad, stride, size, length):
    """[first, last) plane indices i whose padded position i*stride + phase is inside the image."""
    first = max(0, -(-(pad - phase) // stride))
    last = min(length, -(-(size + pad - phase) // stride))
    return first, max(first, last)
