"""The Vulkan backend: SPIR-V compute shaders through the `vulkan` (cffi) binding, Vulkan 1.1 core.

    sess = engine.InferenceSession(model, backend="vulkan:0")   # N-th physical device

Memory: the arena and the static pool (constants packed into 16 MiB chunks) are storage
buffers; on devices where device memory is host-visible (lavapipe, integrated GPUs) they are
mapped and copied with memcpy, elsewhere through a staging buffer grown only at resize (when a
view larger than it is planned). Tensors are bound one descriptor per operand at their byte
offsets, so `alignment` is the device's minStorageBufferOffsetAlignment. A subgraph is recorded
into one command buffer at resize and `compile` returns a callable that submits it and waits on
one fence. Files: device.py (device, buffers), pipelines.py (SPIR-V, pipelines, cache),
descriptors.py, commands.py (recording, barriers, timestamps), kernel.py (executor base),
ops_*.py (executors per op family).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from engine.backend import Backend, register_backend
from engine.errors import BackendUnavailable

from .pipelines import STATS

STATIC_CHUNK = 16 << 20
_PROBED: dict = {}


def _debug():
    try:
        return int(os.environ.get("MIXNN_DEBUG", "0") or 0)
    except ValueError:
        return 0


@register_backend("vulkan")
class VulkanBackend(Backend):
    cache_stats = STATS  # {"hits", "misses"}: pipelines created from / added to the cache_dir keys

    @classmethod
    def probe(cls, device=0):
        if device not in _PROBED:
            from .device import get_device
            try:
                _PROBED[device] = get_device(device).describe()
            except BackendUnavailable as e:
                _PROBED[device] = e
            except Exception as e:  # a driver that fails while opening: a reason, not a crash
                from .device import failure
                _PROBED[device] = BackendUnavailable(f"vulkan device {device} failed to open: {failure(e)}")
        if isinstance(_PROBED[device], Exception):
            raise _PROBED[device]
        return _PROBED[device]

    def __init__(self, device=0, config=None):
        super().__init__(device, config)
        from .descriptors import allocator
        from .device import get_device
        from .pipelines import store
        self.dev = get_device(device)
        self.alignment = self.dev.alignment
        self.pipelines = store(self.dev, getattr(config, "cache_dir", None))
        self.descriptors = allocator(self.dev)
        self.staging = None
        self.static_buf, self.static_used = None, 0
        self._derived = {}
        self.dummy = self.upload(np.zeros(4, np.float32))  # bound where an optional operand is absent
        if _debug() >= 1:
            print(f"mixnn: vulkan:{device} opened: {self.describe()}, "
                  f"{'mapped device memory' if self.dev.direct else 'staging copies'}")

    # -- memory ---------------------------------------------------------------------
    def _alloc(self, nbytes):
        return self.dev.buffer(nbytes)

    def _free(self, buf):
        buf.free()

    def _stage(self, nbytes):
        """The staging buffer, grown (and counted as an allocation) when nbytes exceed it."""
        if self.staging is None or self.staging.size < nbytes:
            self.allocations += 1
            self.staging = self.dev.buffer(max(nbytes, 1 << 16), mapped=True)
        return self.staging

    def view(self, buf, offset, shape, dtype):
        from .kernel import Tensor
        t = Tensor(buf, offset, shape, dtype)
        if not self.dev.direct:
            self._stage(t.nbytes)
        return t

    def upload(self, array):
        """A constant in the static pool: sub-allocated from a chunk, written once."""
        from .kernel import Tensor
        array = np.ascontiguousarray(array)
        need = -(-max(array.nbytes, 4) // self.alignment) * self.alignment
        if self.static_buf is None or self.static_used + need > self.static_buf.size:
            self.static_buf, self.static_used = self.allocate(max(need, STATIC_CHUNK)), 0
        t = Tensor(self.static_buf, self.static_used, array.shape, array.dtype)
        self.static_used += need
        if array.nbytes:
            self.write(t, array)
        return t

    def upload_once(self, array):
        """upload(), shared by equal arrays: what executors derive at resize (BatchNorm's scale,
        Resize's tables) is uploaded once however often the session re-plans."""
        array = np.ascontiguousarray(array)
        key = (array.dtype.str, array.shape, hashlib.sha1(array.tobytes()).hexdigest())
        if key not in self._derived:
            self._derived[key] = self.upload(array)
        return self._derived[key]

    def write(self, tensor, host):
        src = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        n = src.nbytes
        if n == 0:
            return
        if self.dev.direct:
            tensor.buf.host[tensor.offset:tensor.offset + n] = src
            return
        stage = self._stage(n)
        stage.host[:n] = src
        self.dev.transfer.copy(stage, 0, tensor.buf, tensor.offset, n)

    def read(self, tensor, host):
        n = tensor.nbytes
        if n == 0:
            return
        if self.dev.direct:
            mem = tensor.buf.host[tensor.offset:tensor.offset + n]
        else:
            stage = self._stage(n)
            self.dev.transfer.copy(tensor.buf, tensor.offset, stage, 0, n)
            mem = stage.host[:n]
        np.copyto(host, mem.view(tensor.dtype).reshape(host.shape))

    # -- execution ------------------------------------------------------------------
    def compile(self, executors):
        from .commands import record
        self.pipelines.save()
        lists = [e.dispatches for e in executors]
        if not any(lists):
            return lambda: None
        if _debug() >= 2:
            return lambda: self._run_verbose(executors)
        return record(self.dev, lists)

    def _run_verbose(self, executors):
        for e, dt in zip(executors, self.time_each(executors)):
            print(f"mixnn: vulkan {e.node.op} '{e.node.name}' {dt * 1e3:.3f} ms")

    def time_each(self, executors):
        """Device time per executor from timestamp queries, or one submit per executor."""
        from .commands import Timestamps, record, timed
        lists = [e.dispatches for e in executors]
        if not self.dev.can_time:
            return [timed(record(self.dev, [d])) if d else 0.0 for d in lists]
        stamps = Timestamps(self.dev, len(lists))
        try:
            record(self.dev, lists, stamps)()
            return stamps.seconds()
        finally:
            stamps.close()


from . import ops_conv, ops_elementwise, ops_layout, ops_pool, ops_reduce  # noqa: E402,F401
