"""An execution plan for one set of input shapes: executors bound to arena views, and steps.

Built at resize from the shapes, the placement and the node order: every tensor a backend
needs (node outputs, copies of values produced elsewhere, graph inputs, executor scratch) is a
Block with a lifetime in node positions; each backend's blocks are packed into its arena; the
executors are bound to views of it; consecutive nodes on one backend become one subgraph that
the backend compiles once. `run` then only copies inputs in, runs steps, and copies outputs out.
"""
from __future__ import annotations

import time

import numpy as np

from . import ops
from .memory import Block, lower_bound, plan_arena, align_up
from .optimizer.rewrite import reads
from .ops import TensorInfo


class Plan:
    def __init__(self, graph, infos, placement, order, backends, pools, statics, evaluate):
        self.graph, self.infos, self.placement = graph, infos, placement
        self.backends, self.pools, self.statics, self.evaluate = backends, pools, statics, evaluate
        self.order = [n for n in order if placement[n.name]["backend"] is not None]
        self.eager = {n.name for n in self.order if placement[n.name]["reason"].startswith("eager")}
        self.order = self._fuse(self.order)
        self.pos = {n.name: k for k, n in enumerate(self.order)}
        self.end = len(self.order)
        self._place_values()
        self._create_executors()
        self._plan_memory()
        self._build_steps()

    def _fuse(self, order):
        """Each run of nodes on one backend, through the backend's fuse() (Backend.fuse)."""
        readers: dict = {}
        for n in order:
            for v in reads(n):
                readers[v] = readers.get(v, 0) + 1
        keep = set(self.graph.outputs)
        out, start = [], 0
        for k in range(1, len(order) + 1):
            if k == len(order) or self._group_key(order[k]) != self._group_key(order[start]):
                run = order[start:k]
                if run[0].name not in self.eager:
                    backend = self.backends[self.placement[run[0].name]["backend"]]
                    run = backend.fuse(run, readers, keep, self.infos)
                out += run
                start = k
        return out

    # -- where each value lives -------------------------------------------------------
    def _place_values(self):
        g = self.graph
        self.home = {}  # value -> "input" | "const" | "eager" | backend name
        for name in g.inputs:
            self.home[name] = "input"
        for name, info in self.infos.items():
            if info is not None and info.value is not None and name not in g.inputs:
                self.home[name] = "const"
        for n in self.order:
            for o in n.outputs:
                if o and self.home.get(o) != "const":
                    self.home[o] = "eager" if n.name in self.eager else self.placement[n.name]["backend"]
        self.group_end = {}  # node name -> position of the last node of its subgraph
        start = 0
        for k in range(1, self.end + 1):
            if k == self.end or self._group_key(self.order[k]) != self._group_key(self.order[start]):
                for n in self.order[start:k]:
                    self.group_end[n.name] = k - 1
                start = k
        self.producer_pos = {o: self.pos[n.name] for n in self.order for o in n.outputs if o}

    def _group_key(self, node):
        return ("eager", node.name) if node.name in self.eager else self.placement[node.name]["backend"]

    def _create_executors(self):
        self.executors = {}
        for n in self.order:
            if n.name in self.eager:
                continue
            b = self.backends[self.placement[n.name]["backend"]]
            ins = [self.infos[i] if i else None for i in n.inputs]
            outs = [self.infos[o] if o else None for o in n.outputs]
            self.executors[n.name] = b.create(n, ins, outs)

    # -- memory ----------------------------------------------------------------------
    def _plan_memory(self):
        blocks: dict = {}  # (value, backend) -> Block
        alias_of: dict = {}

        def need(value, backend, first, last):
            key = (value, backend)
            blk = blocks.get(key)
            if blk is None:
                info = self.infos[value]
                nbytes = int(np.prod(info.shape)) * info.dtype.itemsize
                blocks[key] = Block(key, nbytes, first, last)
            else:
                blk.first, blk.last = min(blk.first, first), max(blk.last, last)

        self.crossings = []  # (value, src backend, dst backend, after position)
        crossing_seen = set()
        for n in self.order:
            p = self.pos[n.name]
            if n.name in self.eager:
                for v in n.inputs:
                    if v and self.home[v] not in ("input", "const", "eager"):
                        need(v, self.home[v], self.producer_pos[v], p)
                continue
            b = self.placement[n.name]["backend"]
            for o in n.outputs:
                if o:
                    need(o, b, p, p)
            for v in n.inputs:
                if not v or self.home[v] == "const":
                    continue
                src = self.home[v]
                if src == "input":
                    need(v, b, -1, p)
                elif src == b:
                    need(v, b, self.producer_pos[v], p)
                else:
                    after = self.group_end[self.order[self.producer_pos[v]].name]
                    need(v, src, self.producer_pos[v], after)
                    need(v, b, after, p)
                    if (v, b) not in crossing_seen:
                        crossing_seen.add((v, b))
                        self.crossings.append((v, src, b, after))
        for v in self.graph.outputs:
            if self.home.get(v) not in ("input", "const", "eager", None):
                need(v, self.home[v], self.producer_pos[v], self.end)
        # Reshape-like executors share their input's bytes: merge the two blocks.
        for n in self.order:
            exe = self.executors.get(n.name)
            if exe is not None and exe.alias and (n.inputs[0], exe.backend.name) in blocks \
                    and self.home[n.inputs[0]] not in ("const",):
                src, dst = blocks[(n.inputs[0], exe.backend.name)], blocks.pop((n.outputs[0], exe.backend.name))
                root = alias_of.get(src.key, src.key)
                rb = blocks[root]
                rb.first, rb.last = min(rb.first, dst.first), max(rb.last, dst.last)
                alias_of[dst.key] = root
                exe.aliased = True
        for name, exe in self.executors.items():
            s = exe.scratch_bytes()
            if s:
                p = self.pos[name]
                blocks[("#scratch", name)] = Block(("#scratch", name), s, p, p)
        self.tensors = {}
        self.memory = {}
        for bname, backend in self.backends.items():
            mine = [blk for key, blk in blocks.items() if self._block_backend(key) == bname]
            size = plan_arena(mine, backend.alignment)
            pool = self.pools[bname]
            pool.reserve(size)
            self.memory[bname] = {
                "arena_bytes": size,
                "naive_bytes": sum(align_up(max(b.nbytes, 1), backend.alignment) for b in mine),
                "lower_bound_bytes": lower_bound(mine, backend.alignment),
            }
            for blk in mine:
                self.tensors[blk.key] = (pool, blk.offset)
        for key, root in alias_of.items():
            self.tensors[key] = self.tensors[root]

    def _block_backend(self, key):
        if key[0] == "#scratch":
            return self.placement[key[1]]["backend"]
        return key[1]

    def tensor(self, value, backend):
        """The backend's tensor for a value: an arena view or a static upload."""
        if self.home.get(value) == "const":
            key = (value, backend)
            now = self.infos[value].value
            old = self.statics.get(key, (None, None))[0]
            same = old is now or (old is not None and np.shape(old) == np.shape(now)
                                  and np.asarray(old).dtype == np.asarray(now).dtype and np.array_equal(old, now))
            if not same:  # folded values are recomputed at every resize: re-upload only on change
                arr = np.asarray(self.infos[value].value)
                self.statics[key] = (self.infos[value].value, self.backends[backend].upload(arr))
                self.pools[backend].static_bytes += arr.nbytes
            return self.statics[key][1]
        pool, offset = self.tensors[(value, backend)]
        info = self.infos[value]
        return self.backends[backend].view(pool.buffer, offset, info.shape, info.dtype)

    # -- steps -----------------------------------------------------------------------
    def _build_steps(self):
        self.inputs_in = []  # (input name, backend, tensor)
        for (v, b) in list(self.tensors):
            if v in self.graph.inputs and b in self.backends:
                self.inputs_in.append((v, self.backends[b], self.tensor(v, b)))
        for name, exe in self.executors.items():
            n = exe.node
            b = exe.backend.name
            scratch = None
            if ("#scratch", name) in self.tensors:
                pool, off = self.tensors[("#scratch", name)]
                scratch = exe.backend.view(pool.buffer, off, (exe.scratch_bytes(),), np.uint8)
            exe.bind([self.tensor(v, b) if v else None for v in n.inputs],
                     [self.tensor(o, b) if o else None for o in n.outputs], scratch)
        copies_after = {}
        for v, src, dst, after in self.crossings:
            copies_after.setdefault(after, []).append(self._copy_step(v, src, dst))
        self.steps = []  # (kind, payload)
        start = 0
        for k in range(self.end):
            n = self.order[k]
            if self.group_end[n.name] != k:
                continue
            group = self.order[start:k + 1]
            start = k + 1
            if group[0].name in self.eager:
                self.steps.append(("eager", group[0]))
            else:
                backend = self.backends[self.placement[group[0].name]["backend"]]
                exes = [self.executors[g.name] for g in group]
                self.steps.append(("subgraph", (backend, exes, backend.compile(exes))))
            for c in copies_after.get(k, []):
                self.steps.append(("copy", c))
        self.outputs_out = []
        for v in self.graph.outputs:
            home = self.home[v]
            self.outputs_out.append((v, home, self.tensor(v, home) if home in self.backends else None))

    def _copy_step(self, v, src, dst):
        s, d = self.backends[src], self.backends[dst]
        ts, td = self.tensor(v, src), self.tensor(v, dst)
        if s.host_tensors:
            return (v, src, dst, lambda: d.write(td, ts))
        if d.host_tensors:
            return (v, src, dst, lambda: s.read(ts, td))
        info = self.infos[v]
        stage = np.empty(info.shape, info.dtype)

        def copy():
            s.read(ts, stage)
            d.write(td, stage)
        return (v, src, dst, copy)

    # -- running ---------------------------------------------------------------------
    def run(self, feed: dict, profile=None) -> list:
        for v, backend, t in self.inputs_in:
            backend.write(t, feed[v])
        host = {}
        for kind, payload in self.steps:
            t0 = time.perf_counter() if profile is not None else 0.0
            if kind == "subgraph":
                backend, exes, runner = payload
                if profile is None:
                    runner()
                else:
                    for e, dt in zip(exes, backend.time_each(exes)):
                        entry = {"node": e.node.name, "op": e.node.op, "backend": backend.name, "ms": dt * 1e3}
                        if e.node.attrs.get("fused"):  # a chain the backend merged (Backend.fuse)
                            entry["fused"] = list(e.node.attrs["fused"])
                        profile["nodes"].append(entry)
                    continue
            elif kind == "copy":
                v, src, dst, fn = payload
                fn()
            else:
                self._run_eager(payload, feed, host)
            if profile is not None:
                dt = (time.perf_counter() - t0) * 1e3
                if kind == "copy":
                    profile["copies"].append({"value": payload[0], "from": payload[1], "to": payload[2], "ms": dt})
                else:
                    profile["nodes"].append({"node": payload.name, "op": payload.op, "backend": "cpu", "ms": dt})
        return [self._output(v, home, t, feed, host) for v, home, t in self.outputs_out]

    def _host_value(self, v, feed, host):
        home = self.home[v]
        if home == "input":
            return feed[v]
        if home == "const":
            return np.asarray(self.infos[v].value)
        if home == "eager":
            return host[v]
        info = self.infos[v]
        out = np.empty(info.shape, info.dtype)
        self.backends[home].read(self.tensor(v, home), out)
        return out

    def _run_eager(self, node, feed, host):
        args = [self._host_value(v, feed, host) if v else None for v in node.inputs]
        # the shape rules (when the op has one) check sizes read from data before any allocation
        ops.infer(node, [TensorInfo(a.shape, a.dtype, a) if a is not None else None for a in args])
        for name, val in zip(node.outputs, self.evaluate(node, args)):
            if name:
                host[name] = np.asarray(val)

    def _output(self, v, home, t, feed, host):
        if home in self.backends:
            info = self.infos[v]
            out = np.empty(info.shape, info.dtype)
            self.backends[home].read(t, out)
            return out
        return np.array(self._host_value(v, feed, host), copy=True)
