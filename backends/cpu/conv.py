"""Fast Conv executors for the CPU backend: weights packed once, results computed into the arena.

At resize ConvCPU picks one strategy per node, as MNN's ConvolutionFloatFactory does:
  depthwise (depthwise.py)  group == C_in: one copy per tap and one GEMV per channel
  winograd (winograd.py)    3x3, stride 1, dilation 1, when its cost model beats im2col
  rows (packed.py)          with numba, 1x1 on many pixels: row tiles straight from the image
  packed (packed.py)        with numba, every other one-group convolution, 1x1 included:
                            mixnn's own GEMM over weights packed once (jit_gemm.py)
  pointwise                 without numba, 1x1, stride 1, no pad, one group: one numpy GEMM
                            straight into the output
  im2col                    everything else (grouped; all without numba): columns in the
                            planned scratch, one grouped numpy GEMM
ConvTranspose with kernel == stride is one GEMM and a strided copy per tap.
Layout is NCHW, the IR's layout: a 1x1 convolution is then W (M, C) @ X (C, H*W) with no copy,
and im2col columns come out already in GEMM order (docs/cpu.md compares NHWC).
Weights are packed per node once per session (kept across re-plans) and bias plus the fused
activation are applied in place on the output (gemm.Epilogue).
"""
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.backend import Executor
from engine.ops.nn import conv_geometry, conv_out_dim

from . import CpuBackend, jit
from .gemm import Epilogue, activation_of, unsupported_activation
from .parallel import chunks, gemm_workers, serial_blas

# im2col columns above this many bytes are built and multiplied in bands of output rows.
COLS_BUDGET = 8 << 20
# The compiled im2col computes wq = OW + (kw - 1)*dw // sw outputs per row and drops the
# extra ones (jit_im2col.py): each costs Mg multiply-adds in the GEMM (~0.01 ns each) per column
# float, against ~0.2 ns per column float saved by its long copies, so it is taken where the
# waste is below PHASED_WASTE multiply-adds per column float (measured: 3.6% waste at Mg = 256
# lost 3%, at Mg = 64 gained 2-12%). Its bands hold ~PHASED_BAND_BYTES of columns and GEMM
# rows: 1 MB kept them in L2 for the crop, but with BLAS on 2 threads every band is a GEMM
# both threads sync on, and 4 MB bands measured faster (2 threads: ResNet-18's 7x7/2 stem
# 2.15 -> 1.83 ms, PP-OCRv4 det's 3x3/2 stem 2.52 -> 2.13, YOLOv8n's 16->32 @160 0.86 -> 0.69;
# 1 thread within 3%; 2 MB got the first but not the second). The price is arena: a stem's
# scratch sets the network's peak, and 4 MB everywhere took YOLOv8n's from 4.0 to 8.2 MB and
# left MobileNetV1's 17% above its lower bound; so a band holds no more than the layer's output
# (and at least the former PHASED_BAND_MIN). At least PHASED_MIN_COLUMNS columns (24 x 865 x 162 products for 96
# channels at 160x160 ran 25% slower than 24 x 865 x 1134).
PHASED_WASTE = 4
PHASED_BAND_BYTES = 4 << 20
PHASED_BAND_MIN = 1 << 20
PHASED_MIN_COLUMNS = 1024
# With the thread pool (parallel.py), the phased path's bands -- phase planes, columns, GEMM on
# one thread, crop -- are shared by two threads from this many multiply-adds (2 threads:
# YOLOv8n's 3->16 @320 0.63 -> 0.49 ms, 16->32 @160 1.04 -> 0.74; ResNet-18's stem 2.2 ->
# 1.9). The other im2col layers and the 1x1 GEMMs are not: with OpenBLAS splitting their GEMM
# through the pool they lost nothing, and chunking them cost 10-60% (GIL hand-offs, docs/cpu.md).
PHASED_SHARE_MACS = 1 << 20
# A GEMM shared by two threads is cut into this many column chunks (claimed dynamically, so a
# descheduled thread's share is taken by the other), each a multiple of CHUNK_ALIGN columns.
GEMM_CHUNKS = 2
CHUNK_ALIGN = 16
# A 1x1 convolution adds its bias inside the GEMM (input copied beside a row of ones) when
# C < BIAS_ROW_RATIO * M: a contiguous copy costs ~0.1 ns per float, a broadcast add ~0.18.
BIAS_ROW_RATIO = 1.8


