"""What every Vulkan executor shares: the tensor view, the executor base, push-constant packing,
grids, and the checks of supports().

An executor turns its node into a list of Dispatches once, at bind: pipeline, a descriptor set
with its operands (inputs first, then outputs, in the shader's binding order), push constants
and workgroup counts. `compile` records the lists; `run` only exists for the Executor contract.
"""
from __future__ import annotations

import numpy as np

from engine.backend import Executor

from .commands import Dispatch

LOCAL = 64  # workgroup size of the one-dimensional kernels
F32 = np.dtype(np.float32)
# Activation / unary op ids shared by unary.comp and the fused epilogue of conv and matmul
# (shaders/vulkan/activation.glsl); fused activations use ids 0..8.
OPS = {"": 0, "Identity": 0, "Relu": 1, "Clip": 2, "Sigmoid": 3, "SiLU": 4, "HardSwish": 5,
       "LeakyRelu": 6, "HardSigmoid": 7, "Tanh": 8, "Exp": 9, "Log": 10, "Sqrt": 11, "Erf": 12,
       "Abs": 13, "Neg": 14, "Reciprocal": 15, "Elu": 16, "Softplus": 17, "Floor": 18, "Ceil": 19,
       "Gelu": 20, "GeluTanh": 21, "Sin": 22, "Cos": 23, "Softsign": 24, "Selu": 25, "Celu": 26,
       "Round": 27, "Sign": 28, "Mish": 29, "ThresholdedRelu": 30}
FUSED = ("", "Relu", "Clip", "Sigmoid", "SiLU", "HardSwish", "LeakyRelu", "HardSigmoid", "Tanh")


class Tensor:
    """A float tensor inside a device buffer: what `view` and `upload` return."""
    __slots__ = ("buf", "offset", "shape", "dtype", "nbytes")

    def __init__(self, buf, offset, shape, dtype):
        self.buf, self.offset = buf, int(offset)
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def size(self):
        return self.nbytes // self.dtype.itemsize

    def binding(self):
        return (self.buf, self.offset, max(self.nbytes, 4))

    def span(self):
        return (id(self.buf), self.offset, self.offset + max(self.nbytes, 4))

    def __repr__(self):
        return f"Tensor({self.shape}, {self.dtype}, offset {self.offset})"


def pack(*fields) -> np.ndarray:
    """Push constants: ints (int32/uint32) and floats (float32), flattening lists, std430 scalars."""
    words = []
    for f in fields:
        for x in (f if isinstance(f, (list, tuple)) else (f,)):
            if isinstance(x, (float, np.floating)):
                words.append(int(np.float32(x).view(np.uint32)))
            else:
                words.append(int(x) & 0xFFFFFFFF)
    return np.array(words, np.uint32)


def attr(node, key, default):
    v = node.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def check_float(node, ins, outs, backend, inputs=None):
    """The common reasons to decline: a non-float32 operand, an empty or too large tensor."""
    chosen = [i for k, i in enumerate(ins) if i is not None and (inputs is None or k in inputs)]
    for t in chosen + [o for o in outs if o is not None]:
        if t.dtype != F32:
            return f"dtype {t.dtype} (vulkan kernels are float32)"
        n = int(np.prod(t.shape)) * 4
        if n == 0:
            return "empty tensor"
        if n > backend.dev.max_range:
            return f"tensor of {n} bytes exceeds maxStorageBufferRange {backend.dev.max_range}"
    return None


def fused(node):
    """(activation id, alpha, beta) of the optimizer's fused activation attributes."""
    act = attr(node, "activation", "")
    a = node.attrs
    if act == "Clip":
        return OPS[act], float(a.get("act_min", -3.4e38)), float(a.get("act_max", 3.4e38))
    if act == "LeakyRelu":
        return OPS[act], float(a.get("act_alpha", 0.01)), 0.0
    if act == "HardSigmoid":
        return OPS[act], float(a.get("act_alpha", 0.2)), float(a.get("act_beta", 0.5))
    return OPS.get(act, 0), 0.0, 0.0


def fused_reason(node):
    act = attr(node, "activation", "")
    return None if act in FUSED else f"fused activation '{act}' has no vulkan epilogue"


class VkExecutor(Executor):
    """Base of the Vulkan executors: subclasses implement `record()` -> list of Dispatch."""

    def bind(self, inputs, outputs, scratch=None):
        super().bind(inputs, outputs, scratch)
        self.dispatches = [] if self.aliased else self.record()
        self._runner = None

    def record(self) -> list:
        raise NotImplementedError

    def run(self):
        if self._runner is None:
            self._runner = self.backend.compile([self])
        self._runner()

    def dispatch(self, shader, ins, outs, push, invocations=None, groups=None, spec=(),
                 local=LOCAL, disjoint=None) -> Dispatch:
        """One dispatch of `shader` (push: from `pack`) over `invocations` threads (a 1-D grid,
        folded into y past the device's x limit), or over explicit workgroup `groups`. Operands
        bind in order, inputs then outputs; their byte ranges feed the barrier logic."""
        b = self.backend
        pipe = b.pipelines.get(shader, len(ins) + len(outs), (local,) + tuple(spec))
        dset = b.descriptors.write(pipe, [t.binding() for t in list(ins) + list(outs)])
        if groups is None:
            groups = grid(cdiv(invocations, local), b.dev.max_groups)
        return Dispatch(pipe, dset, push, tuple(groups), [t.span() for t in ins], [t.span() for t in outs],
                        disjoint)


def cdiv(a, b):
    return -(-int(a) // int(b))


def grid(n_groups, max_x):
    """Workgroup counts for n_groups groups: x up to the limit, the rest in y (shaders fold
    gl_GlobalInvocationID.y back in; threads past the end return)."""
    max_x = min(max_x, 65535)
    if n_groups <= max_x:
        return (max(n_groups, 1), 1, 1)
    return (max_x, cdiv(n_groups, max_x), 1)
