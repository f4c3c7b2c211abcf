"""Op schemas: for each core op, how output shapes and dtypes follow from the inputs.

Shape inference is backend-independent. An infer function receives the node and a list of
`TensorInfo` (concrete shape, dtype, and the value when it is known at resize: a constant or a
folded shape computation; None for an omitted optional input) and returns one TensorInfo per
output (value left None). It returns None when the output shape depends on the data
(NonZero, NonMaxSuppression...): such nodes run eagerly on the CPU with outputs allocated
at run time.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..errors import ShapeError, UnsupportedOpError


class TensorInfo(NamedTuple):
    shape: tuple
    dtype: np.dtype
    value: np.ndarray | None = None


InferFn = Callable[..., "list[TensorInfo] | None"]
SCHEMAS: dict[str, InferFn] = {}
# Ops whose output shape depends on input data; they always run eagerly on the CPU.
DATA_DEPENDENT: set[str] = set()


def schema(*names, data_dependent=False):
    """Register one infer function for one or more op names."""
    def deco(fn):
        for n in names:
            SCHEMAS[n] = fn
            if data_dependent:
                DATA_DEPENDENT.add(n)
        return fn
    return deco


def infer(node, infos) -> "list[TensorInfo] | None":
    fn = SCHEMAS.get(node.op)
    if fn is None:
        return None  # no static rule: the node runs eagerly (its shape is seen at run time)
    try:
        return _within_memory(node, infos, fn(node, infos))
    except DataDependent:
        return None  # an input the rule needs is computed at run time: the node runs eagerly
    except (ShapeError, UnsupportedOpError):
        raise
    except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError) as e:
        shapes = ", ".join(str(i.shape) if i is not None else "-" for i in infos)
        raise ShapeError(f"node '{node.name}' ({node.op}): inputs of shapes {shapes} do not fit: {e}") from None


BIG_TENSOR = 1 << 28  # bytes; tensors above this are checked against the memory available now


def available_bytes() -> int:
    """What one tensor may take: MIXNN_MAX_TENSOR_BYTES, else the memory the OS says is available
    (MemAvailable), else the physical memory."""
    import os
    env = os.environ.get("MIXNN_MAX_TENSOR_BYTES")
    if env:
        return int(env)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def check_size(node, shape, dtype, what="output"):
    """Refuse a tensor larger than the memory available: a hostile shape (a tensor claiming 2**40
    elements) becomes a ShapeError instead of a MemoryError or the OOM killer. Kernels that
    allocate a size read from data call it too."""
    nbytes = np.dtype(dtype).itemsize
    for d in shape:
        nbytes *= max(int(d), 0)  # Python ints: no overflow
    if nbytes > BIG_TENSOR and nbytes > available_bytes():
        raise ShapeError(f"node '{node.name}' ({node.op}): {what} of shape {tuple(int(d) for d in shape)} "
                         f"would take {nbytes / 2 ** 30:.1f} GiB, more than the memory available")


def _within_memory(node, infos, outs):
    for k, o in enumerate(outs or []):
        if o is not None:
            check_size(node, o.shape, o.dtype, f"output {k}")
    return outs


class DataDependent(ShapeError):
    """A shape rule needs the value of an input (Reshape's shape...) that is only known at run time."""


def fail(node, infos, why):
    shapes = ", ".join(str(i.shape) if i is not None else "-" for i in infos)
    raise ShapeError(f"node '{node.name}' ({node.op}): {why} (input shapes {shapes})")


def broadcast_shapes(node, infos, *shapes):
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        fail(node, infos, "shapes cannot be broadcast together")


def norm_axis(node, infos, axis, rank):
    if not -rank <= axis < max(rank, 1):
        fail(node, infos, f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def same(info: TensorInfo, shape=None, dtype=None) -> TensorInfo:
    return TensorInfo(tuple(info.shape if shape is None else shape),
                      np.dtype(info.dtype if dtype is None else dtype))


def const_ints(node, infos, index, what):
    """A small integer input whose value the shape rule needs (Reshape's shape...); when it is
    computed from data, DataDependent makes the node run eagerly."""
    if index >= len(infos) or infos[index] is None:
        return None
    v = infos[index].value
    if v is None:
        raise DataDependent(f"node '{node.name}' ({node.op}): input {index} ({what}) must be known "
                            f"when shapes are planned, but it is computed from data")
    return [int(x) for x in np.asarray(v).reshape(-1)]


def load_all():
    """Import every schema module (they register on import)."""
    from . import elementwise, nn, layout, reduce, misc, extended  # noqa: F401