class ConvGeometry(NamedTuple):
    n: int
    c: int
    h: int
    w: int
    m: int       # output channels
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int      # pads: top, left, bottom, right
    pl: int
    pb: int
    pr: int
    oh: int
    ow: int
    group: int

    @property
    def depthwise(self):
        return self.group == self.c and self.group > 1 and self.m % self.c == 0

    @property
    def pointwise(self):
        return (self.kh, self.kw, self.sh, self.sw, self.group) == (1, 1, 1, 1, 1) and not self.padded

    @property
    def padded(self):
        return any((self.pt, self.pl, self.pb, self.pr))


def geometry(node, x_shape, w_shape):
    n, c, h, w = x_shape
    m, _, kh, kw = w_shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = conv_geometry(node, x_shape, (kh, kw))
    oh = conv_out_dim(h, kh, sh, dh, pt, pb)
    ow = conv_out_dim(w, kw, sw, dw, pl, pr)
    return ConvGeometry(n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow,
                        int(node.attrs.get("group", 1)))


def prepared(backend, node, tag, source, make):
    """make(source), computed once per session and node: re-plans on new shapes reuse it."""
    cache = backend.__dict__.setdefault("_packed_weights", {})
    key = (node.name, tag)
    hit = cache.get(key)
    if hit is None or hit[0] is not source:
        hit = cache[key] = (source, make(source))
    return hit[1]


class PaddedInput:
    """A zero-bordered copy of one image (C, Hp, Wp) in scratch. The arena reuses the scratch
    between runs, so the borders are re-zeroed on every run (four thin slices, not the whole)."""

    def __init__(self, g, rows=None, cols=None):
        self.g = g
        self.hp = rows if rows is not None else g.h + g.pt + g.pb
        self.wp = cols if cols is not None else g.w + g.pl + g.pr
        self.floats = g.c * self.hp * self.wp

    def bind(self, flat):
        g = self.g
        self.buf = flat[:self.floats].reshape(g.c, self.hp, self.wp)
        bottom, right = g.pt + g.h, g.pl + g.w
        self.inner = self.buf[:, g.pt:bottom, g.pl:right]
        self.borders = [v for v in (self.buf[:, :g.pt], self.buf[:, bottom:],
                                    self.buf[:, g.pt:bottom, :g.pl], self.buf[:, g.pt:bottom, right:])
                        if v.size]

    def fill(self, image):
        for v in self.borders:
            v.fill(0)
        np.copyto(self.inner, image)
        return self.buf


