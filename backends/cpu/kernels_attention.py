"""Attention (opset 23-25): scaled dot-product attention with MHA/GQA/MQA heads, a KV cache,
boolean or additive masks, causal and sliding-window masking, softcap, and the qk debug output.

Scores are computed in float32 (float64 for double inputs) and cast back at the end. A query
row that no key may attend produces zeros, not NaN, as the spec says.
"""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import fail


def _heads(x, n_heads, what, node):
    """(batch, seq, heads*size) -> (batch, heads, seq, size)."""
    if not n_heads or x.shape[2] % n_heads:
        raise fail(node, f"3-D {what} of shape {x.shape} needs a num_heads attribute dividing its last dim")
    return x.reshape(x.shape[0], x.shape[1], n_heads, -1).transpose(0, 2, 1, 3)


def _mask_bias(node, shape, attn_mask, past_len, nonpad, dtype):
    """The additive bias (0 or -inf, or the float mask) of shape broadcastable to `shape`."""
    b, hq, sq, skv = shape
    bias = np.zeros((1, 1, sq, skv), dtype)
    if attn_mask is not None:
        m = attn_mask
        if m.shape[-1] < skv:
            pad = [(0, 0)] * (m.ndim - 1) + [(0, skv - m.shape[-1])]
            m = np.pad(m, pad, constant_values=False if m.dtype == np.bool_ else -np.inf)
        m = np.where(m, 0, -np.inf).astype(dtype) if m.dtype == np.bool_ else m.astype(dtype)
        bias = bias + m
    a = node.attrs
    left, right = a.get("left_window_size", -1), a.get("right_window_size", -1)
    causal = a.get("is_causal", 0)
    if causal or left >= 0 or right >= 0:
        if past_len is not None:
            offset = np.full((1,), past_len)
        elif nonpad is not None:
            offset = nonpad.reshape(-1).astype(np.int64) - sq
        else:
            offset = np.zeros((1,), np.int64)
        pos = offset[:, None, None] + np.arange(sq)[None, :, None]  # absolute query positions
        j = np.arange(skv)[None, None, :]
        allowed = np.ones(pos.shape[:2] + (skv,), bool)
        if causal:
            allowed &= j <= pos
        if left >= 0:
            allowed &= j >= pos - left
        if right >= 0:
            allowed &= j <= pos + right
        bias = bias + np.where(allowed, 0, -np.inf).astype(dtype)[:, None]
    if nonpad is not None:
        keep = np.arange(skv)[None, :] < nonpad.reshape(-1, 1)
        bias = bias + np.where(keep, 0, -np.inf).astype(dtype)[:, None, None, :]
    return bias


def _softmax_rows(x):
    """Softmax over the last axis; rows that are all -inf give zeros."""
    top = np.max(x, axis=-1, keepdims=True)
    dead = np.isneginf(top)
    e = np.exp(x - np.where(dead, 0, top))
    s = np.sum(e, axis=-1, keepdims=True)
    return np.where(dead, 0, e / np.where(s == 0, 1, s))


@kernel("Attention")
def attention(node, q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None):
    a = node.attrs
    out_dtype = q.dtype
    three_d = q.ndim == 3
    if three_d:
        q = _heads(q, a.get("q_num_heads"), "Q", node)
        k = _heads(k, a.get("kv_num_heads"), "K", node)
        v = _heads(v, a.get("kv_num_heads"), "V", node)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise fail(node, f"Q, K, V must be 3-D or 4-D, got {q.shape}, {k.shape}, {v.shape}")
    past_len = None
    if past_key is not None and past_value is not None:
        past_len = past_key.shape[2]
        k = np.concatenate([past_key, k], axis=2)
        v = np.concatenate([past_value, v], axis=2)
    present_k, present_v = k, v
    b, hq, sq, d = q.shape
    hkv = k.shape[1]
    if hkv == 0 or hq % hkv:
        raise fail(node, f"{hq} query heads are not a multiple of {hkv} key/value heads")
    if hq != hkv:
        k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)
    work = np.float64 if out_dtype == np.float64 else np.float32
    scale = a.get("scale") or 1.0 / np.sqrt(d)
    root = np.sqrt(work(scale))
    qk = np.matmul(q.astype(work) * root, np.swapaxes(k.astype(work) * root, -1, -2))
    mode = a.get("qk_matmul_output_mode", 0)
    qk_out = qk
    softcap = a.get("softcap", 0.0)
    if softcap and softcap > 0:
        qk = softcap * np.tanh(qk / softcap)
        if mode == 1:
            qk_out = qk
    bias = _mask_bias(node, qk.shape, attn_mask, past_len, nonpad_kv_seqlen, work)
    scores = qk + bias
    if mode == 2:
        qk_out = scores
    precision = a.get("softmax_precision")
    if precision:
        from engine.onnx_types import onnx_dtype
        probs = _softmax_rows(scores.astype(onnx_dtype(precision)).astype(work))
    else:
        probs = _softmax_rows(scores)
    if mode == 3:
        qk_out = probs
    elif mode not in (0, 1, 2):
        raise UnsupportedOpError(f"node '{node.name}' (Attention): qk_matmul_output_mode {mode} is not known")
    y = np.matmul(probs, v.astype(work))
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(b, sq, -1)
    return (y.astype(out_dtype), present_k, present_v,
            np.broadcast_to(qk_out, (b, hq, sq, qk.shape[-1])).astype(out_dtype))
