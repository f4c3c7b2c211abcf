"""Convolution through mixnn's own packed GEMM (jit_gemm.py), when numba is there.

Taken for the convolutions that would otherwise run im2col + numpy GEMM (one group, not
depthwise, not Winograd): the weights are packed once into the tile kernel's panels, and each
run gathers the im2col columns straight into B's panels from the zero-padded image, then one
native job of the pool's two threads packs and multiplies (jit_gemm's docstring has the modes).
Bias, a residual and Relu/Clip are applied as the tiles are stored; other activations in one
pass after (gemm.Epilogue). Measured against im2col + OpenBLAS on two threads in docs/cpu.md
("Packed GEMM"). 1x1 convolutions on many pixels take jit_gemm's row tiles instead (RowsConv:
the image is read as it is, the output rows stored directly; docs/cpu.md "Row tiles").
"""
import numpy as np

from . import jit
from .conv import ConvCPU, PaddedInput
from .parallel import NativeJob, helper_allowed

# Private mode (jit_gemm): a part's B panels take about this many bytes (in L2 beside A's).
PART_BYTES = 128 << 10
# Private mode on two threads needs at least this many parts (see shared_mode); the shared
# mode packs all of B first and splits A's panels (and B's) into MUL_PARTS.
MIN_PRIVATE_PARTS = 8
MUL_PARTS = 8
PACK_PARTS = 8
# The shared mode's B (all of the columns, packed) at most this large (conv.COLS_BUDGET's size).
SHARED_B_BYTES = 8 << 20
# Convolutions of fewer multiply-adds run on the caller alone (a hand-off costs ~1-2 us).
SHARE_MACS = 1 << 19


# Off: im2col + numpy GEMM instead (A/B measurements).
ENABLED = True

# Row tiles (RowsConv) for 1x1 convolutions of at least ROWS_MIN_PIXELS pixels, or of at least
# ROWS_FEW_PIXELS when the output channels are fewer than two packed panels (2 * MR): there the
# packed tile's B packing and transposed stores cost more than its multiply-adds (one thread,
# docs/cpu.md "Row tiles"). Column tiles go out in this many ranges per thread.
ROWS = True
ROWS_MIN_PIXELS = 2048
ROWS_FEW_PIXELS = 512
ROWS_PARTS_PER_THREAD = 4


def applies(g):
    """Whether PackedConv runs geometry g (ConvCPU.strategy asks): one group, and at least MR
    output channels. With fewer, the tile's rows are mostly zero padding and numpy's GEMM
    measured faster (2 threads, interleaved: YOLOv8n's 3 -> 16 3x3/2 @ 320 0.99 against 0.54
    ms, 144 -> 24 1x1 @ 56 0.24 against 0.17); from 32 channels on the packed GEMM is ahead or
    level (3 -> 32 3x3/2 @ 224 0.23 against 0.32, 192 -> 32 1x1 @ 28 0.079 against 0.078)."""
    if not (ENABLED and jit.available() and g.group == 1 and g.c * g.kh * g.kw > 0):
        return False
    from .jit_gemm import MR
    return g.m >= MR


def rows_apply(g):
    """Whether RowsConv runs geometry g (a 1x1 stride-1 unpadded one-group convolution)."""
    if not (ROWS and ENABLED and jit.available() and g.pointwise and g.c > 0):
        return False
    from .jit_gemm import MR
    pixels = g.h * g.w
    return pixels >= ROWS_MIN_PIXELS or (g.m < 2 * MR and pixels >= ROWS_FEW_PIXELS)


def shared_mode(a_bytes, b_bytes, parts, a_panels, workers):
    """Whether jit_gemm packs all of B first (shared) rather than by parts (private): the mode
    that reads less from beyond L2 -- shared reads B once per A panel, private all of A once per
    part -- and private only with parts enough for the threads. Never with B above
    SHARED_B_BYTES: all of B is scratch in the arena (a 512-channel 3x3 layer at 112x112 would
    take 231 MB)."""
    if b_bytes > SHARED_B_BYTES:
        return False
    if workers > 1 and parts < MIN_PRIVATE_PARTS:
        return True
    return b_bytes * a_panels <= a_bytes * parts


