"""GLSL compute programs: sources assembled from shaders/gl, compiled once per process, indexed on disk.

A shader body (shaders/gl/<name>.comp) gets a version header -- `#version 430` for desktop GL,
`#version 310 es` plus highp defaults for GLES -- then `#define`s for its variant, and its
`#include "x.glsl"` lines replaced by the snippet (once each). The same body must compile both
ways (tests/test_gl_backend.py checks it with glslangValidator).

moderngl cannot create a program from a binary, so the driver's own shader disk cache does the
persisting (Mesa's is pointed at <cache_dir>/gl when the context is created). Beside it we keep an
index of the programs ever built (key: device + driver version + source hash) so that a second
process can tell it compiled nothing new: `GLBackend.cache_stats`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from importlib import resources

import numpy as np

from engine.errors import KernelCompileError

DESKTOP_HEADER = "#version 430\n"
ES_HEADER = "#version 310 es\nprecision highp float;\nprecision highp int;\n"
_INCLUDE = re.compile(r'^#include "([\w.]+)"\s*$', re.M)

_PROGRAMS: dict = {}  # (device, source) -> Program: one compile per process
STATS = {"hits": 0, "misses": 0, "programs": 0}


@functools.lru_cache(maxsize=None)
def shader_text(name: str) -> str:
    return resources.files("shaders").joinpath("gl", name).read_text()


def shader_names() -> list[str]:
    return sorted(p.name for p in resources.files("shaders").joinpath("gl").iterdir()
                  if p.name.endswith(".comp"))


def assemble(name: str, defines: dict | None = None, es: bool = False) -> str:
    """The full source of shader `name` (without .comp) for one variant."""
    seen = set()

    def expand(text):
        def one(m):
            if m.group(1) in seen:
                return ""
            seen.add(m.group(1))
            return expand(shader_text(m.group(1)))
        return _INCLUDE.sub(one, text)

    lines = [ES_HEADER if es else DESKTOP_HEADER]
    lines += [f"#define {k} {v}\n" for k, v in sorted((defines or {}).items())]
    return "".join(lines) + expand(shader_text(f"{name}.comp"))


def variants_used(name: str, prefix: str) -> list[str]:
    """The names X a shader tests as `defined(<prefix>X)`: the ops one body implements."""
    text = shader_text(f"{name}.comp")
    return sorted(set(re.findall(r"defined\(" + prefix + r"(\w+)\)", text)))


class Program:
    """A compiled compute shader plus its uniforms, resolved by name once.

    `owner` is the serial number of the dispatch whose uniform values are currently set: a program
    used by a single dispatch sets them once, a shared one before each of its users' dispatches."""

    def __init__(self, cs, name):
        self.cs, self.name, self.owner = cs, name, None

    def pack(self, values: dict) -> list:
        """[(uniform, bytes)] ready for `uniform.write`; uniforms the compiler dropped are skipped."""
        out = []
        for key, value in values.items():
            u = self.cs.get(key, None)
            if u is None:
                continue
            dtype = {"i": np.int32, "I": np.uint32, "f": np.float32}[u.fmt[-1]]
            flat = np.asarray(value, dtype=dtype).reshape(-1)
            need = u.array_length * u.dimension  # arrays may be trimmed to the used prefix
            out.append((u, flat[:need].tobytes()))
        return out


class ProgramCache:
    """Per backend: where the index lives; the compiled programs themselves are per process."""

    def __init__(self, glc, cache_dir: str):
        self.glc, self.cache_dir = glc, cache_dir
        self.index_path = os.path.join(cache_dir, "programs.json")
        try:
            with open(self.index_path) as f:
                self.index = json.load(f)
        except (OSError, ValueError):
            self.index = {}

    def get(self, name: str, defines: dict | None = None) -> Program:
        source = assemble(name, defines, self.glc.es)
        key = (self.glc.device, source)
        prog = _PROGRAMS.get(key)
        if prog is not None:
            return prog
        digest = hashlib.sha256(f"{self.glc.device}\n{self.glc.driver}\n{source}".encode()).hexdigest()
        try:
            cs = self.glc.ctx.compute_shader(source)
        except Exception as e:  # moderngl.Error carries the driver's info log
            raise KernelCompileError(f"gl: shader '{name}' {defines or {}} failed to compile on "
                                     f"{self.glc.device}", build_log=str(e)) from None
        prog = _PROGRAMS[key] = Program(cs, name)
        STATS["programs"] += 1
        if digest in self.index:
            STATS["hits"] += 1
        else:
            STATS["misses"] += 1
            self.index[digest] = f"{name} {sorted((defines or {}).items())}"
            self._save()
        return prog

    def _save(self):
        tmp = f"{self.index_path}.{os.getpid()}.tmp"
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(self.index, f, indent=0, sort_keys=True)
            os.replace(tmp, self.index_path)
        except OSError:
            pass  # a read-only cache directory costs speed at the next start, not correctness
