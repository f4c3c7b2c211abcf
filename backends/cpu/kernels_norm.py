"""Normalization kernels: BatchNormalization (inference), Instance/Layer/Group normalization,
LRN, Lp and mean-variance normalization, and the Softmax family (opset-13: one axis).

Statistics of float16 inputs are computed in float32 (ONNX's stash_type), results cast back.
"""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import axis_of


def _stat_dtype(x):
    return np.float64 if x.dtype == np.float64 else np.float32


def _channel(v, ndim):
    """A per-channel vector shaped to broadcast against an N, C, ... tensor."""
    return v.reshape(-1, *[1] * (ndim - 2))


def _normalize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes`, with the mean and 1/std (kept dims)."""
    xs = x.astype(_stat_dtype(x), copy=False)
    mean = xs.mean(axis=axes, keepdims=True)
    centered = xs - mean
    inv_std = 1 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + eps)
    return centered * inv_std, mean, inv_std


@kernel("BatchNormalization")
def batch_norm(node, x, scale, bias, mean, var):
    if node.attrs.get("training_mode", 0):
        raise UnsupportedOpError(f"node '{node.name}' (BatchNormalization): training_mode=1 is not "
                                 f"supported by an inference runtime")
    factor = scale / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    shift = bias - mean * factor
    return x * _channel(factor.astype(x.dtype), x.ndim) + _channel(shift.astype(x.dtype), x.ndim)


@kernel("InstanceNormalization")
def instance_norm(node, x, scale, bias):
    y, _, _ = _normalize(x, tuple(range(2, x.ndim)), node.attrs.get("epsilon", 1e-5))
    return (y * _channel(scale, x.ndim) + _channel(bias, x.ndim)).astype(x.dtype, copy=False)


@kernel("LayerNormalization")
def layer_norm(node, x, scale, bias=None):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    y, mean, inv_std = _normalize(x, tuple(range(axis, x.ndim)), node.attrs.get("epsilon", 1e-5))
    y = y * scale
    if bias is not None:
        y += bias
    y = y.astype(x.dtype, copy=False)
    if len(node.outputs) < 2:
        return y
    stash = np.float32 if node.attrs.get("stash_type", 1) == 1 else x.dtype
    return (y, mean.astype(stash, copy=False), inv_std.astype(stash, copy=False))[:len(node.outputs)]


@kernel("RMSNormalization")
def rms_norm(node, x, scale):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    xs = x.astype(_stat_dtype(x), copy=False)
    ms = (xs * xs).mean(axis=tuple(range(axis, x.ndim)), keepdims=True)
    return (xs / np.sqrt(ms + node.attrs.get("epsilon", 1e-5)) * scale).astype(x.dtype, copy=False)


@kernel("GroupNormalization")
def group_norm(node, x, scale, bias):
    n, c = x.shape[:2]
    g = node.attrs["num_groups"]
    grouped = x.reshape(n, g, -1)
    y, _, _ = _normalize(grouped, (2,), node.attrs.get("epsilon", 1e-5))
    y = y.reshape(x.shape)
    if scale.size != c:  # opset-18 form: one scale and bias per group
        scale, bias = np.repeat(scale, c // g), np.repeat(bias, c // g)
    return (y * _channel(scale, x.ndim) + _channel(bias, x.ndim)).astype(x.dtype, copy=False)


@kernel("LRN")
def lrn(node, x):
    size = node.attrs["size"]
    alpha, beta = node.attrs.get("alpha", 1e-4), node.attrs.get("beta", 0.75)
    bias = node.attrs.get("bias", 1.0)
    before = (size - 1) // 2
    c = x.shape[1]
    sq = x * x
    padded = np.pad(sq, [(0, 0), (before, size - 1 - before)] + [(0, 0)] * (x.ndim - 2))
    acc = padded[:, 0:c].copy()
    for k in range(1, size):
        acc += padded[:, k:k + c]
    return x / (acc * (alpha / size) + bias) ** beta


@kernel("LpNormalization")
def lp_normalization(node, x):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    p = node.attrs.get("p", 2)
    norm = np.abs(x).sum(axis=axis, keepdims=True) if p == 1 else \
        np.sqrt((x * x).sum(axis=axis, keepdims=True))
    # an all-zero slice stays zero (ONNX Runtime and the ONNX tests), not 0/0
    return np.divide(x, norm, out=np.zeros_like(x), where=norm != 0)


@kernel("MeanVarianceNormalization")
def mean_variance_normalization(node, x):
    axes = tuple(node.attrs.get("axes", [0, 2, 3]))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    std = np.sqrt((centered * centered).mean(axis=axes, keepdims=True))
    return centered / (std + 1e-9)


@kernel("Softmax")
def softmax(node, x):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    with np.errstate(invalid="ignore"):  # inf - inf: nan, as in ONNX Runtime
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
    return e


@kernel("LogSoftmax")
def log_softmax(node, x):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@kernel("Hardmax")
def hardmax(node, x):
    axis = axis_of(node, node.attrs.get("axis", -1), x.ndim)
    first = np.expand_dims(np.argmax(x, axis=axis), axis)
    y = np.zeros_like(x)
    np.put_along_axis(y, first, 1, axis=axis)
    return y
