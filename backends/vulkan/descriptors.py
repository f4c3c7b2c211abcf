"""Descriptor sets: one per dispatch, written once at bind time with each operand's buffer at
its tensor's byte offset (offsets are multiples of minStorageBufferOffsetAlignment: the planner
aligns arena offsets to `backend.alignment`, the static pool aligns its own).

Core Vulkan 1.1 has no push descriptors, so sets come from pools: pools of POOL_SETS sets are
created as needed and a set returns to its pool when its dispatch (its executor) is dropped.
"""
from __future__ import annotations

import weakref

from engine.errors import MixnnError

from .device import check, vk

POOL_SETS = 512
_ALLOCATORS: dict = {}


def allocator(dev) -> "DescriptorAllocator":
    if dev.index not in _ALLOCATORS:
        _ALLOCATORS[dev.index] = DescriptorAllocator(dev)
    return _ALLOCATORS[dev.index]


class DescriptorSet:
    """A set bound to (buffer, offset, range) per binding; returned to its pool when unreferenced."""

    def __init__(self, handle, free):
        self.handle = handle
        self._free = weakref.finalize(self, free, handle)
        self._free.atexit = False


class DescriptorAllocator:
    def __init__(self, dev):
        self.dev, self.v = dev, vk()
        self.pools = []

    def _new_pool(self):
        v = self.v
        sizes = v.VkDescriptorPoolSize(type=v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount=POOL_SETS * 8)
        info = v.VkDescriptorPoolCreateInfo(flags=v.VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT,
                                            maxSets=POOL_SETS, pPoolSizes=[sizes])
        self.pools.append(v.vkCreateDescriptorPool(self.dev.handle, info, None))

    def _allocate(self, set_layout):
        v, ffi = self.v, self.v.ffi
        layouts = ffi.new("VkDescriptorSetLayout[1]", [set_layout])
        info = ffi.new("VkDescriptorSetAllocateInfo*")
        info.sType = v.VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
        info.descriptorSetCount, info.pSetLayouts = 1, layouts
        out = ffi.new("VkDescriptorSet[1]")
        for pool in reversed(self.pools):  # the newest pool is the likeliest to have room
            info.descriptorPool = pool
            if v.lib.vkAllocateDescriptorSets(self.dev.handle, info, out) == 0:
                return pool, out
        self._new_pool()
        info.descriptorPool = self.pools[-1]
        res = v.lib.vkAllocateDescriptorSets(self.dev.handle, info, out)
        if res != 0:
            raise MixnnError(f"vulkan: vkAllocateDescriptorSets failed with VkResult {res}")
        return self.pools[-1], out

    def write(self, pipeline, bindings) -> DescriptorSet:
        """A set for `pipeline` with binding i = bindings[i] = (Buffer, byte offset, byte range)."""
        if len(bindings) != pipeline.nbind:
            raise MixnnError(f"vulkan: pipeline {pipeline.key} has {pipeline.nbind} bindings, "
                             f"{len(bindings)} given")
        v, ffi = self.v, self.v.ffi
        with self.dev.lock:  # pools are externally synchronised
            pool, out = self._allocate(pipeline.set_layout)
        n = len(bindings)
        infos = ffi.new("VkDescriptorBufferInfo[]", n)
        writes = ffi.new("VkWriteDescriptorSet[]", n)
        for i, (buf, offset, nbytes) in enumerate(bindings):
            infos[i].buffer, infos[i].offset, infos[i].range = buf.handle, offset, nbytes
            w = writes[i]
            w.sType = v.VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
            w.dstSet, w.dstBinding, w.descriptorCount = out[0], i, 1
            w.descriptorType, w.pBufferInfo = v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, infos + i
        v.lib.vkUpdateDescriptorSets(self.dev.handle, n, writes, 0, ffi.NULL)
        return DescriptorSet(out, lambda sets: self._free(pool, sets))

    def _free(self, pool, sets):
        with self.dev.lock:
            check(self.v.lib.vkFreeDescriptorSets(self.dev.handle, pool, 1, sets), "vkFreeDescriptorSets")
