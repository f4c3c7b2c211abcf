"""What every GL executor is made of: tensors (a buffer range), dispatches, and the executor base.

An executor builds, at bind, a list of stages; each stage is a list of dispatches that do not
depend on one another (the regions of a Concat...). The backend puts a shader-storage barrier
between stages and between executors, so `run` and the compiled subgraph only replay them.
"""
from __future__ import annotations

import itertools

import numpy as np

from engine.backend import Executor

MAX_GROUPS = 65535  # the minimum GL guarantees per dimension of a dispatch
LOCAL = 128         # invocations per workgroup of 1-D kernels: the GLES 3.1 minimum maximum


class GLTensor:
    """A tensor: `nbytes` at byte `offset` of a moderngl buffer (arena or static pool).

    A constant starts with no buffer (`pending` holds the host array and the backend's static
    pool): it reaches the device when a dispatch first binds it, so constants that executors
    only read on the host (weights they repack, shape inputs) never take device memory."""
    __slots__ = ("buf", "offset", "shape", "dtype", "nbytes", "pending")

    def __init__(self, buf, offset, shape, dtype, pending=None):
        self.buf, self.offset, self.pending = buf, int(offset), pending
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize

    def materialize(self):
        if self.buf is None:
            array, pool = self.pending
            self.buf, self.offset = pool(array)
            self.pending = None
        return self

    def __repr__(self):
        return f"GLTensor({self.shape}, {self.dtype}, +{self.offset})"


def grid(n: int, local: int = LOCAL) -> tuple:
    """Workgroup counts covering n invocations; shaders index them with flat_id()."""
    groups = max(1, -(-int(n) // local))
    if groups <= MAX_GROUPS:
        return (groups, 1, 1)
    return (MAX_GROUPS, -(-groups // MAX_GROUPS), 1)


class Dispatch:
    """One compute dispatch: bind tensors to SSBO bindings, set uniforms if needed, run."""
    __slots__ = ("prog", "groups", "binds", "uniforms", "serial")
    _serials = itertools.count()

    def __init__(self, prog, groups, tensors: list, uniforms: dict):
        self.prog, self.groups = prog, tuple(int(g) for g in groups)
        self.serial = next(self._serials)  # names the owner of the program's uniforms
        self.binds = [(t.materialize().buf, k, t.offset, t.nbytes) for k, t in enumerate(tensors) if t is not None]
        self.uniforms = prog.pack(uniforms)

    def __call__(self):
        prog = self.prog
        if prog.owner != self.serial:
            for u, blob in self.uniforms:
                u.write(blob)
            prog.owner = self.serial
        for buf, binding, offset, size in self.binds:
            buf.bind_to_storage_buffer(binding, offset=offset, size=size)
        prog.cs.run(*self.groups)


class GLExecutor(Executor):
    """Base of the GL executors: subclasses implement `stages()` (called once, at bind)."""

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.bound = [s for s in self.stages() if s]  # non-empty stages, replayed by run()

    def stages(self) -> list:
        raise NotImplementedError

    def program(self, name, defines=None):
        return self.backend.programs.get(name, defines)

    def run(self):
        barrier = self.backend.barrier
        for stage in self.bound:
            for d in stage:
                d()
            barrier()


def unsupported_dtype(ins, outs, positions=None):
    """A reason to decline unless the data tensors (inputs at `positions`, all outputs) are
    non-empty float32; None when they are."""
    chosen = [ins[k] for k in positions] if positions is not None else ins
    for t in [*chosen, *outs]:
        if t is None:
            continue
        if t.dtype != np.float32:
            return f"dtype {t.dtype} (gl kernels are float32)"
        if int(np.prod(t.shape)) == 0:
            return "empty tensor"
    return None
