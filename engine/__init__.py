"""mixnn: a lightweight inference engine in the spirit of Alibaba's MNN.

    import engine
    sess = engine.InferenceSession("model.onnx", backend="vulkan", fallback="cpu")
    outs = sess.run(None, {"input": x})

Names are imported lazily so that `import engine` stays fast: numpy, onnx and the GPU bindings
load when first needed.
"""
from .errors import (BackendUnavailable, InputError, KernelCompileError, MixnnError,  # noqa: F401
                     ModelFormatError, ShapeError, UnsupportedOpError)

__version__ = "0.1.0"

_LAZY = {
    "InferenceSession": ("session", "InferenceSession"),
    "ScheduleConfig": ("config", "ScheduleConfig"),
    "Model": ("model", "Model"),
    "load": ("model", "load"),
    "available_backends": ("backend", "available_backends"),
    "register_backend": ("backend", "register_backend"),
    "Backend": ("backend", "Backend"),
    "Executor": ("backend", "Executor"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
