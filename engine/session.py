"""InferenceSession: the public entry point, shaped like ONNX Runtime's.

    sess = engine.InferenceSession("model.onnx", backend="vulkan", fallback="cpu")
    outs = sess.run(None, {"images": x})

The session owns one instance of each backend it uses and one arena pool per backend. A plan
(placement, executors, memory) is built per set of input shapes and reused until they change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import open_backend, parse_device
from .config import ScheduleConfig
from .errors import InputError, MixnnError
from .memory import ArenaPool
from .ops import TensorInfo
from .plan import Plan
from .scheduler import assign, order_nodes
from .shape_inference import infer_shapes


@dataclass
class NodeArg:
    """What get_inputs()/get_outputs() return (same fields as onnxruntime's NodeArg)."""
    name: str
    shape: list
    type: str
    dtype: np.dtype


def _type_name(dtype):
    names = {"float32": "float", "float64": "double", "bool": "bool", "float16": "float16"}
    dt = np.dtype(dtype) if dtype is not None else None
    return f"tensor({names.get(dt.name, dt.name) if dt is not None else '?'})"


class InferenceSession:
    def __init__(self, model, backend=None, fallback=None, config=None, **options):
        from .model import Model, load
        self.config = ScheduleConfig.build(config, backend=backend, fallback=fallback, **options)
        self.model = model if isinstance(model, Model) else load(model, optimize=self.config.optimize)
        self.graph = self.model.graph
        if self.config.threads:
            from .threads import set_threads
            set_threads(self.config.threads)
        self.primary = parse_device(self.config.backend)[0]
        self.fallback = parse_device(self.config.fallback)[0]
        names = {self.config.backend, self.config.fallback, "cpu"} | set(self.config.placement.values())
        self.backends = {parse_device(s)[0]: open_backend(s, self.config) for s in sorted(names)}
        self.pools = {name: ArenaPool(b) for name, b in self.backends.items()}
        self._statics: dict = {}
        self._plan: Plan | None = None
        self._shapes = None
        self.replans = 0
        self._last_alloc = {name: 0 for name in self.backends}
        self._last_feed = None
        self._evaluate = self.backends["cpu"].evaluate

    # -- description -----------------------------------------------------------------
    def _args(self, names):
        out = []
        for n in names:
            v = self.graph.value(n)
            shape = [d if d is not None else "?" for d in v.shape] if v.shape is not None else None
            out.append(NodeArg(n, shape, _type_name(v.dtype), v.dtype))
        return out

    def get_inputs(self):
        return self._args(self.graph.inputs)

    def get_outputs(self):
        return self._args(self.graph.outputs)

    def get_providers(self):
        return list(self.backends)

    # -- feeding ---------------------------------------------------------------------
    def _check_feed(self, feed) -> dict:
        if not isinstance(feed, dict):
            raise InputError(f"model '{self.graph.name}': the feed must be a dict of input name -> array, "
                             f"not {type(feed).__name__}")
        expected = self.graph.inputs
        unknown = [k for k in feed if k not in expected]
        if unknown:
            raise InputError(f"model '{self.graph.name}': unknown input(s) {unknown}; the inputs are {expected}")
        missing = [k for k in expected if k not in feed]
        if missing:
            raise InputError(f"model '{self.graph.name}': missing input(s) {missing}")
        out, symbols = {}, {}
        for name in expected:
            v = self.graph.value(name)
            arr = feed[name]
            if not isinstance(arr, np.ndarray):
                try:
                    arr = np.asarray(arr)
                except Exception as e:
                    raise InputError(f"input '{name}': cannot be read as an array: {e}") from None
            if v.dtype is not None and arr.dtype != v.dtype:
                raise InputError(f"model '{self.graph.name}', input '{name}': dtype {arr.dtype}, "
                                 f"expected {v.dtype}")
            if v.shape is not None:
                if arr.ndim != len(v.shape):
                    raise InputError(f"model '{self.graph.name}', input '{name}': rank {arr.ndim} "
                                     f"(shape {arr.shape}), expected rank {len(v.shape)} {tuple(v.shape)}")
                for axis, (want, got) in enumerate(zip(v.shape, arr.shape)):
                    if isinstance(want, int) and want != got:
                        raise InputError(f"model '{self.graph.name}', input '{name}': dim {axis} is {got}, "
                                         f"expected {want} (shape {arr.shape} vs {tuple(v.shape)})")
                    if isinstance(want, str) and symbols.setdefault(want, (got, name))[0] != got:
                        raise InputError(f"model '{self.graph.name}', input '{name}': dim {axis} '{want}' is "
                                         f"{got}, but input '{symbols[want][1]}' has it {symbols[want][0]}")
            if arr.dtype.kind == "O":
                raise InputError(f"input '{name}': object arrays are not supported")
            out[name] = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)  # keeps 0-d as 0-d
        return out

    # -- planning --------------------------------------------------------------------
    def resize(self, shapes: dict):
        """Plan for these input shapes: {name: shape}. run() calls it when shapes change."""
        feed = {}
        for name in self.graph.inputs:
            if name not in shapes:
                raise InputError(f"resize: missing shape of input '{name}'")
            dtype = self.graph.value(name).dtype or np.float32
            feed[name] = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), tuple(shapes[name]),
                                                         (0,) * len(shapes[name]))
        self._resize(self._check_feed(feed))

    def _resize(self, feed):
        shapes = {k: (a.shape, a.dtype) for k, a in feed.items()}
        if shapes == self._shapes and self._plan is not None:
            return
        infos = {k: TensorInfo(tuple(a.shape), a.dtype) for k, a in feed.items()}
        infos = infer_shapes(self.graph, infos, self._evaluate)
        if self.config.mode == "auto":
            from .autotune import choose
            placement = choose(self, infos, feed)
        else:
            placement = assign(self.graph, infos, self.backends, self.config, self.primary, self.fallback)
        order = order_nodes(self.graph, placement)
        self._plan = None  # drop the old plan's views before re-planning
        self._plan = Plan(self.graph, infos, placement, order, self.backends, self.pools,
                          self._statics, self._evaluate)
        self._shapes = shapes
        self.replans += 1

    def run(self, output_names, feed, run_options=None):
        feed = self._check_feed(feed)
        try:
            self._resize(feed)
            before = {n: b.allocations for n, b in self.backends.items()}
            outs = self._plan.run(feed)
        except MixnnError:
            raise
        except MemoryError as e:
            raise MixnnError(f"model '{self.graph.name}': out of memory while running: {e}") from None
        except (FloatingPointError, ValueError, IndexError, TypeError, ZeroDivisionError, OverflowError) as e:
            raise MixnnError(f"model '{self.graph.name}': running failed: {type(e).__name__}: {e}") from e
        self._last_alloc = {n: b.allocations - before[n] for n, b in self.backends.items()}
        self._last_feed = feed
        return self._select(outs, output_names)

    def _select(self, outs, output_names):
        if output_names is None:
            return outs
        index = {n: k for k, n in enumerate(self.graph.outputs)}
        bad = [n for n in output_names if n not in index]
        if bad:
            raise InputError(f"unknown output name(s) {bad}; the outputs are {self.graph.outputs}")
        return [outs[index[n]] for n in output_names]

    # -- reports ---------------------------------------------------------------------
    def placement(self) -> dict:
        self._require_plan("placement")
        return {k: dict(v) for k, v in self._plan.placement.items()}

    def memory(self) -> dict:
        self._require_plan("memory")
        out = {}
        for name in self.backends:
            m = dict(self._plan.memory.get(name, {}))
            backend, pool = self.backends[name], self.pools[name]
            # Device backends: every byte they hold outside the arena (constants, repacked
            # weights); host backends keep constants as views of the model file, plus the
            # weights their executors repacked (held_bytes).
            m["static_bytes"] = pool.static_bytes + backend.held_bytes() if backend.host_tensors \
                else backend.live_bytes - pool.capacity
            m["allocations_last_run"] = self._last_alloc.get(name, 0)
            out[name] = m
        return out

    def profile(self, feed=None) -> dict:
        """Run once with per-node timing: {"nodes": [...], "copies": [...], "total_ms"}."""
        feed = self._check_feed(feed) if feed is not None else self._last_feed
        if feed is None:
            raise MixnnError("profile() needs a feed, or a run() before it")
        self._resize(feed)
        prof = {"nodes": [], "copies": []}
        self._plan.run(feed, profile=prof)
        prof["total_ms"] = sum(x["ms"] for x in prof["nodes"]) + sum(x["ms"] for x in prof["copies"])
        return prof

    def release_memory(self):
        """Give the arenas back; the next run re-plans and allocates again."""
        self._plan, self._shapes = None, None
        for pool in self.pools.values():
            pool.release()

    def _require_plan(self, what):
        if self._plan is None:
            raise MixnnError(f"{what}() is known once the session has a plan: call run() or resize() first")
