"""OpenCL programs: built once per process, device binaries persisted on disk.

pyopencl skips its own binary cache on PoCL and NVIDIA, so the backend keeps one:
`<cache_dir>/<key>.bin`, key = sha256(platform, device, driver version, options, source).
PoCL JIT-compiles a kernel once per local size at its first launch and keeps the result in the
program binary, so a program is saved again after a warm-up run (`persist`) when it grew.
`stats` counts programs built from source ("misses") and loaded from disk ("hits"): a second
process with the same cache_dir builds nothing.
"""
import hashlib
import importlib.resources
import os

from engine.errors import KernelCompileError

OPTIONS = "-cl-std=CL1.2"
stats = {"hits": 0, "misses": 0}
_PROGRAMS = {}  # (id(context), key) -> Program: one build per process and context
_SOURCES = {}
_SAVED = {}  # cache file -> hash of the binary last written or read there


def source(*files, header=""):
    """The text of shaders/opencl/<files>, concatenated after an optional generated header."""
    parts = [header]
    for f in files:
        if f not in _SOURCES:
            _SOURCES[f] = (importlib.resources.files("shaders") / "opencl" / f).read_text()
        parts.append(_SOURCES[f])
    return "\n".join(parts)


def default_cache_dir(config):
    base = getattr(config, "cache_dir", None)
    if base:
        return os.path.join(base, "opencl")
    return os.path.join(os.path.expanduser("~"), ".cache", "mixnn", "opencl")


class Compiler:
    def __init__(self, ctx, device, cache_dir):
        self.ctx, self.device, self.cache_dir = ctx, device, cache_dir
        self.ident = "|".join([device.platform.name, device.platform.version, device.name,
                               device.driver_version])

    def program(self, src, what, options=""):
        """The built program for this source; `what` names it in errors."""
        import pyopencl as cl
        opts = f"{OPTIONS} {options}".strip()
        key = hashlib.sha256(f"{self.ident}\n{opts}\n{src}".encode()).hexdigest()[:32]
        memo = (id(self.ctx), key)
        if memo in _PROGRAMS:
            return _PROGRAMS[memo]
        prg = self._load(key, opts)
        if prg is None:
            prg = cl.Program(self.ctx, src)
            try:
                prg.build(options=opts, devices=[self.device])
            except cl.Error as e:
                log = _build_log(prg, self.device) or str(e)
                raise KernelCompileError(f"opencl: building {what} ({opts}) for {self.device.name} "
                                         f"failed", build_log=log) from None
            stats["misses"] += 1
            self._save(key, prg)
        _PROGRAMS[memo] = prg
        prg.mixnn_key = key
        return prg

    def persist(self, programs):
        """Save again the binaries that grew since they were written (PoCL's JIT variants)."""
        for prg in programs:
            self._save(prg.mixnn_key, prg)

    def _path(self, key):
        return os.path.join(self.cache_dir, key + ".bin")

    def _load(self, key, opts):
        import pyopencl as cl
        try:
            with open(self._path(key), "rb") as f:
                blob = f.read()
        except OSError:
            return None
        try:
            prg = cl.Program(self.ctx, [self.device], [blob])
            prg.build(options=opts, devices=[self.device])
        except cl.Error:
            return None  # stale or foreign binary: rebuild from source
        stats["hits"] += 1
        _SAVED[self._path(key)] = hashlib.sha256(blob).digest()
        return prg

    def _save(self, key, prg):
        import pyopencl as cl
        try:
            blob = bytes(prg.get_info(cl.program_info.BINARIES)[0])
        except cl.Error:
            return
        digest = hashlib.sha256(blob).digest()
        if not blob or _SAVED.get(self._path(key)) == digest:
            return
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = f"{self._path(key)}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(blob)
            os.replace(tmp, self._path(key))
            _SAVED[self._path(key)] = digest
        except OSError:
            pass  # a read-only cache only costs time


def _build_log(prg, device):
    import pyopencl as cl
    try:
        return prg.get_build_info(device, cl.program_build_info.LOG)
    except cl.Error:
        return ""
