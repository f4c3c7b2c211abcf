"""The backend plug-in contract: MNN's two-level registry (backends by name, executors by op).

A backend is a class registered with `@register_backend("name")`. It answers, per node and
shapes, whether it runs the node (`supports`), creates one Executor per node at resize, owns
device memory (arena, static pool, host copies), and runs a list of executors as one subgraph.
Nothing in engine/ knows any particular backend.

    @register_backend("opencl")
    class OpenCLBackend(Backend):
        alignment = 128
        @classmethod
        def probe(cls, device): ...           # description, or raise BackendUnavailable(reason)
        def _alloc(self, nbytes): ...         # device buffer
        def view(self, buf, offset, shape, dtype): ...  # a tensor inside a buffer
        def write(self, tensor, host): ...    # host -> device
        def read(self, tensor, host): ...     # device -> host, into a preallocated array

    @OpenCLBackend.op("Relu", "Sigmoid")
    class UnaryCL(Executor): ...
"""
from __future__ import annotations

import importlib
import time
from typing import ClassVar

import numpy as np

from .errors import BackendUnavailable
from .ops import TensorInfo

BACKENDS: dict[str, type["Backend"]] = {}
BROKEN: dict[str, str] = {}  # backend name -> why its module failed to import


def register_backend(name):
    def deco(cls):
        cls.name = name
        if "ops" not in cls.__dict__:
            cls.ops = {}
        BACKENDS[name] = cls
        return cls
    return deco


def _import_builtin(name):
    try:
        importlib.import_module(f"backends.{name}")
    except Exception as e:  # a broken plug-in must not take the others down
        if name == "cpu":
            raise
        BROKEN[name] = f"backends.{name} failed to import: {type(e).__name__}: {e}"


def _load_entry_points():
    try:
        from importlib.metadata import entry_points
        for ep in entry_points(group="mixnn.backends"):
            if ep.name not in BACKENDS:
                ep.load()
    except Exception:  # broken third-party metadata must not break the built-in backends
        pass


def load_backends():
    """Import the built-in backends and any registered through the `mixnn.backends` entry points."""
    import backends
    for name in backends.BUILTIN:
        if name not in BACKENDS and name not in BROKEN:
            _import_builtin(name)
    _load_entry_points()
    return BACKENDS


def parse_device(spec: str):
    """"opencl:1" -> ("opencl", 1); "cpu" -> ("cpu", 0)."""
    name, _, index = str(spec).partition(":")
    if index and not index.isdigit():
        raise BackendUnavailable(f"backend '{spec}': device index must be an integer, as in 'opencl:1'")
    return name, int(index or 0)


def backend_class(name) -> type["Backend"]:
    import backends
    if name in backends.BUILTIN and name not in BACKENDS and name not in BROKEN:
        _import_builtin(name)  # only the backend asked for: its siblings may be slow or broken
    if name not in BACKENDS and name not in BROKEN:
        _load_entry_points()
    if name in BROKEN:
        raise BackendUnavailable(BROKEN[name])
    if name not in BACKENDS:
        raise BackendUnavailable(f"no backend named '{name}'; known: {', '.join(sorted(set(BACKENDS) | set(backends.BUILTIN)))}")
    return BACKENDS[name]


def available_backends() -> dict:
    """{name: description of the device} or {name: "unavailable: <reason>"}."""
    load_backends()
    out = {name: f"unavailable: {why}" for name, why in BROKEN.items()}
    for name, cls in BACKENDS.items():
        try:
            out[name] = cls.probe(0)
        except BackendUnavailable as e:
            out[name] = f"unavailable: {e}"
        except Exception as e:  # a driver that crashes on probing is reported, not fatal
            out[name] = f"unavailable: {type(e).__name__}: {e}"
    return out


def open_backend(spec, config=None) -> "Backend":
    name, index = parse_device(spec)
    cls = backend_class(name)
    # Open first, probe only to explain a failure: some drivers fix settings (e.g. Mesa's shader
    # cache directory, from config.cache_dir) when the process's first context is made.
    try:
        return cls(index, config)
    except BackendUnavailable:
        raise
    except Exception as e:
        cls.probe(index)  # raises BackendUnavailable with the binding's or driver's reason
        raise BackendUnavailable(f"backend '{spec}' failed to open: {type(e).__name__}: {e}") from e


