"""The OpenCL backend (pyopencl): OpenCL C 1.2 kernels over one arena buffer per session.

Device "opencl:N" is the N-th device over all platforms. Tensors are a buffer plus a byte
offset (no sub-buffers: their origins must be multiples of the device's base-address
alignment, while kernels take element offsets at any 4-byte position). A subgraph runs as a
flat list of prerecorded launches and one finish(); the queue is in order, so dependent
kernels need no barriers, and it profiles, so time_each reads device times from events.
MIXNN_DEBUG=1 prints the device when opened, MIXNN_DEBUG=2 one line per launch.
"""
import os
import sys

import numpy as np

from engine.backend import Backend, register_backend
from engine.errors import BackendUnavailable

from . import compiler
from .base import program_source
from .tuner import Tuner

_OPEN = {}  # device index -> (context, queue): shared by sessions so programs build once


def _devices():
    try:
        import pyopencl as cl
    except ImportError as e:
        raise BackendUnavailable(f"pyopencl is not installed ({e}); pip install mixnn[opencl]") from None
    try:
        return [d for p in cl.get_platforms() for d in p.get_devices()]
    except cl.Error as e:
        raise BackendUnavailable(f"no OpenCL platform/driver found ({e})") from None


def _describe(dev):
    plat = dev.platform
    vendor = "PoCL" if "PoCL" in plat.version else plat.name
    return f"{dev.name.strip()} ({vendor} {dev.driver_version}) via {' '.join(dev.version.split()[:2])}"


class CLTensor:
    """`shape` of `dtype`, contiguous, at byte `offset` of device buffer `buf`. A constant
    keeps its host array until a kernel first needs it: weights that an executor repacks are
    then never uploaded in their original layout."""
    __slots__ = ("_buf", "offset", "shape", "dtype", "_host", "_backend")

    def __init__(self, buf, offset, shape, dtype, host=None, backend=None):
        self._buf, self.offset, self.shape, self.dtype = buf, int(offset), tuple(shape), np.dtype(dtype)
        self._host, self._backend = host, backend

    @property
    def buf(self):
        if self._buf is None:
            self._buf = self._backend.allocate(max(self._host.nbytes, 4))
            if self._host.nbytes:
                self._backend.cl.enqueue_copy(self._backend.queue, self._buf, self._host)
            self._host = None
        return self._buf

    @property
    def off(self):
        """Offset in elements: what kernels take."""
        return np.int32(self.offset // self.dtype.itemsize)

    @property
    def size(self):
        return int(np.prod(self.shape))


@register_backend("opencl")
class OpenCLBackend(Backend):
    ops = {}
    cache_stats = compiler.stats

    @classmethod
    def probe(cls, device=0):
        devs = _devices()
        if not devs:
            raise BackendUnavailable("no OpenCL device on any platform")
        if not 0 <= device < len(devs):
            names = "; ".join(f"opencl:{k} = {_describe(d)}" for k, d in enumerate(devs))
            raise BackendUnavailable(f"opencl:{device}: there are {len(devs)} device(s): {names}")
        return _describe(devs[device])

    def __init__(self, device=0, config=None):
        super().__init__(device, config)
        import pyopencl as cl
        self.cl = cl
        self.dev = _devices()[device]
        if device not in _OPEN:
            ctx = cl.Context([self.dev])
            queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
            _OPEN[device] = (ctx, queue)
        self.ctx, self.queue = _OPEN[device]
        self.alignment = max(4, self.dev.mem_base_addr_align // 8)  # the value is in bits
        self.compiler = compiler.Compiler(self.ctx, self.dev, compiler.default_cache_dir(config))
        self.tuner = Tuner(self)
        self.packed = {}  # (node name, role) -> (array, tensor): repacked weights, kept across resizes
        self.debug = int(os.environ.get("MIXNN_DEBUG", "0") or 0)
        self.dummy = CLTensor(None, 0, (4,), np.float32, np.zeros(4, np.float32), self)
        if self.debug >= 1:
            print(f"mixnn: opencl:{device} opened: {_describe(self.dev)}, alignment {self.alignment} B",
                  file=sys.stderr)

    def program(self, file, options=""):
        return self.compiler.program(program_source(file), file, options)

    def constant(self, node, role, array, pack):
        """The device copy of `pack(array)` for one input of a node, repacked only when the value
        changes: a resize re-creates executors, and constant folding may recompute the array."""
        key = (node.name, role)
        old = self.packed.get(key, (None, None))[0]
        if not (old is array or (old is not None and old.shape == array.shape and np.array_equal(old, array))):
            self.packed[key] = (array, self.upload(np.ascontiguousarray(pack(array))))
        return self.packed[key][1]

    # -- memory ---------------------------------------------------------------
    def _alloc(self, nbytes):
        return self.cl.Buffer(self.ctx, self.cl.mem_flags.READ_WRITE, int(nbytes))

    def view(self, buf, offset, shape, dtype):
        return CLTensor(buf, offset, shape, dtype)

    def upload(self, array):
        array = np.ascontiguousarray(array)
        return CLTensor(None, 0, array.shape, array.dtype, array, self)

    def write(self, tensor, host):
        host = np.ascontiguousarray(host, dtype=tensor.dtype)
        if host.nbytes:
            self.cl.enqueue_copy(self.queue, tensor.buf, host, dst_offset=tensor.offset)

    def read(self, tensor, host):
        if host.nbytes:
            self.cl.enqueue_copy(self.queue, host, tensor.buf, src_offset=tensor.offset)

    # -- execution ------------------------------------------------------------
    def compile(self, executors):
        self.tuner.apply(executors)
        launches = [launch for e in executors for launch in e.launches]
        programs = {p for e in executors for p in e.programs}
        enqueue, queue, verbose, warm = self.cl.enqueue_nd_range_kernel, self.queue, self.debug >= 2, [False]

        def run_all():
            if verbose:
                self._run_verbose(executors)
            else:
                for k, g, l in launches:
                    enqueue(queue, k, g, l)
                queue.finish()
            if not warm[0]:  # PoCL compiled its per-local-size variants: keep them on disk
                warm[0] = True
                self.compiler.persist(programs)
        return run_all

    def _run_verbose(self, executors):
        for e in executors:
            for k, g, l in e.launches:
                ev = self.cl.enqueue_nd_range_kernel(self.queue, k, g, l)
                ev.wait()
                ms = (ev.profile.end - ev.profile.start) * 1e-6
                print(f"mixnn: opencl {e.node.name} ({e.node.op}) {k.function_name} "
                      f"global {g} local {l}: {ms:.3f} ms", file=sys.stderr)

    def time_each(self, executors):
        events = [[self.cl.enqueue_nd_range_kernel(self.queue, k, g, l) for k, g, l in e.launches]
                  for e in executors]
        self.queue.finish()
        return [sum(ev.profile.end - ev.profile.start for ev in evs) * 1e-9 for evs in events]

    def synchronize(self):
        self.queue.finish()


from . import exec_conv, exec_eltwise, exec_layout, exec_matmul, exec_norm, exec_pool, exec_resize  # noqa: E402,F401