class _FusedStore(ConvCPU):
    """A convolution whose kernel stores its tiles with the bias, a residual (fusion.py) and a
    Relu/Clip clamp; other activations in one pass after."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        from . import jit_epilogue, jit_gemm
        self.jg = jit_gemm
        # A residual is added as the tiles are stored, then the node's activation: ConvCPU's
        # separate residual pass is not needed.
        self.residual = len(ins) > 3 and ins[3] is not None
        act = self.finish if self.residual else self.epilogue
        if self.residual:
            del self.run  # ConvCPU's wrapper with its residual pass: the subclass's run() does it all
        self.act = act
        (_, lo, hi, _, _), _ = jit_epilogue.params(act)
        clamp = act.act in ("Relu", "Clip")
        self.lo, self.hi = (np.float32(lo), np.float32(hi)) if clamp else (np.float32(-np.inf), np.float32(np.inf))
        self.after = bool(act.act) and not clamp

    def tmp_floats(self):
        return self.out_floats if self.after and self.act.needs_tmp else 0

    def _workers(self, macs):
        """Two threads for convolutions of at least SHARE_MACS multiply-adds, where allowed."""
        return 2 if helper_allowed(self.backend) and macs >= SHARE_MACS else 1

    def run(self):
        x, y = self.inputs[0], self.outputs[0]
        for i, job in enumerate(self.jobs):
            self._before(x[i])
            job.run()
            if self.after:
                self.act.activate(y[i], self.image_tmp(y[i]))

    def _before(self, image):
        pass


class RowsConv(_FusedStore):
    """1x1, stride 1, no pad, on many pixels: jit_gemm's row tiles read the image as it is (it
    is B) and store the output rows directly (jit_gemm "row tiles"); one native job per image
    whose column tiles both threads take from a counter."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        jg, g = self.jg, self.g
        self.a, self.b = self.prepared(f"rows{jg.RM}", lambda w: jg.pack_weights(w.reshape(g.m, g.c), self.bias, jg.RM))
        self.n_cols = g.h * g.w
        self.workers = self._workers(g.m * g.c * self.n_cols)

    def scratch_bytes(self):
        return 4 * self.tmp_floats()

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        g, jg = self.g, self.jg
        self.counter = np.zeros(1, np.int64)
        x, y = self.inputs[0], self.outputs[0]
        z = self.inputs[3] if self.residual else None
        parts = ROWS_PARTS_PER_THREAD * self.workers
        self.jobs = [NativeJob(jg.rows_job, [jg.rows_pack_job(x[i], self.a, self.b, y[i], None if z is None else z[i],
                                                                g.m, self.n_cols, g.c, self.lo, self.hi, self.counter,
                                                                parts)],
                               self.counter, solo=self.workers == 1) for i in range(g.n)]


class PackedConv(_FusedStore):
    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        jg = self.jg
        g = self.g
        self.k = g.c * g.kh * g.kw
        self.n_cols = g.oh * g.ow
        self.a, self.b = self.prepared(f"packed{jg.MR}", lambda w: jg.pack_weights(
            w.reshape(g.m, self.k), self.bias))
        self.pad = PaddedInput(g) if g.padded else None
        hp, wp = (self.pad.hp, self.pad.wp) if self.pad else (g.h, g.w)
        self.col, self.row, self.runs = jg.tables(g.c, hp, wp, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.oh, g.ow)
        self.panels = -(-self.n_cols // jg.NR)
        self.apanels = self.a.shape[0]
        panel_floats = self.k * jg.NR
        self.chunk = max(1, PART_BYTES // (4 * panel_floats))
        self.workers = self._workers(g.m * self.k * self.n_cols)
        self.shared = shared_mode(self.a.nbytes, 4 * self.panels * panel_floats, -(-self.panels // self.chunk),
                                  self.apanels, self.workers)
        if self.shared:
            self.chunk = -(-self.panels // PACK_PARTS)
            self.buf_floats = self.panels * panel_floats
        else:
            self.buf_floats = self.chunk * panel_floats
        self.asplit = min(self.apanels, MUL_PARTS)
        self.bsplit = min(self.panels, -(-MUL_PARTS // self.asplit))

    def scratch_bytes(self):
        jg = self.jg
        bufs = 1 if self.shared else self.workers
        pad = self.pad.floats if self.pad else 0
        return 4 * (pad + bufs * self.buf_floats + 2 * jg.NR * jg.MR + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        jg, g = self.jg, self.g
        at = 0
        if self.pad:
            self.pad.bind(self.flat)
            at = self.pad.floats
        bufs = []
        for _ in range(1 if self.shared else self.workers):
            bufs.append(self.flat[at:at + self.buf_floats])
            at += self.buf_floats
        tiles = [self.flat[at + t * jg.NR * jg.MR:at + (t + 1) * jg.NR * jg.MR] for t in range(2)]
        self.counters = np.zeros(3, np.int64)
        x, y = self.inputs[0], self.outputs[0]
        z = self.inputs[3] if self.residual else None
        pack_parts = -(-self.panels // self.chunk)
        self.jobs = []
        for i in range(g.n):
            src = self.pad.buf if self.pad else x[i]
            blocks = [jg.pack_job(src, self.col, self.row, self.runs, self.a, self.b, y[i],
                                  None if z is None else z[i], bufs[t % len(bufs)], tiles[t], g.m, self.n_cols,
                                  self.k, self.panels, self.lo, self.hi, self.shared, self.chunk, self.counters,
                                  pack_parts, self.asplit, self.bsplit) for t in range(2)]
            self.jobs.append(NativeJob(jg.conv_job, blocks, self.counters, solo=self.workers == 1))

    def _before(self, image):
        if self.pad:
            self.pad.fill(image)