class Executor:
    """Runs one node on one backend for one set of input shapes.

    Created at resize with the shapes/dtypes (and known values) of its inputs and outputs; then
    `bind` gives it its tensors (arena views, static uploads, a scratch area of
    `scratch_bytes()`), after which `run` may be called any number of times.
    An executor whose class sets `alias = True` produces an output that is a reinterpretation of
    input 0's bytes (Reshape...): the planner gives both the same memory and `run` does nothing.
    """
    alias: ClassVar[bool] = False
    aliased = False  # set by the planner when the output really shares input 0's block

    def __init__(self, backend, node, ins: list, outs: list):
        self.backend, self.node, self.ins, self.outs = backend, node, ins, outs

    @classmethod
    def supports(cls, backend, node, ins: list, outs: list):
        """None if this executor runs the node, else a short reason for declining it."""
        return None

    def scratch_bytes(self) -> int:
        return 0

    def bind(self, inputs: list, outputs: list, scratch=None):
        self.inputs, self.outputs, self.scratch = inputs, outputs, scratch

    def run(self):
        raise NotImplementedError


class Backend:
    name: ClassVar[str] = "?"
    ops: ClassVar[dict] = {}
    alignment: ClassVar[int] = 64
    host_tensors: ClassVar[bool] = False  # True when tensors are numpy arrays (CPU-like)

    @classmethod
    def op(cls, *names):
        """Register an executor class for op names on this backend."""
        def deco(exe_cls):
            for n in names:
                cls.ops[n] = exe_cls
            return exe_cls
        return deco

    @classmethod
    def probe(cls, device: int = 0) -> str:
        return cls.name

    def __init__(self, device: int = 0, config=None):
        self.device, self.config = device, config
        self.allocations = 0  # device allocations made through _alloc, ever
        self.live_bytes = 0

    def describe(self) -> str:
        return self.probe(self.device)

    # -- per node -------------------------------------------------------------
    def supports(self, node, ins: list[TensorInfo], outs: list[TensorInfo]):
        exe = self.ops.get(node.op)
        if exe is None:
            return f"no {self.name} kernel for {node.op}"
        return exe.supports(self, node, ins, outs)

    def create(self, node, ins, outs) -> Executor:
        return self.ops[node.op](self, node, ins, outs)

    # -- memory ---------------------------------------------------------------
    def allocate(self, nbytes: int):
        self.allocations += 1
        self.live_bytes += nbytes
        return self._alloc(max(int(nbytes), self.alignment))

    def release(self, buf, nbytes: int):
        self.live_bytes -= nbytes
        self._free(buf)

    def _alloc(self, nbytes):
        raise NotImplementedError

    def _free(self, buf):
        pass

    def view(self, buf, offset: int, shape, dtype):
        raise NotImplementedError

    def held_bytes(self) -> int:
        """Host memory the backend keeps for the session outside pools: repacked weights of a
        host backend (a device backend's are in live_bytes)."""
        return 0

    def upload(self, array: np.ndarray):
        """A constant in the static pool: allocated and written once."""
        array = np.ascontiguousarray(array)
        buf = self.allocate(array.nbytes)
        t = self.view(buf, 0, array.shape, array.dtype)
        self.write(t, array)
        return t

    def write(self, tensor, host: np.ndarray):
        raise NotImplementedError

    def read(self, tensor, host: np.ndarray):
        raise NotImplementedError

    # -- fusion ---------------------------------------------------------------
    def fuse(self, nodes: list, readers: dict, keep: set, infos: dict) -> list:
        """A subgraph's nodes (consecutive in the plan, all on this backend), with chains this
        backend runs as one kernel merged into one node, as onnxruntime's EP-specific fusions
        do (the graph optimizer's fusions are the ones every backend can take). `readers`
        counts the nodes reading each value; values in `keep` (graph outputs) must stay. A
        merged node runs where the chain's last node did. Default: no change."""
        return nodes

    # -- execution ------------------------------------------------------------
    def compile(self, executors: list[Executor]):
        """Turn a subgraph's bound executors into a callable that runs them all and returns
        when the results are complete. GPU backends record command buffers here."""
        def run_all():
            for e in executors:
                e.run()
        return run_all

    def synchronize(self):
        pass

    def time_each(self, executors: list[Executor]) -> list[float]:
        """Seconds per executor (profiling). GPU backends override with device timers."""
        times = []
        for e in executors:
            t0 = time.perf_counter()
            e.run()
            self.synchronize()
            times.append(time.perf_counter() - t0)
        return times

    def close(self):
        pass
