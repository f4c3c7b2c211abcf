"""Command recording: a subgraph's dispatches in one command buffer, resubmitted on every run.

Barriers come from hazards, not from habit: every dispatch declares the byte ranges it reads
and writes, and a compute->compute barrier (SHADER_WRITE -> SHADER_READ|SHADER_WRITE) is
recorded before a dispatch that reads or writes what an earlier dispatch since the last barrier
wrote (RAW, WAW), or writes what one read (WAR). Independent dispatches (the branches of a
fire module...) then run without a barrier between them. Each command buffer opens with a barrier
from earlier transfers and dispatches (previous submissions) and closes with one towards
transfers and host reads, so copies between submissions see the results.

The hot path is raw `vk.lib` calls on prebuilt structs: one vkQueueSubmit, one fence wait.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import numpy as np

from engine.errors import MixnnError

from .device import check, vk

WAIT_NS = 300 * 10**9  # a submission still running after 5 minutes is a hung device


@dataclass
class Dispatch:
    pipeline: object            # pipelines.Pipeline: handle + layout
    dset: object                # descriptors.DescriptorSet, kept alive by the dispatch
    push: np.ndarray            # push-constant bytes
    groups: tuple               # workgroup counts x, y, z
    reads: list = field(default_factory=list)   # [(id of the Buffer, lo, hi)] in bytes
    writes: list = field(default_factory=list)
    disjoint: object = None     # dispatches with the same tag write disjoint elements (raster regions)


def _overlap(a, b):
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


class Hazards:
    """Ranges read and written since the last barrier."""

    def __init__(self):
        self.reads, self.writes, self.tags = [], [], []

    def conflict(self, d: Dispatch) -> bool:
        for w, tag in zip(self.writes, self.tags):
            if any(_overlap(w, r) for r in d.reads):
                return True
            if (tag is None or tag != d.disjoint) and any(_overlap(w, x) for x in d.writes):
                return True
        return any(_overlap(r, x) for r in self.reads for x in d.writes)

    def add(self, d: Dispatch):
        self.reads += d.reads
        self.writes += d.writes
        self.tags += [d.disjoint] * len(d.writes)

    def clear(self):
        self.reads, self.writes, self.tags = [], [], []


def memory_barrier(src_stage, src_access, dst_stage, dst_access):
    v = vk()
    b = v.ffi.new("VkMemoryBarrier*")
    b.sType = v.VK_STRUCTURE_TYPE_MEMORY_BARRIER
    b.srcAccessMask, b.dstAccessMask = src_access, dst_access
    return (src_stage, dst_stage, b)


class Barriers:
    """The barriers this backend records (prebuilt structs for raw calls), made once per process."""
    _made = None

    @classmethod
    def get(cls):
        if cls._made is None:
            v = vk()
            cs, tr, host = (v.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, v.VK_PIPELINE_STAGE_TRANSFER_BIT,
                            v.VK_PIPELINE_STAGE_HOST_BIT)
            sr, sw = v.VK_ACCESS_SHADER_READ_BIT, v.VK_ACCESS_SHADER_WRITE_BIT
            tr_r, tr_w = v.VK_ACCESS_TRANSFER_READ_BIT, v.VK_ACCESS_TRANSFER_WRITE_BIT
            host_r = v.VK_ACCESS_HOST_READ_BIT
            b = cls()
            b.between = memory_barrier(cs, sw, cs, sr | sw)
            b.enter = memory_barrier(cs | tr, sw | tr_w, cs, sr | sw)
            b.leave = memory_barrier(cs, sw, tr | host, tr_r | tr_w | host_r)
            b.copy_enter = memory_barrier(cs | tr, sw | tr_w, tr, tr_r | tr_w)
            b.copy_leave = memory_barrier(tr, tr_w, cs | host, sr | sw | host_r)
            cls._made = b
        return cls._made


class CommandBuffer:
    """A primary command buffer with its fence and prebuilt submit info; freed when unreferenced."""

    def __init__(self, dev):
        v = vk()
        ffi, lib = v.ffi, v.lib
        self.dev, self.lib = dev, lib
        info = ffi.new("VkCommandBufferAllocateInfo*")
        info.sType = v.VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        info.commandPool, info.level, info.commandBufferCount = dev.command_pool, v.VK_COMMAND_BUFFER_LEVEL_PRIMARY, 1
        self.cmds = ffi.new("VkCommandBuffer[1]")
        with dev.lock:
            check(lib.vkAllocateCommandBuffers(dev.handle, info, self.cmds), "vkAllocateCommandBuffers")
        self.cmd = self.cmds[0]
        self.fence = v.vkCreateFence(dev.handle, v.VkFenceCreateInfo(), None)
        self.fences = ffi.new("VkFence[1]", [self.fence])
        self.submit_info = ffi.new("VkSubmitInfo*")
        self.submit_info.sType = v.VK_STRUCTURE_TYPE_SUBMIT_INFO
        self.submit_info.commandBufferCount, self.submit_info.pCommandBuffers = 1, self.cmds
        self.begin_info = ffi.new("VkCommandBufferBeginInfo*")
        self.begin_info.sType = v.VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        self.bind_point, self.stage = v.VK_PIPELINE_BIND_POINT_COMPUTE, v.VK_SHADER_STAGE_COMPUTE_BIT
        self.ffi, self.null = ffi, ffi.NULL
        self._free = weakref.finalize(self, _free_commands, dev, self.cmds, self.fence)
        self._free.atexit = False

    def begin(self):
        check(self.lib.vkBeginCommandBuffer(self.cmd, self.begin_info), "vkBeginCommandBuffer")

    def end(self):
        check(self.lib.vkEndCommandBuffer(self.cmd), "vkEndCommandBuffer")

    def barrier(self, b):
        src, dst, ptr = b
        self.lib.vkCmdPipelineBarrier(self.cmd, src, dst, 0, 1, ptr, 0, self.null, 0, self.null)

    def dispatch(self, d: Dispatch):
        lib, cmd, layout = self.lib, self.cmd, d.pipeline.layout
        lib.vkCmdBindPipeline(cmd, self.bind_point, d.pipeline.handle)
        lib.vkCmdBindDescriptorSets(cmd, self.bind_point, layout, 0, 1, d.dset.handle, 0, self.null)
        if d.push.nbytes:
            lib.vkCmdPushConstants(cmd, layout, self.stage, 0, d.push.nbytes, self.ffi.from_buffer(d.push))
        lib.vkCmdDispatch(cmd, *d.groups)

    def __call__(self):
        lib, dev = self.lib, self.dev
        with dev.lock:
            check(lib.vkQueueSubmit(dev.queue, 1, self.submit_info, self.fence), "vkQueueSubmit")
            res = lib.vkWaitForFences(dev.handle, 1, self.fences, 1, WAIT_NS)
            lib.vkResetFences(dev.handle, 1, self.fences)
        if res != 0:
            raise MixnnError(f"vulkan: waiting for {dev.name} failed with VkResult {res} "
                             f"({'timeout: the device hangs' if res == 2 else 'device lost'})")


def _free_commands(dev, cmds, fence):
    v = vk()
    with dev.lock:
        v.lib.vkFreeCommandBuffers(dev.handle, dev.command_pool, 1, cmds)
    v.vkDestroyFence(dev.handle, fence, None)


def record(dev, dispatch_lists, stamps=None) -> CommandBuffer:
    """One command buffer running the executors' dispatch lists in order. With `stamps` (a
    query pool), executors are serialised and a timestamp is written before the first and
    after each one."""
    cb, bars = CommandBuffer(dev), Barriers.get()
    hazards = Hazards()
    with dev.lock:
        cb.begin()
        cb.barrier(bars.enter)
        if stamps is not None:
            stamps.start(cb)
        for k, dispatches in enumerate(dispatch_lists):
            for d in dispatches:
                if hazards.conflict(d):
                    cb.barrier(bars.between)
                    hazards.clear()
                hazards.add(d)
                cb.dispatch(d)
            if stamps is not None:
                cb.barrier(bars.between)
                hazards.clear()
                stamps.write(cb, k + 1)
        cb.barrier(bars.leave)
        cb.end()
    return cb


class Timestamps:
    """A timestamp query pool: n + 1 stamps around n executors."""

    def __init__(self, dev, n):
        v = vk()
        self.dev, self.n, self.v = dev, n, v
        self.pool = v.vkCreateQueryPool(dev.handle, v.VkQueryPoolCreateInfo(
            queryType=v.VK_QUERY_TYPE_TIMESTAMP, queryCount=n + 1), None)

    def start(self, cb):
        cb.lib.vkCmdResetQueryPool(cb.cmd, self.pool, 0, self.n + 1)
        self.write(cb, 0)

    def write(self, cb, k):
        cb.lib.vkCmdWriteTimestamp(cb.cmd, self.v.VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, self.pool, k)

    def seconds(self) -> list:
        v, ffi = self.v, self.v.ffi
        data = np.zeros(self.n + 1, np.uint64)
        check(v.lib.vkGetQueryPoolResults(self.dev.handle, self.pool, 0, self.n + 1, data.nbytes,
                                          ffi.from_buffer(data), 8,
                                          v.VK_QUERY_RESULT_64_BIT | v.VK_QUERY_RESULT_WAIT_BIT),
              "vkGetQueryPoolResults")
        mask = np.uint64((1 << self.dev.timestamp_bits) - 1) if self.dev.timestamp_bits < 64 else ~np.uint64(0)
        ticks = np.diff((data & mask).astype(np.float64))
        return list(np.maximum(ticks, 0) * self.dev.timestamp_period * 1e-9)

    def close(self):
        self.v.vkDestroyQueryPool(self.dev.handle, self.pool, None)


class Transfer:
    """Copies between buffers in a reused one-time command buffer (staging <-> device-local)."""

    def __init__(self, dev):
        v = vk()
        self.dev, self.cb = dev, CommandBuffer(dev)
        self.region = v.ffi.new("VkBufferCopy*")
        self.begin_once = v.ffi.new("VkCommandBufferBeginInfo*")
        self.begin_once.sType = v.VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        self.begin_once.flags = v.VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT
        self.lib = v.lib

    def copy(self, src, src_offset, dst, dst_offset, nbytes):
        cb, bars, r = self.cb, Barriers.get(), self.region
        r.srcOffset, r.dstOffset, r.size = src_offset, dst_offset, nbytes
        with self.dev.lock:
            check(self.lib.vkBeginCommandBuffer(cb.cmd, self.begin_once), "vkBeginCommandBuffer")
            cb.barrier(bars.copy_enter)
            self.lib.vkCmdCopyBuffer(cb.cmd, src.handle, dst.handle, 1, r)
            cb.barrier(bars.copy_leave)
            cb.end()
            cb()


def timed(fn):
    """Seconds one call of fn takes (the fallback profiler when the queue has no timestamps)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
