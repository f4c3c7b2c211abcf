"""GEMM on the CPU backend: the fused epilogue every GEMM-shaped executor shares, Strassen (kept
measured but off: it lost to OpenBLAS at every size tried), and the MatMul executor.

The epilogue applies a bias and the activation the optimizer fused into the node
(`activation` in ACTIVATIONS, with `act_min`/`act_max`/`act_alpha`/`act_beta`) in place on
the output view: no temporary output, at most one scratch buffer of the output's size.
"""
import numpy as np

from engine.backend import Executor

from . import CpuBackend, jit
from .kernels_common import attr_str
from .parallel import NativeJob, chunks, gemm_workers, pool_running, serial_blas

ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "SiLU", "HardSwish", "LeakyRelu", "HardSigmoid", "Tanh")
_NEEDS_TMP = ("SiLU", "HardSwish", "LeakyRelu")
_NO_BIAS = np.zeros(0, np.float32)
# One level of Strassen saves 1/8 of a product's FLOPs for 18 quarter-size additions. With
# OpenBLAS it measured slower at every size from 256^3 to 4096^3 (docs/cpu.md;
# `python -m backends.cpu.gemm` re-measures), so it is off: set the smallest M, K, N at which
# it wins on another BLAS to turn it on.
STRASSEN_MIN = None


def activation_of(node):
    """The fused activation's name, "" for none."""
    return attr_str(node, "activation", "") or ""


def unsupported_activation(node):
    """A reason to decline the node, or None."""
    act = activation_of(node)
    if act and act not in ACTIVATIONS:
        return f"unknown fused activation '{act}'"
    return None


# A bias + activation pass over at least this many floats runs on the pool's two threads
# while a session runs (parallel.pair): MobileNetV2's 1x1 96 @ 112x112 + ReLU6 436 -> 403 us,
# 144 @ 56x56 213 -> 193; no gain measured at 192 @ 28x28.
EPILOGUE_SHARE_FLOATS = 1 << 18


class Epilogue:
    """y = act(y + bias), in place. `bias` is already shaped to broadcast against y (or None).
    `act` overrides the node's fused activation ("" for none)."""

    def __init__(self, node, bias=None, act=None):
        self.bias = bias
        self.act = activation_of(node) if act is None else act
        a = node.attrs
        lo, hi = a.get("act_min", -np.inf), a.get("act_max", np.inf)
        self.lo = np.float32(-np.inf if lo is None else lo)
        self.hi = np.float32(np.inf if hi is None else hi)
        self.alpha = float(a.get("act_alpha", 0.01 if self.act == "LeakyRelu" else 0.2))
        self.beta = float(a.get("act_beta", 0.5))
        self.needs_tmp = self.act in _NEEDS_TMP
        self._jit = None

    def __call__(self, y, tmp=None):
        if self._compiled(y, self.bias, tmp):
            return
        if self.bias is not None:
            np.add(y, self.bias, out=y)
        self._activate(y, tmp)

    def activate(self, y, tmp=None):
        if not self._compiled(y, None, tmp):
            self._activate(y, tmp)

    def _compiled(self, y, bias, tmp):
        """Bias and arithmetic activation in one compiled pass (jit_epilogue), when numba is
        there and y is a contiguous float32 block with a per-row bias or none: True when done."""
        if self._jit is None:
            self._jit = False
            if jit.available():
                from . import jit_epilogue
                self._jit = (jit_epilogue.bias_act,) + jit_epilogue.params(self)
        if not self._jit or y.dtype != np.float32 or not y.flags.c_contiguous or y.ndim < 1:
            return False
        if bias is not None and not (bias.ndim == 2 and bias.shape == (y.shape[0], 1)):
            return False
        kernel, params, after = self._jit
        if (bias is not None or params[0]) and y.size >= EPILOGUE_SHARE_FLOATS and y.shape[0] >= 2 and pool_running():
            self._shared(y.reshape(y.shape[0], -1), None if bias is None else bias.reshape(-1), params)
        elif bias is not None:
            kernel(y.reshape(y.shape[0], -1), bias.reshape(-1), *params)
        elif params[0]:
            kernel(y.reshape(1, -1), _NO_BIAS, *params)
        if after:
            self._activate(y, tmp)
        return True

    def _shared(self, y, bias, params):
        """The pass over y's rows as one native job on the pool's two threads (one argument
        block for both: their parts are rows from the counter)."""
        from .jit_epilogue import epilogue_job, pack_job
        counter = np.zeros(1, np.int64)
        NativeJob(epilogue_job, [pack_job(y, bias, params, counter, min(y.shape[0], 8))], counter).run()

    def _activate(self, y, tmp=None):
        act = self.act
        if not act:
            return
        if act == "Relu":
            np.clip(y, 0, np.inf, out=y)  # measured 3x faster than np.maximum(y, 0) here
        elif act == "Clip":
            np.clip(y, self.lo, self.hi, out=y)
        elif act == "Sigmoid":  # 0.5 * tanh(y / 2) + 0.5: no exp overflow for large |y|
            np.multiply(y, 0.5, out=y)
            np.tanh(y, out=y)
            np.multiply(y, 0.5, out=y)
            np.add(y, 0.5, out=y)
        elif act == "SiLU":  # y * sigmoid(y) = (y / 2) * (1 + tanh(y / 2))
            np.multiply(y, 0.5, out=y)
            np.tanh(y, out=tmp)
            np.add(tmp, 1.0, out=tmp)
            np.multiply(y, tmp, out=y)
        elif act == "HardSwish":
            np.multiply(y, 1 / 6, out=tmp)
            np.add(tmp, 0.5, out=tmp)
            np.clip(tmp, 0, 1, out=tmp)
            np.multiply(y, tmp, out=y)
        elif act == "LeakyRelu":
            np.multiply(y, self.alpha, out=tmp)
            (np.maximum if self.alpha <= 1 else np.minimum)(y, tmp, out=y)
        elif act == "HardSigmoid":
            np.multiply(y, self.alpha, out=y)
            np.add(y, self.beta, out=y)
            np.clip(y, 0, 1, out=y)
        elif act == "Tanh":
            np.tanh(y, out=y)


