"""The process-wide headless GL context (EGL, GL 4.3+ compute) and what we query from it.

One context per process: moderngl programs belong to a context, so sharing it is what lets a
program compile once per process however many sessions open the backend. It is current on
the thread that created it; sessions using the gl backend must stay on that thread.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

from engine.errors import BackendUnavailable

GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT = 0x90DF
GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS = 0x90EB
# The GL spec caps the SSBO offset alignment at 256: a safe value when it cannot be queried.
MAX_SSBO_ALIGNMENT = 256


@dataclass
class GLContext:
    ctx: object          # moderngl.Context
    device: str          # GL_RENDERER (GL_VERSION)
    driver: str          # GL_VERSION: the driver version is part of every cache key
    alignment: int       # GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT, bytes
    es: bool             # an OpenGL ES context: shaders get the `#version 310 es` header
    software: bool       # llvmpipe/softpipe: dispatches run synchronously, timer queries see nothing
    cache_dir: str | None  # the driver shader cache directory we pointed Mesa at


_CONTEXT: GLContext | None = None
_FAILURE: str | None = None


def debug_level() -> int:
    try:
        return int(os.environ.get("MIXNN_DEBUG", "0") or 0)
    except ValueError:
        return 0


def _gl_get_integer(pname: int) -> int | None:
    """glGetIntegerv through the system GL library: moderngl's ctx.info lacks some limits."""
    for name in ("libOpenGL.so.0", "libGL.so.1", "libGLESv2.so.2", ctypes.util.find_library("GL")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        value = ctypes.c_int(0)
        lib.glGetIntegerv(ctypes.c_uint(pname), ctypes.byref(value))
        return value.value if value.value > 0 else None
    return None


def _create(driver_cache_dir):
    try:
        import moderngl
    except ImportError as e:
        raise BackendUnavailable(f"moderngl is not installed ({e}); install mixnn[gl]") from None
    # Mesa reads these when the context is created; restore them after so that other backends
    # (lavapipe reads the same variables) keep their own cache.
    keys = ("MESA_SHADER_CACHE_DIR", "MESA_GLSL_CACHE_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    if driver_cache_dir:
        os.makedirs(driver_cache_dir, exist_ok=True)
        for k in keys:
            os.environ[k] = driver_cache_dir
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=430)
    except Exception as e:  # no libEGL, no driver, GL < 4.3: the backend is unavailable
        raise BackendUnavailable(f"no headless GL 4.3 context through EGL: {type(e).__name__}: {e}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ctx.gc_mode = "auto"  # buffers of closed sessions are freed when collected
    renderer, version = ctx.info.get("GL_RENDERER", "?"), ctx.info.get("GL_VERSION", "?")
    alignment = _gl_get_integer(GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT) or MAX_SSBO_ALIGNMENT
    error = ctx.error
    if error != "GL_NO_ERROR":
        raise BackendUnavailable(f"GL context setup failed: {error}")
    return GLContext(ctx, f"{renderer} ({version})", version, alignment,
                     es=version.startswith("OpenGL ES"),
                     software=any(s in renderer.lower() for s in ("llvmpipe", "softpipe", "swrast")),
                     cache_dir=driver_cache_dir)


def gl_context(driver_cache_dir: str | None = None) -> GLContext:
    """The process's context, created on first use (a failure is remembered, not retried)."""
    global _CONTEXT, _FAILURE
    if _CONTEXT is None:
        if _FAILURE is not None:
            raise BackendUnavailable(_FAILURE)
        try:
            _CONTEXT = _create(driver_cache_dir)
        except BackendUnavailable as e:
            _FAILURE = str(e)
            raise
        if debug_level() >= 1:
            print(f"mixnn gl: opened {_CONTEXT.device}, SSBO alignment {_CONTEXT.alignment} B, "
                  f"driver cache {driver_cache_dir or 'driver default'}", file=sys.stderr)
    return _CONTEXT
