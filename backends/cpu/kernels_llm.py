"""The other ops of LLM decoders: RotaryEmbedding, SwiGLU, TensorScatter (KV-cache writes), and
the recurrent blocks of linear-attention models: CausalConvWithState and LinearAttention (run
token by token, in float64)."""
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


@kernel("CausalConvWithState")
def causal_conv_with_state(node, x, w, bias=None, past=None):
    if x.ndim != 3 or w.ndim != 3 or w.shape[:2] != (x.shape[1], 1):
        raise fail(node, f"input {x.shape} and weight {w.shape} must be (B, C, L) and (C, 1, k)")
    k = w.shape[2]
    b, c, length = x.shape
    if past is None:
        past = np.zeros((b, c, k - 1), x.dtype)
    elif past.shape != (b, c, k - 1):
        raise fail(node, f"past_state {past.shape} must be {(b, c, k - 1)}")
    seq = np.concatenate([past, x], axis=2).astype(np.float64)
    y = sum(w[None, :, 0, j, None].astype(np.float64) * seq[:, :, j:j + length] for j in range(k))
    if bias is not None:
        y = y + bias.astype(np.float64)[None, :, None]
    act = attr_str(node, "activation", "none")
    if act in ("silu", "swish"):
        y = y / (1 + np.exp(-y))
    elif act != "none":
        raise UnsupportedOpError(f"node '{node.name}' (CausalConvWithState): activation '{act}' is not known")
    return y.astype(x.dtype), seq[:, :, seq.shape[2] - (k - 1):].astype(x.dtype)


def _per_head(t, heads, name, node):
    """(B, T, H*D) -> (B, T, H, D)."""
    if t.ndim != 3 or t.shape[2] % heads:
        raise fail(node, f"{name} of shape {t.shape} is not (B, T, {heads}*D)")
    return t.reshape(t.shape[0], t.shape[1], heads, -1).astype(np.float64)


@kernel("LinearAttention")
def linear_attention(node, q, k, v, past=None, decay=None, beta=None):
    a = node.attrs
    hq, hkv = a.get("q_num_heads", 0), a.get("kv_num_heads", 0)
    if hq < 1 or hkv < 1 or hq % hkv:
        raise fail(node, f"q_num_heads {hq} must be a positive multiple of kv_num_heads {hkv}")
    rule = attr_str(node, "update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise UnsupportedOpError(f"node '{node.name}' (LinearAttention): update_rule '{rule}' is not known")
    qh, kh, vh = _per_head(q, hq, "query", node), _per_head(k, hkv, "key", node), _per_head(v, hkv, "value", node)
    bsz, steps, _, dk = kh.shape
    dv = vh.shape[3]
    scale = a.get("scale", 0.0) or 1.0 / np.sqrt(qh.shape[3])
    state = np.zeros((bsz, hkv, dk, dv)) if past is None else past.astype(np.float64)
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if (gated and decay is None) or (delta and beta is None):
        raise fail(node, f"update_rule '{rule}' needs the {'decay' if gated and decay is None else 'beta'} input")
    g = decay.reshape(bsz, steps, hkv, -1).astype(np.float64) if gated else None  # (B, T, H, dk or 1)
    bt = np.broadcast_to(beta.reshape(bsz, steps, -1), (bsz, steps, hkv)).astype(np.float64) if delta else None
    out = np.zeros((bsz, steps, hq, dv))
    group = hq // hkv
    for t in range(steps):
        kt, vt = kh[:, t], vh[:, t]  # (B, H, dk), (B, H, dv)
        if gated:
            state = np.exp(g[:, t])[..., None] * state  # per key dim (dk, 1) or per head (1, 1)
        if delta:
            err = vt - np.einsum("bhkv,bhk->bhv", state, kt)
            state = state + bt[:, t, :, None, None] * kt[..., None] * err[:, :, None, :]
        else:
            state = state + kt[..., None] * vt[:, :, None, :]
        shared = np.repeat(state, group, axis=1)  # each kv head serves `group` query heads
        out[:, t] = scale * np.einsum("bhk,bhkv->bhv", qh[:, t], shared)
    return out.reshape(bsz, steps, hq * dv).astype(q.dtype), state.astype(q.dtype)