def strassen_matmul(a, b, out, tmp):
    """out = a @ b for 2-D float32 a (M, K), b (K, N) with even M, K, N: one level of Strassen.

    Seven half-size BLAS products replace eight, for 18 quarter-size additions. `tmp` is a flat
    float32 scratch of strassen_floats(M, K, N)."""
    m, k = a.shape
    n = b.shape[1]
    m2, k2, n2 = m // 2, k // 2, n // 2
    a11, a12, a21, a22 = a[:m2, :k2], a[:m2, k2:], a[m2:, :k2], a[m2:, k2:]
    b11, b12, b21, b22 = b[:k2, :n2], b[:k2, n2:], b[k2:, :n2], b[k2:, n2:]
    c11, c12, c21, c22 = out[:m2, :n2], out[:m2, n2:], out[m2:, :n2], out[m2:, n2:]
    ta = tmp[:m2 * k2].reshape(m2, k2)
    tb = tmp[m2 * k2:m2 * k2 + k2 * n2].reshape(k2, n2)
    p = tmp[m2 * k2 + k2 * n2:strassen_floats(m, k, n)].reshape(m2, n2)
    np.matmul(np.add(a11, a22, out=ta), np.add(b11, b22, out=tb), out=c11)   # M1
    np.copyto(c22, c11)
    np.matmul(np.add(a21, a22, out=ta), b11, out=c21)                      # M2
    np.subtract(c22, c21, out=c22)
    np.matmul(a11, np.subtract(b12, b22, out=tb), out=c12)                 # M3
    np.add(c22, c12, out=c22)
    np.matmul(a22, np.subtract(b21, b11, out=tb), out=p)                   # M4
    np.add(c11, p, out=c11)
    np.add(c21, p, out=c21)
    np.matmul(np.add(a11, a12, out=ta), b22, out=p)                        # M5
    np.subtract(c11, p, out=c11)
    np.add(c12, p, out=c12)
    np.matmul(np.subtract(a21, a11, out=ta), np.add(b11, b12, out=tb), out=p)  # M6
    np.add(c22, p, out=c22)
    np.matmul(np.subtract(a12, a22, out=ta), np.add(b21, b22, out=tb), out=p)  # M7
    np.add(c11, p, out=c11)


