"""The Vulkan device: instance, physical device, logical device with one compute queue, buffers,
and host <-> device copies.

One Device per physical-device index, shared by every session of the process (creating a
VkDevice costs tens of ms, and pipelines are per device). Every GPU call is synchronous (submit,
then wait on a fence), so sessions can share the queue; a lock serialises submits across threads.

Memory: where the driver offers memory that is both device-local and host-visible on an
integrated or CPU device (lavapipe has only that), buffers are mapped once and written and read
with memcpy. On a discrete GPU the arena is device-local and copies go through a host-visible
staging buffer with vkCmdCopyBuffer; MIXNN_VULKAN_STAGING=1 forces that path (to test it here).
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from engine.errors import BackendUnavailable, MixnnError

API_VERSION = (1, 1, 0)
_INSTANCE = None
_DEVICES: dict = {}
_LOCK = threading.Lock()


def vk():
    """The `vulkan` binding, imported on first use: a missing one is a reason, not an ImportError."""
    try:
        import vulkan
    except (ImportError, OSError) as e:  # OSError: the binding loads libvulkan.so.1 at import
        raise BackendUnavailable(f"the vulkan binding cannot be loaded: {type(e).__name__}: {e}") from None
    return vulkan


def check(result, what):
    """Raw vk.lib calls return a VkResult: anything but VK_SUCCESS is an error naming the call."""
    if result != 0:
        raise MixnnError(f"vulkan: {what} failed with VkResult {result}")


def failure(e):
    """The binding raises exception classes with empty messages: the class name is the message."""
    return f"{type(e).__name__}{': ' + str(e) if str(e) else ''}"


def instance():
    global _INSTANCE
    if _INSTANCE is None:
        v = vk()
        app = v.VkApplicationInfo(pApplicationName="mixnn", applicationVersion=1, pEngineName="mixnn",
                                  engineVersion=1, apiVersion=v.VK_MAKE_VERSION(*API_VERSION))
        info = v.VkInstanceCreateInfo(pApplicationInfo=app)
        try:
            _INSTANCE = v.vkCreateInstance(info, None)
        except Exception as e:  # no loader ICD, no driver: the binding's error classes
            raise BackendUnavailable(f"vkCreateInstance failed ({failure(e)}): no Vulkan driver") from None
    return _INSTANCE


def physical_devices():
    v = vk()
    try:
        return v.vkEnumeratePhysicalDevices(instance())
    except BackendUnavailable:
        raise
    except Exception as e:
        raise BackendUnavailable(f"vkEnumeratePhysicalDevices failed: {failure(e)}") from None


def get_device(index) -> "Device":
    with _LOCK:
        if index not in _DEVICES:
            _DEVICES[index] = Device(index)
        return _DEVICES[index]


class Buffer:
    """A VkBuffer with its own memory; `host` is a uint8 numpy view of it when it is mapped.
    Freed when unreferenced (the plan, its views and the arena pool hold it) or by `free()`."""

    def __init__(self, dev: "Device", nbytes: int, mapped: bool):
        v = vk()
        self.size = int(nbytes)
        info = v.VkBufferCreateInfo(size=self.size, usage=dev.buffer_usage,
                                    sharingMode=v.VK_SHARING_MODE_EXCLUSIVE)
        self.handle = v.vkCreateBuffer(dev.handle, info, None)
        req = v.vkGetBufferMemoryRequirements(dev.handle, self.handle)
        mtype = dev.memory_type(req.memoryTypeBits, mapped)
        alloc = v.VkMemoryAllocateInfo(allocationSize=req.size, memoryTypeIndex=mtype)
        try:
            self.memory = v.vkAllocateMemory(dev.handle, alloc, None)
        except Exception as e:
            v.vkDestroyBuffer(dev.handle, self.handle, None)
            raise MixnnError(f"vulkan: allocating {self.size} bytes failed: {failure(e)}") from None
        v.vkBindBufferMemory(dev.handle, self.handle, self.memory, 0)
        self.host = None
        if mapped:
            # the real size: with VK_WHOLE_SIZE the binding's ffi.buffer(ptr, -1) fails after mapping
            self.host = np.frombuffer(v.vkMapMemory(dev.handle, self.memory, 0, self.size, 0), np.uint8)
        self.free = weakref.finalize(self, _destroy, dev.handle, self.handle, self.memory)
        self.free.atexit = False  # the process tears the device down at exit anyway


def _destroy(dev, handle, memory):
    v = vk()
    v.vkDestroyBuffer(dev, handle, None)
    v.vkFreeMemory(dev, memory, None)  # implicitly unmaps


class Device:
    def __init__(self, index):
        v = vk()
        phys = physical_devices()
        if not 0 <= index < len(phys):
            raise BackendUnavailable(f"vulkan: no device {index}; this machine has {len(phys)}")
        self.index, self.physical = index, phys[index]
        self.props = v.vkGetPhysicalDeviceProperties(self.physical)
        if self.props.apiVersion < v.VK_MAKE_VERSION(*API_VERSION):
            raise BackendUnavailable(f"vulkan: {self.props.deviceName} supports only Vulkan "
                                     f"{self.version(self.props.apiVersion)}, 1.1 is needed")
        families = v.vkGetPhysicalDeviceQueueFamilyProperties(self.physical)
        compute = [i for i, f in enumerate(families) if f.queueFlags & v.VK_QUEUE_COMPUTE_BIT]
        if not compute:
            raise BackendUnavailable(f"vulkan: {self.props.deviceName} has no compute queue")
        self.family = compute[0]
        self.timestamp_bits = families[self.family].timestampValidBits
        priorities = [1.0]
        queue_info = v.VkDeviceQueueCreateInfo(queueFamilyIndex=self.family, queueCount=1,
                                               pQueuePriorities=priorities)
        device_info = v.VkDeviceCreateInfo(pQueueCreateInfos=[queue_info])
        self.handle = v.vkCreateDevice(self.physical, device_info, None)
        self.queue = v.vkGetDeviceQueue(self.handle, self.family, 0)
        self.lock = threading.RLock()  # finalizers may free command buffers while recording
        self.buffer_usage = (v.VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | v.VK_BUFFER_USAGE_TRANSFER_SRC_BIT
                             | v.VK_BUFFER_USAGE_TRANSFER_DST_BIT)
        self._pick_memory(v)
        pool_info = v.VkCommandPoolCreateInfo(
            flags=v.VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, queueFamilyIndex=self.family)
        self.command_pool = v.vkCreateCommandPool(self.handle, pool_info, None)
        limits = self.props.limits
        self.alignment = max(int(limits.minStorageBufferOffsetAlignment), 4)
        self.max_range = int(limits.maxStorageBufferRange)
        self.max_groups = int(limits.maxComputeWorkGroupCount[0])
        self.timestamp_period = float(limits.timestampPeriod)
        self.can_time = bool(limits.timestampComputeAndGraphics) and self.timestamp_bits > 0
        self.name, self.driver = self.props.deviceName, self._driver_info(v)
        self.uuid = bytes(self.props.pipelineCacheUUID).hex()
        from .commands import Transfer
        self.transfer = Transfer(self)

    def _driver_info(self, v):
        """'Mesa 22.3.6 (LLVM 15.0.6)', the NVIDIA driver version...: core driver properties
        from Vulkan 1.2; older devices only have an opaque driverVersion."""
        if self.props.apiVersion < v.VK_MAKE_VERSION(1, 2, 0):
            return f"driver {self.props.driverVersion:#x}"
        ffi = v.ffi
        driver = ffi.new("VkPhysicalDeviceDriverProperties*")
        driver.sType = v.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES
        props = ffi.new("VkPhysicalDeviceProperties2*")
        props.sType, props.pNext = v.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, driver
        v.lib.vkGetPhysicalDeviceProperties2(self.physical, props)
        return ffi.string(driver.driverInfo).decode(errors="replace") or f"driver {self.props.driverVersion:#x}"

    @staticmethod
    def version(packed):
        return f"{packed >> 22}.{(packed >> 12) & 0x3FF}.{packed & 0xFFF}"

    def _pick_memory(self, v):
        mp = v.vkGetPhysicalDeviceMemoryProperties(self.physical)
        self._types = [mp.memoryTypes[i].propertyFlags for i in range(mp.memoryTypeCount)]
        self._local = v.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
        self._visible = v.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | v.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
        self._cached = v.VK_MEMORY_PROPERTY_HOST_CACHED_BIT
        both = self._local | self._visible
        self.software = self.props.deviceType == v.VK_PHYSICAL_DEVICE_TYPE_CPU  # lavapipe, SwiftShader
        shared_memory = self.software or self.props.deviceType == v.VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU
        self.direct = shared_memory and any(t & both == both for t in self._types) \
            and os.environ.get("MIXNN_VULKAN_STAGING", "") in ("", "0")

    def memory_type(self, allowed_bits, mapped) -> int:
        """Shared memory (direct): device-local and host-visible. Staging on a discrete GPU:
        host-visible and cached system memory, not the small, uncached BAR window that is also
        device-local. Anything else: device-local."""
        if self.direct:
            prefs = [self._local | self._visible, self._visible]
        elif mapped:
            prefs = [self._visible | self._cached, self._visible]
        else:
            prefs = [self._local, 0]
        for want in prefs:
            for i, flags in enumerate(self._types):
                if allowed_bits & (1 << i) and flags & want == want:
                    return i
        raise MixnnError(f"vulkan: {self.name} has no host-visible coherent memory for a buffer")

    def buffer(self, nbytes, mapped=False) -> Buffer:
        return Buffer(self, nbytes, mapped or self.direct)

    def describe(self):
        return f"{self.name}, {self.driver} via Vulkan {self.version(self.props.apiVersion)}"
