"""Elementwise unary kernels: math functions, activations, casts, and the fused-activation
epilogue that Conv/MatMul share.

Attribute floats are Python floats, so they never promote a float32 tensor to float64
(numpy's weak scalars); functions that need more precision compute in float64 and cast back.
"""
import numpy as np

from engine.errors import UnsupportedOpError
from engine.onnx_types import onnx_dtype

from .kernels import kernel
from .kernels_common import attr_str, fail

_MATH = {
    "Tanh": np.tanh, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Abs": np.abs,
    "Neg": np.negative, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round, "Sign": np.sign,
    "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos,
    "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh,
    "Acosh": np.arccosh, "Atanh": np.arctanh, "Not": np.logical_not, "BitwiseNot": np.invert,
    "IsNaN": np.isnan,
}


@kernel(*_MATH)
def math_unary(node, x):
    with np.errstate(all="ignore"):  # log(0), sqrt(-1)... give inf/nan as ONNX Runtime does
        return _MATH[node.op](x)


@kernel("Reciprocal")
def reciprocal(node, x):
    with np.errstate(divide="ignore"):
        return np.reciprocal(x)


@kernel("Relu")
def relu(node, x):
    return np.maximum(x, 0)


@kernel("Sigmoid")
def sigmoid(node, x):
    # exp of a non-positive argument only: no overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@kernel("SiLU")
def silu(node, x):
    return x * sigmoid(node, x)


@kernel("Swish")
def swish(node, x):
    return x * sigmoid(node, x * node.attrs.get("alpha", 1.0))


@kernel("HardSigmoid")
def hard_sigmoid(node, x, alpha=None, beta=None):
    alpha = node.attrs.get("alpha", 0.2) if alpha is None else alpha
    beta = node.attrs.get("beta", 0.5) if beta is None else beta
    return np.clip(x * alpha + beta, 0, 1)


@kernel("HardSwish")
def hard_swish(node, x):
    return x * np.clip(x * (1 / 6) + 0.5, 0, 1)


@kernel("LeakyRelu")
def leaky_relu(node, x, alpha=None):
    alpha = node.attrs.get("alpha", 0.01) if alpha is None else alpha
    return np.where(x < 0, x * alpha, x)


@kernel("ThresholdedRelu")
def thresholded_relu(node, x):
    return np.where(x > node.attrs.get("alpha", 1.0), x, 0).astype(x.dtype, copy=False)


@kernel("Elu")
def elu(node, x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * node.attrs.get("alpha", 1.0))


@kernel("Selu")
def selu(node, x):
    alpha = node.attrs.get("alpha", 1.67326319217681884765625)
    gamma = node.attrs.get("gamma", 1.05070102214813232421875)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * alpha) * gamma


@kernel("Celu")
def celu(node, x):
    alpha = node.attrs.get("alpha", 1.0)
    return np.maximum(x, 0) + np.minimum(np.expm1(np.minimum(x, 0) / alpha) * alpha, 0)


@kernel("Softplus")
def softplus(node, x):
    return np.logaddexp(x, 0)


@kernel("Softsign")
def softsign(node, x):
    return x / (1 + np.abs(x))


@kernel("Mish")
def mish(node, x):
    return x * np.tanh(np.logaddexp(x, 0))


@kernel("Shrink")
def shrink(node, x):
    bias, lambd = node.attrs.get("bias", 0.0), node.attrs.get("lambd", 0.5)
    return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)).astype(x.dtype, copy=False)


# Minimax rational approximation of erf on [-4, 4] (erf is +-1 to float32 precision beyond),
# evaluated in float64: max error 1.6 ulp of float32 against math.erf.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)


def erf(x):
    t = np.clip(x, -4, 4, dtype=np.float64)
    t2 = t * t
    p = np.full_like(t, _ERF_P[0])
    for c in _ERF_P[1:]:
        p = p * t2 + c
    q = np.full_like(t, _ERF_Q[0])
    for c in _ERF_Q[1:]:
        q = q * t2 + c
    return (t * p / q).astype(x.dtype, copy=False)


@kernel("Erf")
def erf_kernel(node, x):
    return erf(x)


@kernel("Gelu")
def gelu(node, x):
    if attr_str(node, "approximate", "none") == "tanh":
        inner = (x + x * x * x * 0.044715) * 0.7978845608028654  # sqrt(2/pi)
        return x * 0.5 * (1 + np.tanh(inner))
    return x * 0.5 * (1 + erf(x * 0.7071067811865476))


@kernel("Clip")
def clip(node, x, lo=None, hi=None):
    # max then min (not np.clip): ONNX wants every value at `max` when min > max.
    y = x if lo is None else np.maximum(x, lo.astype(x.dtype))
    return y if hi is None else np.minimum(y, hi.astype(x.dtype))


@kernel("Identity")
def identity(node, x):
    return x


@kernel("Dropout")
def dropout(node, x, ratio=None, training_mode=None):
    if training_mode is not None and bool(training_mode) and (ratio is None or float(ratio) > 0):
        raise UnsupportedOpError(f"node '{node.name}' (Dropout): training_mode=True is not supported "
                                 f"by an inference runtime")
    if len(node.outputs) > 1 and node.outputs[1]:
        return x, np.ones(x.shape, dtype=np.bool_)
    return x


@kernel("IsInf")
def is_inf(node, x):
    neg, pos = node.attrs.get("detect_negative", 1), node.attrs.get("detect_positive", 1)
    return np.isinf(x) & (((x > 0) & bool(pos)) | ((x < 0) & bool(neg)))


@kernel("Cast")
def cast(node, x):
    return _cast(node, x, onnx_dtype(node.attrs["to"]))


@kernel("CastLike")
def cast_like(node, x, like):
    return _cast(node, x, like.dtype)


def _cast(node, x, dtype):
    if x.dtype == np.object_ or dtype == np.object_:
        if x.dtype == dtype:
            return x
        try:  # string <-> number, as ONNX allows
            return x.astype(str).astype(dtype) if dtype != np.object_ else x.astype(str).astype(object)
        except ValueError as e:
            raise fail(node, f"cannot cast strings to {dtype}: {e}") from None
    from .kernels_lowp import cast_lowp
    y = cast_lowp(node, x, dtype)  # float8 targets saturate, as ONNX says
    if y is not None:
        return y
    with np.errstate(invalid="ignore", over="ignore"):  # out of range: undefined in ONNX too
        return x.astype(dtype, copy=False)


# The fused activations the optimizer attaches to Conv/ConvTranspose/MatMul/Gemm, applied after
# the bias; parameters come from act_min/act_max (Clip) and act_alpha/act_beta.
def fused_activation(node, y):
    act = attr_str(node, "activation", "")
    if not act:
        return y
    a = node.attrs
    if act == "Relu":
        return np.maximum(y, 0, out=y)
    if act == "Clip":
        np.maximum(y, a.get("act_min", -np.inf), out=y)
        return np.minimum(y, a.get("act_max", np.inf), out=y)
    if act == "Sigmoid":
        return sigmoid(node, y)
    if act == "SiLU":
        return silu(node, y)
    if act == "HardSwish":
        return hard_swish(node, y)
    if act == "LeakyRelu":
        return leaky_relu(node, y, a.get("act_alpha", 0.01))
    if act == "HardSigmoid":
        return hard_sigmoid(node, y, a.get("act_alpha", 0.2), a.get("act_beta", 0.5))
    if act == "Tanh":
        return np.tanh(y, out=y)
    raise UnsupportedOpError(f"node '{node.name}' ({node.op}): unknown fused activation '{act}'")
