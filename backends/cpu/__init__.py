"""The CPU backend: numpy. Implements every op the frontend accepts; the reference and the fallback.

Tensors are numpy views into one uint8 arena. Every op has a pure kernel (kernels_*.py); the
generic executor runs it and copies the result into the planned output. Hot ops have their
own executors (executors.py) that compute straight into the arena.
"""
import numpy as np

from engine.backend import Backend, Executor, register_backend

from .kernels import KERNELS
from . import (kernels_binary, kernels_conv, kernels_detection, kernels_index, kernels_layout,  # noqa: F401
               kernels_misc, kernels_norm, kernels_pool, kernels_quant, kernels_reduce, kernels_resize,
               kernels_unary)
from . import (kernels_attention, kernels_control, kernels_llm, kernels_loss, kernels_lowp,  # noqa: F401,E402
               kernels_rnn, kernels_sampling, kernels_signal, kernels_vision)


@register_backend("cpu")
class CpuBackend(Backend):
    alignment = 64
    host_tensors = True

    @classmethod
    def probe(cls, device=0):
        from engine.threads import blas_info
        return f"numpy {np.__version__}, {blas_info()}"

    def supports(self, node, ins, outs):
        if node.op in KERNELS:
            return None  # a specialised executor that declines leaves the plain kernel
        if node.op in self.ops:
            return self.ops[node.op].supports(self, node, ins, outs)
        return f"no cpu kernel for {node.op}"

    def create(self, node, ins, outs):
        cls = self.ops.get(node.op)
        if cls is not None and cls.supports(self, node, ins, outs) is None:
            return cls(self, node, ins, outs)
        return KernelExecutor(self, node, ins, outs)

    def held_bytes(self):
        """Weights the executors repacked (conv.prepared: Winograd's G g G^T, im2col's [W | b]...),
        counted once each; packings that are views of the model's bytes cost nothing."""
        packed = getattr(self, "_packed_weights", {}).values()
        return sum(p.nbytes for source, p in packed
                   if isinstance(p, np.ndarray) and not np.shares_memory(p, np.asarray(source)))

    def fuse(self, nodes, readers, keep, infos):
        from .fusion import fuse
        return fuse(self, nodes, readers, keep, infos)

    def compile(self, executors):
        """The executors in order, inside the thread pool's `running` (parallel.py) when the
        session has two or more threads: its helpers then spin, ready for GEMM jobs and shared
        stages, instead of sleeping."""
        run_all = super().compile(executors)
        pool = self._pool()
        if pool is None:
            return run_all

        def run():
            with pool:
                run_all()
        return run

    def time_each(self, executors):
        pool = self._pool()
        if pool is None:
            return super().time_each(executors)
        with pool:
            return super().time_each(executors)

    def _pool(self):
        from .parallel import pool, threads_of
        threads = threads_of(self)
        return pool(threads) if threads > 1 else None

    @staticmethod
    def evaluate(node, arrays):
        """Run one node on host arrays; a list of outputs (constant folding, eager nodes)."""
        fn = KERNELS.get(node.op)
        if fn is None:
            from engine.errors import UnsupportedOpError
            raise UnsupportedOpError(f"node '{node.name}': no cpu kernel for op {node.op}")
        res = fn(node, *arrays)
        return list(res) if isinstance(res, (tuple, list)) else [res]

    def _alloc(self, nbytes):
        raw = np.empty(nbytes + self.alignment, np.uint8)
        skip = (-raw.ctypes.data) % self.alignment
        return raw[skip:skip + nbytes]

    def view(self, buf, offset, shape, dtype):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        return buf[offset:offset + n].view(dtype).reshape(shape)

    def upload(self, array):
        return np.asarray(array)  # constants stay where they are: views into the model file

    def write(self, tensor, host):
        np.copyto(tensor, host)

    def read(self, tensor, host):
        np.copyto(host, tensor)


class KernelExecutor(Executor):
    """Any op: call its kernel, copy the result into the planned outputs."""

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.fn = KERNELS[self.node.op]
        self.pairs = [(k, o) for k, o in enumerate(outputs) if o is not None]

    def run(self):
        res = self.fn(self.node, *self.inputs)
        if not isinstance(res, (tuple, list)):
            res = (res,)
        for k, o in self.pairs:
            np.copyto(o, res[k], casting="same_kind")


from . import conv, executors, fast_ops, gemm, squeeze  # noqa: E402,F401  (registers the specialised executors)
