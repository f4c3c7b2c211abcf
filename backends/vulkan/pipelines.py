"""Shaders and compute pipelines: SPIR-V from the `shaders` package, one pipeline per (device,
shader, specialization constants) per process, and a VkPipelineCache persisted under cache_dir.

Every shader binds N storage buffers (set 0, bindings 0..N-1: the operands, each at its tensor's
offset) and reads at most 128 bytes of push constants, so one pipeline layout per N serves all.
The cache file is keyed by the device's pipelineCacheUUID and driver version. Drivers differ in
what they keep (lavapipe stores only a header and relies on Mesa's own disk cache), so the
counter is ours: the keys of every pipeline ever created with this cache_dir are stored beside
the blob, and creating a pipeline whose key is there counts as a cache hit, else a miss.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import os
from dataclasses import dataclass

import numpy as np

from engine.errors import KernelCompileError

from .device import check, failure, vk

PUSH_BYTES = 128
STATS = {"hits": 0, "misses": 0, "reused": 0}  # VulkanBackend.cache_stats
_STORES: dict = {}


@dataclass
class Pipeline:
    handle: object
    layout: object       # VkPipelineLayout
    set_layout: object   # VkDescriptorSetLayout
    nbind: int
    key: str


def spirv(name) -> bytes:
    try:
        return importlib.resources.files("shaders").joinpath("vulkan").joinpath(f"{name}.spv").read_bytes()
    except (FileNotFoundError, OSError) as e:
        raise KernelCompileError(f"vulkan: shader '{name}': shaders/vulkan/{name}.spv cannot be read "
                                 f"({e}); run shaders/vulkan/compile.sh") from None


def store(dev, cache_dir) -> "PipelineStore":
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "mixnn", "vulkan")
    key = (dev.index, os.path.abspath(cache_dir))
    if key not in _STORES:
        _STORES[key] = PipelineStore(dev, key[1])
    return _STORES[key]


class PipelineStore:
    def __init__(self, dev, cache_dir):
        v = vk()
        self.dev, self.v = dev, v
        self.stem = os.path.join(cache_dir, f"vulkan-{dev.uuid}-{dev.props.driverVersion:x}")
        self.known = set(_read(self.stem + ".keys").decode(errors="replace").split())
        blob = _read(self.stem + ".bin")
        self.cache = self._create_cache(blob) if blob else None
        if self.cache is None:  # no blob, or the driver rejects it (another driver build)
            self.cache = self._create_cache(b"")
        self.modules, self.set_layouts, self.layouts, self.pipelines = {}, {}, {}, {}
        self.dirty = False

    def _create_cache(self, blob):
        v = self.v
        info = v.ffi.new("VkPipelineCacheCreateInfo*")
        info.sType = v.VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
        data = v.ffi.from_buffer(blob) if blob else v.ffi.NULL
        info.initialDataSize, info.pInitialData = len(blob), data
        out = v.ffi.new("VkPipelineCache[1]")
        return out[0] if v.lib.vkCreatePipelineCache(self.dev.handle, info, v.ffi.NULL, out) == 0 else None

    def _module(self, name):
        if name not in self.modules:
            code = spirv(name)
            info = self.v.VkShaderModuleCreateInfo(codeSize=len(code), pCode=code)
            try:
                handle = self.v.vkCreateShaderModule(self.dev.handle, info, None)
            except Exception as e:
                raise KernelCompileError(f"vulkan: shader module '{name}' rejected by {self.dev.name}",
                                         build_log=failure(e)) from None
            self.modules[name] = (handle, hashlib.sha1(code).hexdigest()[:16])
        return self.modules[name]

    def _layout(self, nbind):
        if nbind not in self.layouts:
            v = self.v
            bindings = [v.VkDescriptorSetLayoutBinding(
                binding=i, descriptorType=v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount=1,
                stageFlags=v.VK_SHADER_STAGE_COMPUTE_BIT) for i in range(nbind)]
            set_info = v.VkDescriptorSetLayoutCreateInfo(pBindings=bindings)
            set_layout = v.vkCreateDescriptorSetLayout(self.dev.handle, set_info, None)
            push = v.VkPushConstantRange(stageFlags=v.VK_SHADER_STAGE_COMPUTE_BIT, offset=0, size=PUSH_BYTES)
            layout_info = v.VkPipelineLayoutCreateInfo(pSetLayouts=[set_layout], pPushConstantRanges=[push])
            self.layouts[nbind] = (v.vkCreatePipelineLayout(self.dev.handle, layout_info, None), set_layout)
        return self.layouts[nbind]

    def get(self, name, nbind, spec=()) -> Pipeline:
        """The pipeline of shader `name` with specialization constants spec[i] at constant_id i."""
        module, digest = self._module(name)
        key = f"{name}@{digest}:{nbind}:" + ",".join(repr(s) for s in spec)
        if key in self.pipelines:
            STATS["reused"] += 1
            return self.pipelines[key]
        layout, set_layout = self._layout(nbind)
        handle = self._create(name, module, layout, spec)
        STATS["hits" if key in self.known else "misses"] += 1
        if key not in self.known:
            self.known.add(key)
            self.dirty = True
        self.pipelines[key] = Pipeline(handle, layout, set_layout, nbind, key)
        return self.pipelines[key]

    def _create(self, name, module, layout, spec):
        v = self.v
        ffi = v.ffi
        words = np.array([np.float32(s).view(np.uint32) if isinstance(s, float) else np.uint32(s & 0xFFFFFFFF)
                          for s in spec], np.uint32)
        entries = ffi.new("VkSpecializationMapEntry[]", max(len(spec), 1))
        for i in range(len(spec)):
            entries[i].constantID, entries[i].offset, entries[i].size = i, 4 * i, 4
        spec_info = ffi.new("VkSpecializationInfo*")
        spec_info.mapEntryCount, spec_info.pMapEntries = len(spec), entries
        spec_info.dataSize, spec_info.pData = words.nbytes, ffi.from_buffer(words) if len(spec) else ffi.NULL
        entry = ffi.new("char[]", b"main")
        info = ffi.new("VkComputePipelineCreateInfo*")
        info.sType = v.VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
        info.stage.sType = v.VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
        info.stage.stage, info.stage.module, info.stage.pName = v.VK_SHADER_STAGE_COMPUTE_BIT, module, entry
        info.stage.pSpecializationInfo = spec_info if len(spec) else ffi.NULL
        info.layout = layout
        out = ffi.new("VkPipeline[1]")
        res = v.lib.vkCreateComputePipelines(self.dev.handle, self.cache, 1, info, ffi.NULL, out)
        if res != 0:
            raise KernelCompileError(f"vulkan: compute pipeline '{name}' (specialization {tuple(spec)}) "
                                     f"failed on {self.dev.name}", build_log=f"VkResult {res}")
        return out[0]

    def save(self):
        """Write the driver's cache blob and our key list, if pipelines were created since."""
        if not self.dirty:
            return
        v = self.v
        size = v.ffi.new("size_t*")
        check(v.lib.vkGetPipelineCacheData(self.dev.handle, self.cache, size, v.ffi.NULL), "vkGetPipelineCacheData")
        data = v.ffi.new("char[]", size[0])
        check(v.lib.vkGetPipelineCacheData(self.dev.handle, self.cache, size, data), "vkGetPipelineCacheData")
        try:
            os.makedirs(os.path.dirname(self.stem), exist_ok=True)
            _write(self.stem + ".bin", bytes(v.ffi.buffer(data, size[0])))
            _write(self.stem + ".keys", "\n".join(sorted(self.known)).encode())
            self.dirty = False
        except OSError:
            pass  # a read-only cache dir costs the next process its warm start, nothing else


def _read(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _write(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
