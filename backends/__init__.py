"""Built-in backends. Each subpackage registers itself with `@register_backend(name)`.

A new backend is one new folder here and its name in BUILTIN; out-of-tree backends register
through the `mixnn.backends` entry-point group instead. Importing a backend module must not import
its GPU binding: that happens in the backend's `probe()`.
"""
BUILTIN = ("cpu", "opencl", "vulkan", "gl")
