"""Quantization kernels: QuantizeLinear / DequantizeLinear (per tensor, per axis, blocked),
DynamicQuantizeLinear, and the integer ops MatMulInteger, ConvInteger, QLinearMatMul and
QLinearConv.

Integer products are accumulated in float64 (exact below 2**53, so exact for any int8/uint8
layer), which keeps BLAS in play where numpy's integer matmul has none.
"""
import numpy as np

from engine.onnx_types import onnx_dtype

from .kernels import kernel
from .kernels_common import axis_of, fail
from .kernels_conv import conv

_QUANT_TYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32)


def _along(node, param, x, axis_attr="axis"):
    """Broadcast a scale or zero point against x: scalar, per-axis (1-D) or blocked (same rank)."""
    p = np.asarray(param)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    axis = axis_of(node, node.attrs.get(axis_attr, 1), x.ndim)
    block = node.attrs.get("block_size", 0)
    if block:
        if p.ndim != x.ndim:
            raise fail(node, f"blocked quantization needs a scale of rank {x.ndim}, got {p.shape}")
        return np.repeat(p, block, axis=axis)[tuple(slice(0, d) for d in x.shape)]
    if p.ndim != 1 or p.size != x.shape[axis]:
        raise fail(node, f"a per-axis scale of shape {p.shape} does not match axis {axis} of {x.shape}")
    return p.reshape([-1 if i == axis else 1 for i in range(x.ndim)])


def _saturate(values, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


@kernel("QuantizeLinear")
def quantize_linear(node, x, scale, zero_point=None):
    if zero_point is not None:
        dtype = zero_point.dtype
    elif node.attrs.get("output_dtype"):
        dtype = onnx_dtype(node.attrs["output_dtype"])
    else:
        dtype = np.dtype(np.uint8)
    y = x.astype(np.float32) / _along(node, scale, x).astype(np.float32)
    if dtype.type not in _QUANT_TYPES:  # int4/int2/float8/float4 (ml_dtypes)
        from .kernels_lowp import quantize_lowp
        return quantize_lowp(node, y, None if zero_point is None else _along(node, zero_point, x), dtype)
    if zero_point is not None:
        y = np.rint(y) + _along(node, zero_point, x)
    return _saturate(y, dtype)


@kernel("DequantizeLinear")
def dequantize_linear(node, x, scale, zero_point=None):
    exact = np.float32 if x.dtype.name.startswith("float") else np.int64  # float8/float4 codes: float
    centered = x.astype(exact)
    if zero_point is not None:
        centered = centered - _along(node, zero_point, x).astype(exact)
    return (centered.astype(scale.dtype) * _along(node, scale, x)).astype(scale.dtype, copy=False)


@kernel("DynamicQuantizeLinear")
def dynamic_quantize_linear(node, x):
    # float32 arithmetic throughout, as the spec's formulas run in the input type
    lo = np.float32(min(0.0, float(x.min(initial=0))))
    hi = np.float32(max(0.0, float(x.max(initial=0))))
    scale = (hi - lo) / np.float32(255) if hi > lo else np.float32(1)
    zero = _saturate(-lo / scale, np.uint8)
    y = _saturate(np.rint(x / scale) + zero, np.uint8)
    return y, np.array(scale, np.float32), np.array(zero, np.uint8)


def _centered(x, zero_point, axis_shape=None):
    """x - zero_point as exact float64 (zero_point per row/column when 1-D)."""
    c = x.astype(np.float64)
    if zero_point is not None:
        z = zero_point.astype(np.float64)
        c = c - (z.reshape(axis_shape) if axis_shape is not None and z.size > 1 else z.reshape(()))
    return c


@kernel("MatMulInteger")
def matmul_integer(node, a, b, a_zero=None, b_zero=None):
    acc = np.matmul(_centered(a, a_zero, (-1, 1)), _centered(b, b_zero, (1, -1)))
    return acc.astype(np.int32)


@kernel("ConvInteger")
def conv_integer(node, x, w, x_zero=None, w_zero=None):
    per_channel = (-1,) + (1,) * (w.ndim - 1)
    return conv(node, _centered(x, x_zero), _centered(w, w_zero, per_channel)).astype(np.int32)


def _requantize(acc, multiplier, y_zero):
    dtype = y_zero.dtype if y_zero is not None else np.dtype(np.uint8)
    y = np.rint(acc * multiplier)
    if y_zero is not None:
        y = y + y_zero.astype(np.float64).reshape(())
    return _saturate(y, dtype)


@kernel("QLinearMatMul")
def qlinear_matmul(node, a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero=None):
    acc = np.matmul(_centered(a, a_zero, (-1, 1)), _centered(b, b_zero, (1, -1)))
    per_column = b_scale.astype(np.float64)
    per_column = per_column if per_column.size > 1 else per_column.reshape(())
    multiplier = a_scale.astype(np.float64).reshape(()) * per_column / y_scale.astype(np.float64).reshape(())
    return _requantize(acc, multiplier, y_zero)


@kernel("QLinearConv")
def qlinear_conv(node, x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero=None, bias=None):
    per_channel = (-1,) + (1,) * (w.ndim - 1)
    acc = conv(node, _centered(x, x_zero), _centered(w, w_zero, per_channel))
    spatial = (1,) * (x.ndim - 2)
    if bias is not None:
        acc = acc + bias.astype(np.float64).reshape(-1, *spatial)
    ws = w_scale.astype(np.float64)
    ws = ws.reshape(-1, *spatial) if ws.size > 1 else ws.reshape(())
    multiplier = x_scale.astype(np.float64).reshape(()) * ws / y_scale.astype(np.float64).reshape(())
    return _requantize(acc, multiplier, y_zero)
