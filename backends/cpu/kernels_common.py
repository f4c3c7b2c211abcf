"""Small helpers every CPU kernel family shares: attribute access and kernel-time errors."""
import numpy as np

from engine.errors import InputError, ShapeError


def attr_str(node, key, default):
    """A string attribute; the frontend may hand bytes (as ONNX stores them) or str."""
    v = node.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def ints(arr):
    """A small integer tensor input (shape, axes, pads...) as a list of Python ints."""
    return [] if arr is None else [int(v) for v in np.asarray(arr).reshape(-1)]


def scalar(arr, default):
    """An optional 0-d or 1-element input as a Python number."""
    return default if arr is None or np.size(arr) == 0 else np.asarray(arr).reshape(-1)[0].item()


def axis_of(node, axis, rank):
    """Normalize a possibly negative axis, naming the node when it is out of range."""
    if not -rank <= axis < max(rank, 1):
        raise fail(node, f"axis {axis} is out of range for rank {rank}", ShapeError)
    return axis + rank if axis < 0 else axis


def fail(node, why, cls=InputError):
    """The error a kernel raises when the data (not the shapes) is invalid: bad indices..."""
    return cls(f"node '{node.name}' ({node.op}): {why}")
