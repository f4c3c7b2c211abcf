"""The OpenGL backend: GLSL compute shaders (GL 4.3 / GLES 3.1) through moderngl, headless via EGL.

Tensors live in one arena buffer per session (views are byte ranges bound as SSBOs at offsets
aligned to GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT); constants are packed into static chunks
uploaded once. A subgraph compiles into a flat list of dispatches with a shader-storage barrier
between dependent ones, replayed on every run and finished once at the end.
"""
from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np

from engine.backend import Backend, register_backend
from engine.errors import BackendUnavailable, MixnnError
from engine.memory import align_up

from .context import debug_level, gl_context
from .dispatch import GLTensor
from .programs import STATS, ProgramCache

STATIC_CHUNK = 8 << 20  # constants are packed into buffers of this size (or one per big constant)


def default_cache_dir(config) -> str:
    base = getattr(config, "cache_dir", None) or os.path.join(os.path.expanduser("~"), ".cache", "mixnn")
    return os.path.join(base, "gl")


def _check_device(device):
    if device != 0:
        raise BackendUnavailable(f"gl: device {device} does not exist (the EGL default display is device 0)")


@register_backend("gl")
class GLBackend(Backend):
    alignment = 256  # replaced by the device's SSBO offset alignment when opened
    cache_stats = STATS

    @classmethod
    def probe(cls, device=0):
        _check_device(device)
        return gl_context().device

    def __init__(self, device=0, config=None):
        super().__init__(device, config)
        _check_device(device)
        cache_dir = default_cache_dir(config)
        self.glc = gl_context(cache_dir)
        self.ctx = self.glc.ctx
        self.alignment = self.glc.alignment
        self.programs = ProgramCache(self.glc, cache_dir)
        import moderngl
        self._storage_bit = moderngl.SHADER_STORAGE_BARRIER_BIT
        self._final_bits = moderngl.SHADER_STORAGE_BARRIER_BIT | moderngl.BUFFER_UPDATE_BARRIER_BIT
        self.barrier = functools.partial(self.ctx.memory_barrier, self._storage_bit)
        self._chunk = None  # (buffer, bytes used) of the static chunk being filled
        self.static_bytes = 0  # constants really on the device (repacked ones included)
        self._derived = {}

    def describe(self):
        return self.glc.device

    # -- memory ---------------------------------------------------------------------
    def _alloc(self, nbytes):
        return self.ctx.buffer(reserve=int(nbytes))

    def _free(self, buf):
        buf.release()

    def view(self, buf, offset, shape, dtype):
        return GLTensor(buf, offset, shape, dtype)

    def upload(self, array):
        array = np.ascontiguousarray(array)
        return GLTensor(None, 0, array.shape, array.dtype, pending=(array, self._place_static))

    def upload_derived(self, key, sources, make):
        """A constant computed from graph constants (repacked weights...): uploaded once per
        session however often shapes change, keyed by `key` and the identity of `sources`
        (kept alive here, so that an id is never reused)."""
        k = (key, *map(id, sources))
        if k not in self._derived:
            self._derived[k] = (sources, self.upload(make()))
        return self._derived[k][1]

    def _place_static(self, array):
        """Write a constant into the static chunk being filled: (buffer, byte offset)."""
        nbytes = max(array.nbytes, 1)
        if self._chunk is None or align_up(self._chunk[1], self.alignment) + nbytes > self._chunk[0].size:
            self._chunk = (self.allocate(max(STATIC_CHUNK, nbytes)), 0)
        buf, used = self._chunk
        offset = align_up(used, self.alignment)
        self._chunk = (buf, offset + nbytes)
        if array.nbytes:
            buf.write(array, offset=offset)
        self.static_bytes += array.nbytes
        return buf, offset

    def write(self, tensor, host):
        tensor.buf.write(np.ascontiguousarray(host, dtype=tensor.dtype), offset=tensor.offset)

    def read(self, tensor, host):
        if host.flags.c_contiguous and host.dtype == tensor.dtype:
            tensor.buf.read_into(host, size=tensor.nbytes, offset=tensor.offset)
        else:
            host[...] = np.frombuffer(tensor.buf.read(size=tensor.nbytes, offset=tensor.offset),
                                      tensor.dtype).reshape(tensor.shape)

    # -- execution ------------------------------------------------------------------
    def _steps(self, executors):
        """The subgraph as one flat list of calls; checks what GL would only flag in ctx.error."""
        steps = []
        for e in executors:
            for stage in e.bound:
                for d in stage:
                    for _, binding, offset, size in d.binds:
                        if offset % self.alignment or size <= 0:
                            raise MixnnError(f"gl: node '{e.node.name}' ({e.node.op}) binds {size} B at offset "
                                             f"{offset} to SSBO {binding}; offsets must be multiples of {self.alignment}")
                steps.extend(stage)
                steps.append(self.barrier)
        error = self.ctx.error
        if error != "GL_NO_ERROR":
            raise MixnnError(f"gl: {error} while preparing {', '.join(e.node.name for e in executors[:5])}")
        return steps

    def compile(self, executors):
        steps = self._steps(executors)
        if debug_level() >= 2:
            return functools.partial(self._run_traced, executors)
        if steps:
            steps[-1] = functools.partial(self.ctx.memory_barrier, self._final_bits)
        finish = self.ctx.finish

        def run_all():
            for step in steps:
                step()
            finish()
        return run_all

    def _run_traced(self, executors):
        for e, dt in zip(executors, self.time_each(executors)):
            print(f"mixnn gl: {e.node.op:<20} {e.node.name:<40} {dt * 1e3:8.3f} ms", file=sys.stderr)

    def time_each(self, executors):
        """Seconds per executor: GL timer queries on a real GPU; wall time around a finish on a
        software driver, which runs each dispatch synchronously (its queries measure nothing),
        or where timer queries are missing (GLES without EXT_disjoint_timer_query)."""
        self.ctx.memory_barrier(self._final_bits)
        queries = None
        if not self.glc.software:
            try:
                queries = [self.ctx.query(time=True) for _ in executors]
            except Exception:  # moderngl.Error: no timer queries here
                queries = None
        if queries is None:
            times = []
            for e in executors:
                t0 = time.perf_counter()
                e.run()
                self.ctx.finish()
                times.append(time.perf_counter() - t0)
        else:
            for q, e in zip(queries, executors):
                with q:
                    e.run()
            times = [q.elapsed * 1e-9 for q in queries]
        self.ctx.memory_barrier(self._final_bits)
        self.ctx.finish()
        return times

    def synchronize(self):
        self.ctx.finish()


from . import exec_elementwise, exec_conv, exec_matmul, exec_pool, exec_reduce, exec_layout  # noqa: E402,F401