def strassen_floats(m, k, n):
    return (m * k + k * n + m * n) // 4


def use_strassen(m, k, n):
    return STRASSEN_MIN is not None and min(m, k, n) >= STRASSEN_MIN and m % 2 == 0 and k % 2 == 0 and n % 2 == 0


@CpuBackend.op("MatMul")
class MatMulCPU(Executor):
    """y = act(a @ b + bias), computed into the planned output (numpy broadcasting rules)."""

    @classmethod
    def supports(cls, backend, node, ins, outs):
        a, b = ins[0], ins[1]
        if a.dtype != np.float32 or b.dtype != np.float32:
            return "the fast MatMul path is float32"
        if len(a.shape) < 1 or len(b.shape) < 1 or len(a.shape) == 1 or len(b.shape) == 1:
            return "the fast MatMul path needs operands of rank >= 2"
        if len(ins) > 2 and ins[2] is not None and ins[2].dtype != np.float32:
            return "the bias is not float32"
        return unsupported_activation(node)

    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        bias = ins[2] if len(ins) > 2 and ins[2] is not None else None
        self.has_bias = bias is not None
        self.epilogue = Epilogue(node)
        shape = outs[0].shape
        self.size = int(np.prod(shape))
        a, b = ins[0].shape, ins[1].shape
        self.strassen = len(a) == 2 and len(b) == 2 and use_strassen(a[0], a[1], b[1])

    def scratch_bytes(self):
        floats = self.size if self.epilogue.needs_tmp else 0
        if self.strassen:
            a, b = self.ins[0].shape, self.ins[1].shape
            floats = max(floats, strassen_floats(a[0], a[1], b[1]))
        return 4 * floats

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.tmp = scratch.view(np.float32) if scratch is not None else None
        self.bias = inputs[2] if self.has_bias else None
        a, y = inputs[0], outputs[0]
        tmp = self.tmp[:self.size].reshape(y.shape) if self.epilogue.needs_tmp else None
        # Two threads share big products by halves of A's rows, unless the bias varies along them.
        rows = a.shape[-2]
        row_bias = self.bias is not None and np.ndim(self.bias) >= 2 and self.bias.shape[-2] > 1
        split = not (self.strassen or row_bias or rows < 2)
        self.workers = gemm_workers(self.backend, self.size * a.shape[-1]) if split else 1
        cut = [slice(0, rows)] if self.workers == 1 else [slice(0, rows // 2), slice(rows // 2, rows)]
        self.parts = [(a[..., s, :], y[..., s, :], None if tmp is None else tmp[..., s, :]) for s in cut]

    def run(self):
        serial_blas()
        if self.strassen:
            y = self.outputs[0]
            strassen_matmul(self.inputs[0], self.inputs[1], y, self.tmp)
            self._finish(y, self.parts[0][2])
        else:
            chunks(self._rows, self.parts, self.workers)

    def _rows(self, worker, a, y, tmp):
        np.matmul(a, self.inputs[1], out=y)
        self._finish(y, tmp)

    def _finish(self, y, tmp):
        if self.bias is not None:
            np.add(y, self.bias, out=y)
        self.epilogue.activate(y, tmp)


def _measure_strassen(sizes=(512, 1024, 2048, 4096)):
    """`python -m backends.cpu.gemm`: BLAS vs one level of Strassen, best of 3, on this machine."""
    import timeit
    rng = np.random.default_rng(0)
    for s in sizes:
        a, b = rng.standard_normal((s, s), np.float32), rng.standard_normal((s, s), np.float32)
        out, tmp = np.empty((s, s), np.float32), np.empty(strassen_floats(s, s, s), np.float32)
        blas = min(timeit.repeat(lambda: np.matmul(a, b, out=out), number=1, repeat=3))
        strassen = min(timeit.repeat(lambda: strassen_matmul(a, b, out, tmp), number=1, repeat=3))
        print(f"{s}^3: BLAS {blas * 1e3:.1f} ms, Strassen {strassen * 1e3:.1f} ms ({strassen / blas:.2f}x)")


if __name__ == "__main__":
    _measure_strassen()