@CpuBackend.op("Conv")
class ConvCPU(Executor):
    """Dispatches to the strategy that fits the node's geometry (see the module docstring)."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        x, w = ins[0], ins[1]
        if len(x.shape) != 4:
            return "the fast Conv paths are 2-D"
        if x.dtype != np.float32 or w.dtype != np.float32:
            return "the fast Conv paths are float32"
        if w.value is None:
            return "the weights are not constant"
        if len(ins) > 2 and ins[2] is not None and ins[2].value is None:
            return "the bias is not constant"
        if len(ins) > 3 and ins[3] is not None:
            z, y = ins[3], outs[0]
            if z.dtype != np.float32 or tuple(z.shape) != tuple(y.shape):
                return "the residual must be float32 and shaped like the output"
            # the numpy pass would need an output-sized scratch for LeakyRelu, HardSwish, SiLU
            act = activation_of(node)
            if Epilogue(node).needs_tmp and not _compiled_activation(act):
                return f"no scratch-free residual pass for {act}"
        return unsupported_activation(node)

    def __new__(cls, backend, node, ins, outs):
        if cls is ConvCPU:
            cls = strategy(geometry(node, ins[0].shape, ins[1].shape))
        return super().__new__(cls)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        self.g = geometry(node, ins[0].shape, ins[1].shape)
        self.weight = ins[1].value
        self.bias = ins[2].value if len(ins) > 2 and ins[2] is not None else None
        self.epilogue = Epilogue(node)
        self.out_floats = self.g.m * self.g.oh * self.g.ow  # one image's output
        post = None
        if len(ins) > 3 and ins[3] is not None:
            # A residual (backends/cpu/fusion.py): the strategy computes conv + bias with no
            # activation, then one pass adds the residual and activates.
            self.epilogue, self.finish = Epilogue(node, act=""), Epilogue(node)
            self._add_act = None
            if jit.available():
                from . import jit_epilogue
                self._add_act = (jit_epilogue.add_act,) + jit_epilogue.params(self.finish)
            post = self._residual_pass
        elif node.attrs.get("post_scale") is not None:
            # y * s + b after the activation (fusion.py's affine chains): one pass after the
            # strategy's, instead of a Mul pass and an Add pass.
            self.affine = (np.float32(node.attrs["post_scale"]), np.float32(node.attrs.get("post_shift", 0.0)))
            self._affine = None
            if jit.available():
                from .jit_epilogue import affine
                self._affine = affine
            post = self._affine_pass
        if post is not None:  # the strategy's own run() stays the first step
            self._compute, self._post, self.run = self.run, post, self._run_then_post

    def _run_then_post(self):
        self._compute()
        self._post()

    def _affine_pass(self):
        y, (s, b) = self.outputs[0], self.affine
        if self._affine is not None:
            self._affine(y.reshape(-1), s, b)
            return
        np.multiply(y, s, out=y)
        np.add(y, b, out=y)

    def _residual_pass(self):
        y, z = self.outputs[0], self.inputs[3]
        if self._add_act is None:
            np.add(y, z, out=y)
            self.finish.activate(y)
            return
        kernel, params, after = self._add_act
        kernel(y.reshape(-1), z.reshape(-1), *params)
        if after:
            self.finish.activate(y)

    def prepared(self, tag, make):
        return prepared(self.backend, self.node, tag, self.weight, make)

    def bias_column(self):
        """The bias as an (M, 1) column (zeros when the node has none)."""
        b = self.bias if self.bias is not None else np.zeros(self.g.m, np.float32)
        return np.asarray(b, np.float32).reshape(-1, 1)

    def tmp_floats(self):
        return self.out_floats if self.epilogue.needs_tmp else 0

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.flat = scratch.view(np.float32) if scratch is not None else np.empty(0, np.float32)
        self.tmp = self.flat[-self.tmp_floats():] if self.tmp_floats() else None

    def image_tmp(self, like):
        """The epilogue's scratch, shaped like one image's output `like`, or None."""
        return None if self.tmp is None else self.tmp[:like.size].reshape(like.shape)


class PointwiseConv(ConvCPU):
    """1x1, stride 1, no pad: y[n] (M, HW) = W (M, C) @ x[n] (C, HW), then bias + activation.

    numpy adds an (M, 1) bias through a buffered broadcast at ~2x the cost of a plain add
    (docs/cpu.md). When the input is smaller than ~1.8x the output, copying it into scratch
    beside a row of ones is cheaper: the bias then rides in the GEMM as a weight column."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        g = self.g
        # The compiled epilogue adds the bias in the activation's pass: nothing to save then.
        self.ones_row = self.bias is not None and g.c < BIAS_ROW_RATIO * g.m and not jit.available()
        if self.ones_row:
            self.w = self.prepared("pointwise+bias", lambda w: np.ascontiguousarray(
                np.hstack([w.reshape(g.m, g.c), self.bias_column()]), np.float32))
        else:
            self.w = self.prepared("pointwise", lambda w: np.ascontiguousarray(w.reshape(g.m, g.c), np.float32))
            self.epilogue.bias = self.bias_column() if self.bias is not None else None

    def scratch_bytes(self):
        g = self.g
        return 4 * ((g.c + 1) * g.h * g.w * self.ones_row + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        g = self.g
        hw = g.h * g.w
        if self.ones_row:
            self.xa = self.flat[:(g.c + 1) * hw].reshape(g.c + 1, -1)
        self.tmp2 = None if self.tmp is None else self.tmp[:g.m * hw].reshape(g.m, hw)
        self.workers = gemm_workers(self.backend, g.m * g.c * hw)
        self.cols = column_chunks(hw, GEMM_CHUNKS if self.workers > 1 else 1)
        x = self.inputs[0].reshape(g.n, g.c, hw)
        y = self.outputs[0].reshape(g.n, g.m, hw)
        # The common case -- one chunk, bias in the epilogue -- as bare (x, y) pairs: SE blocks
        # run dozens of 1x1 convolutions on 1x1 maps, where each Python step shows.
        self.direct = [(x[i], y[i]) for i in range(g.n)] if len(self.cols) == 1 and not self.ones_row else None
        self.images = [(x[i], y[i]) for i in range(g.n)]

    def run(self):
        serial_blas()
        if self.direct is not None:
            for x, y in self.direct:
                np.matmul(self.w, x, out=y)
                self.epilogue(y, self.tmp2)
            return
        for x, y in self.images:
            chunks(self._columns, [(x, y, s) for s in self.cols], self.workers)

    def _columns(self, worker, src, y, s):
        g = self.g
        if self.ones_row:
            np.copyto(self.xa[:g.c, s], src[:, s])
            self.xa[g.c, s].fill(1)
            src = self.xa
        np.matmul(self.w, src[:, s], out=y[:, s])
        self.epilogue(y[:, s], None if self.tmp2 is None else self.tmp2[:, s])


def _compiled_activation(act):
    """Whether jit_epilogue applies `act` itself (no numpy pass after it)."""
    if not jit.available():
        return False
    from .jit_epilogue import ACT_CODES
    return act in ACT_CODES


def column_chunks(n, parts):
    """`parts` slices covering range(n), cut at multiples of CHUNK_ALIGN (fewer when n is short)."""
    cuts = sorted({min(n, n * k // parts // CHUNK_ALIGN * CHUNK_ALIGN) for k in range(parts)} | {n})
    return [slice(a, b) for a, b in zip(cuts, cuts[1:])]


def phased(spare, ow, mg):
    """Whether the compiled im2col pays for `spare` extra outputs per row of OW (PHASED_WASTE)."""
    return spare * mg <= PHASED_WASTE * ow


class Im2colConv(ConvCPU):
    """Any geometry: columns (G, Cg*kh*kw + 1, rows*OW) gathered from a strided window view of the
    (padded) image in one copy, then one batched GEMM (G, Mg, Cg*kh*kw + 1) @ columns into the
    output rows. The extra row of ones against a bias column adds the bias inside the GEMM.
    With numba, where the rows are wide enough (`phased`), jit_im2col builds the columns from
    stride phases of the image in long copies instead, for wq >= OW outputs per row that the
    copy into the output crops (jit_im2col's docstring)."""

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        g = self.g
        self.cg, self.mg = g.c // g.group, g.m // g.group
        self.kd = self.cg * g.kh * g.kw
        self.w = self.prepared("im2col", self._pack)
        self.wq = g.ow + (g.kw - 1) * g.dw // g.sw   # a phase plane's width (jit_im2col)
        self.phased = jit.available() and phased(self.wq - g.ow, g.ow, self.mg)
        # Two threads take bands in turn, each with its own columns.
        self.workers = gemm_workers(backend, g.m * self.kd * g.oh * g.ow, PHASED_SHARE_MACS if self.phased else None)
        if self.phased:  # columns and GEMM rows of a band in L2 until cropped, but not too thin
            per_row = 4 * (g.group * (self.kd + 1) + g.m) * self.wq
            # shared: the threads' bands together no larger than one thread's (the arena)
            budget = min(PHASED_BAND_BYTES, max(PHASED_BAND_MIN, self.out_floats * 4)) // self.workers
            rows = min(max(budget // per_row, -(-PHASED_MIN_COLUMNS // self.wq)),
                       COLS_BUDGET // per_row)
        else:
            rows = COLS_BUDGET // (4 * g.group * (self.kd + 1) * g.ow)
        self.band = max(1, min(g.oh, rows))
        if self.workers > 1:
            self.band = min(self.band, -(-g.oh // GEMM_CHUNKS))
        self.pad = PaddedInput(g) if g.padded and not self.phased else None
        if self.phased:
            from . import jit_epilogue, jit_im2col
            self.kernels = jit_im2col.planes, jit_im2col.columns, jit_im2col.crop
            self.act, self.after = jit_epilogue.params(self.epilogue)
            self.hq = self.band + (g.kh - 1) * g.dh // g.sh  # phase plane rows for a full band

    def _pack(self, w):
        g = self.g
        packed = np.empty((g.group, self.mg, self.kd + 1), np.float32)
        packed[:, :, :self.kd] = w.reshape(g.group, self.mg, self.kd)
        packed[:, :, self.kd] = self.bias_column().reshape(g.group, self.mg)
        return packed

    def cols_floats(self):
        """Per worker: the columns, and on the phased path the phase planes and the GEMM's rows."""
        g = self.g
        if not self.phased:
            return g.group * (self.kd + 1) * self.band * g.ow
        planes = g.c * g.sh * g.sw * self.hq * self.wq + self.wq  # slack: the last run overreads
        return planes + (g.group * (self.kd + 1) + g.m) * self.band * self.wq

    def tmp_floats(self):
        return 0 if self.phased and not self.after else super().tmp_floats()

    def scratch_bytes(self):
        return 4 * ((self.pad.floats if self.pad else 0) + self.workers * self.cols_floats() + self.tmp_floats())

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        g = self.g
        start = 0
        if self.pad:
            self.pad.bind(self.flat)
            start = self.pad.floats
        n = self.cols_floats()
        self.cols = [self.flat[start + k * n:start + (k + 1) * n] for k in range(self.workers)]
        self.bands = [(r0, min(self.band, g.oh - r0)) for r0 in range(0, g.oh, self.band)]

    def run(self):
        serial_blas()
        x, y = self.inputs[0], self.outputs[0]
        band = self._phased_band if self.phased else self._band
        for i in range(self.g.n):
            src = self.pad.fill(x[i]) if self.pad else x[i]
            tmp = self.image_tmp(y[i])
            chunks(band, [(src, y[i], tmp, r0, rows) for r0, rows in self.bands], self.workers)

    def _band(self, worker, src, y, tmp, r0, rows):
        g = self.g
        cols = self.cols[worker][:g.group * (self.kd + 1) * rows * g.ow].reshape(g.group, self.kd + 1, -1)
        np.copyto(cols[:, :self.kd].reshape(g.group, self.cg, g.kh, g.kw, rows, g.ow), self._windows(src, r0, rows))
        cols[:, self.kd].fill(1)
        out = y[:, r0:r0 + rows]
        np.matmul(self.w, cols, out=out.reshape(g.group, self.mg, rows * g.ow))
        self.epilogue.activate(out, None if tmp is None else tmp[:, r0:r0 + rows])

    def _phased_band(self, worker, src, y, tmp, r0, rows):
        g, wq = self.g, self.wq
        planes, columns, crop = self.kernels
        buf = self.cols[worker]
        hq = rows + (g.kh - 1) * g.dh // g.sh
        n_p = g.c * g.sh * g.sw * hq * wq + wq
        n_c = g.group * (self.kd + 1) * rows * wq
        p, cols = buf[:n_p], buf[n_p:n_p + n_c].reshape(g.group, self.kd + 1, rows * wq)
        out = buf[n_p + n_c:n_p + n_c + g.m * rows * wq].reshape(g.m, rows * wq)
        planes(src, p, r0, hq, wq, g.sh, g.sw, g.pt, g.pl)
        columns(p, cols, hq, wq, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw)
        np.matmul(self.w, cols, out=out.reshape(g.group, self.mg, rows * wq))
        crop(out, y, r0, wq, *self.act)
        if self.after:
            self.epilogue.activate(y[:, r0:r0 + rows], None if tmp is None else tmp[:, r0:r0 + rows])

    def _windows(self, src, r0, rows):
        """(G, Cg, kh, kw, rows, OW) view: [.., c, i, j, r, q] = src[c, (r0+r)*sh + i*dh, q*sw + j*dw]."""
        g = self.g
        s_c, s_h, s_w = src.strides
        base = src[:, r0 * g.sh:]
        return as_strided(base, (g.group, self.cg, g.kh, g.kw, rows, g.ow),
                          (s_c * self.cg, s_c, s_h * g.dh, s_w * g.dw, s_h * g.sh, s_w * g.sw),
                          writeable=False)


@CpuBackend.op("ConvTranspose")
class ConvTransposeCPU(Executor):
    """Transposed convolution whose kernel equals its stride (the 2x2/2 upsampling of DBNet
    heads): output pixels of different taps never overlap, so it is one GEMM
    cols (M*kh*kw, H*W) = W^T @ [x; 1] with the bias as a weight column, then kh*kw strided
    copies of the columns into the output phases. Overlapping kernels use the generic kernel."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        x, w = ins[0], ins[1]
        if len(x.shape) != 4 or x.dtype != np.float32 or w.dtype != np.float32 or w.value is None:
            return "the fast ConvTranspose path is 2-D float32 with constant weights"
        if len(ins) > 2 and ins[2] is not None and ins[2].value is None:
            return "the bias is not constant"
        a = node.attrs
        kernel = list(w.shape[2:])
        if a.get("group", 1) != 1 or list(a.get("strides", [1, 1])) != kernel \
                or any(a.get("pads", [0] * 4)) or any(a.get("output_padding", [0, 0])) \
                or any(d != 1 for d in a.get("dilations", [1, 1])) \
                or "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            return "only ConvTranspose with kernel == stride, one group and no padding has a fast path"
        return unsupported_activation(node)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        self.n, self.c, self.h, self.w = ins[0].shape
        _, self.m, self.kh, self.kw = ins[1].shape
        bias = ins[2].value if len(ins) > 2 and ins[2] is not None else None
        self.weight = prepared(backend, node, "transpose", ins[1].value, lambda w: self._pack(w, bias))
        self.epilogue = Epilogue(node)
        self.out_floats = int(np.prod(outs[0].shape[1:]))
        # With numba, the GEMM reads x in place and one compiled pass writes each output row
        # with the bias and the activation (jit_transpose.py), instead of the copy beside a row
        # of ones, kh*kw strided copies and the activation's passes.
        self.compiled = jit.available()
        if self.compiled:
            from . import jit_epilogue, jit_transpose
            self.bias_vector = np.ascontiguousarray(self.weight[::self.kh * self.kw, self.c])
            self.kernel = jit_transpose.scatter
            self.act, self.after = jit_epilogue.params(self.epilogue)

    def _pack(self, w, bias):
        rows = np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(-1, self.c)  # (M*kh*kw, C)
        b = np.zeros(self.m, np.float32) if bias is None else np.asarray(bias, np.float32)
        return np.ascontiguousarray(np.hstack([rows, np.repeat(b, self.kh * self.kw)[:, None]]), np.float32)

    def scratch_bytes(self):
        hw = self.h * self.w
        tmp = self.out_floats if self.epilogue.needs_tmp else 0
        return 4 * ((self.c + 1) * hw * (not self.compiled) + self.m * self.kh * self.kw * hw + tmp)

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        hw = self.h * self.w
        flat = scratch.view(np.float32)
        start = 0 if self.compiled else (self.c + 1) * hw
        self.xa = flat[:start].reshape(-1, hw)
        cols = flat[start:start + self.m * self.kh * self.kw * hw]
        self.cols = cols.reshape(self.m * self.kh * self.kw, hw)
        taps = self.cols.reshape(self.m, self.kh, self.kw, self.h, self.w)
        self.tmp = flat[-self.out_floats:] if self.epilogue.needs_tmp else None
        self.scatter = [(taps[:, i, j], (i, j)) for i in range(self.kh) for j in range(self.kw)]

    def run(self):
        serial_blas()
        x, out = self.inputs[0], self.outputs[0]
        for n in range(self.n):
            if self.compiled:
                tmp = None if self.tmp is None else self.tmp.reshape(out[n].shape)
                np.matmul(self.weight[:, :self.c], x[n].reshape(self.c, -1), out=self.cols)
                self.kernel(self.cols, out[n], self.bias_vector, self.kh, self.kw, *self.act)
                if self.after:
                    self.epilogue.activate(out[n], tmp)
                continue
            np.copyto(self.xa[:self.c], x[n].reshape(self.c, -1))
            self.xa[self.c].fill(1)
            np.matmul(self.weight, self.xa, out=self.cols)
            y = out[n]
            for src, (i, j) in self.scatter:
                np.copyto(y[:, i::self.kh, j::self.kw], src)
            self.epilogue.activate(y, None if self.tmp is None else self.tmp.reshape(y.shape))


def strategy(g):
    """The executor class for a convolution of geometry g."""
    from .depthwise import DepthwiseConv
    from .winograd import WinogradConv, best_unit
    from . import packed
    if g.depthwise:
        return DepthwiseConv
    if g.pointwise:
        if packed.rows_apply(g):
            return packed.RowsConv
        return packed.PackedConv if packed.applies(g) else PointwiseConv
    if best_unit(g) > 1:
        return WinogradConv
    if packed.applies(g):
        return packed.PackedConv
    return Im2colConv
