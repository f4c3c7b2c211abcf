"""The other ops of transformer decoders: RotaryEmbedding, SwiGLU, and TensorScatter (KV-cache
writes)."""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, axis_of, fail


@kernel("RotaryEmbedding")
def rotary_embedding(node, x, cos_cache, sin_cache, position_ids=None):
    a = node.attrs
    if x.ndim == 4:  # (batch, heads, seq, head) -> (batch, seq, heads, head)
        t = x.transpose(0, 2, 1, 3)
    elif x.ndim == 3:
        heads = a.get("num_heads", 0)
        if not heads or x.shape[2] % heads:
            raise fail(node, f"a 3-D input {x.shape} needs num_heads dividing its last dim")
        t = x.reshape(x.shape[0], x.shape[1], heads, -1)
    else:
        raise fail(node, f"input of shape {x.shape} must be 3-D or 4-D")
    dim = a.get("rotary_embedding_dim", 0) or t.shape[3]
    if dim % 2 or dim > t.shape[3]:
        raise fail(node, f"rotary_embedding_dim {dim} must be even and at most the head size {t.shape[3]}")
    if position_ids is not None:
        cos_cache, sin_cache = cos_cache[position_ids], sin_cache[position_ids]
    if cos_cache.shape[-1] != dim // 2 or sin_cache.shape[-1] != dim // 2:
        raise fail(node, f"caches of shapes {cos_cache.shape}, {sin_cache.shape} need a last dim of {dim // 2}")
    cos, sin = cos_cache[:, :, None, :], sin_cache[:, :, None, :]
    rot = t[..., :dim]
    if a.get("interleaved", 0):
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :dim // 2], rot[..., dim // 2:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if a.get("interleaved", 0):
        rotated = np.stack([real, imag], axis=-1).reshape(rot.shape)
    else:
        rotated = np.concatenate([real, imag], axis=-1)
    y = np.concatenate([rotated, t[..., dim:]], axis=-1).astype(x.dtype, copy=False)
    return y.reshape(x.shape) if x.ndim == 3 else y.transpose(0, 2, 1, 3)


@kernel("SwiGLU")
def swiglu(node, a, b):
    if a.shape != b.shape:
        raise fail(node, f"gate {a.shape} and value {b.shape} must have the same shape")
    alpha = node.attrs.get("alpha", 1.0)
    g = a.astype(np.float64)
    return (g / (1 + np.exp(-alpha * g)) * b).astype(a.dtype)


@kernel("TensorScatter")
def tensor_scatter(node, past, update, write_indices=None):
    axis = axis_of(node, node.attrs.get("axis", -2), past.ndim)
    if axis == 0:
        raise fail(node, "axis 0 (the batch axis) cannot be the sequence axis")
    if update.ndim != past.ndim or any(u != p for k, (u, p) in enumerate(zip(update.shape, past.shape))
                                       if k != axis):
        raise fail(node, f"update {update.shape} must match cache {past.shape} outside axis {axis}")
    mode = attr_str(node, "mode", "linear")
    if mode not in ("linear", "circular"):
        raise UnsupportedOpError(f"node '{node.name}' (TensorScatter): mode '{mode}' is not known")
    size, seq = past.shape[axis], update.shape[axis]
    out = past.copy()
    starts = np.zeros(past.shape[0], np.int64) if write_indices is None else write_indices.astype(np.int64)
    for b in range(past.shape[0]):
        pos = starts[b] + np.arange(seq)
        if mode == "circular":
            pos %= size
        elif seq and (pos[0] < 0 or pos[-1] >= size):
            raise fail(node, f"write index {starts[b]} + {seq} updates overflow the cache length {size}")
        dst = np.moveaxis(out[b], axis - 1, 0)
        dst[pos] = np.moveaxis(update[b], axis - 1, 0)
    return out
