"""Elementwise kernels of two or more inputs with numpy (multidirectional) broadcasting:
arithmetic, comparisons, logic, bitwise ops, Where, PRelu and the variadic Sum/Mean/Max/Min."""
from functools import reduce

import numpy as np

from .kernels import kernel
from .kernels_common import attr_str

_SIMPLE = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "Equal": np.equal, "Less": np.less, "LessOrEqual": np.less_equal, "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
    "Xor": np.logical_xor, "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
    "BitwiseXor": np.bitwise_xor,
}
_VARIADIC = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum}


@kernel(*_SIMPLE)
def simple_binary(node, a, b):
    with np.errstate(all="ignore"):  # integer overflow wraps, inf - inf is nan: as in C
        return _SIMPLE[node.op](a, b)


@kernel(*_VARIADIC)
def variadic(node, *xs):
    return reduce(_VARIADIC[node.op], xs)


@kernel("Mean")
def mean(node, *xs):
    return reduce(np.add, xs) / len(xs)


@kernel("Div")
def div(node, a, b):
    with np.errstate(all="ignore"):
        if a.dtype.kind != "i":
            return np.floor_divide(a, b) if a.dtype.kind == "u" else np.true_divide(a, b)
        # ONNX integer division truncates toward zero, as in C; numpy floors.
        q = np.floor_divide(a, b)
        q += ((q * b != a) & ((a < 0) != (b < 0))).astype(q.dtype)
        return q


@kernel("Mod")
def mod(node, a, b):
    with np.errstate(all="ignore"):
        if node.attrs.get("fmod", 0):
            return np.fmod(a, b)  # sign of the dividend
        return np.mod(a, b)  # sign of the divisor (Python-style)


@kernel("Pow")
def power(node, base, exponent):
    with np.errstate(all="ignore"):
        if base.dtype.kind == "f":
            return np.power(base, exponent.astype(base.dtype, copy=False))
        if exponent.dtype.kind in "iu" and not (exponent < 0).any():
            return np.power(base, exponent.astype(base.dtype))
        # Integer base, float or negative exponent: numpy refuses or promotes; ONNX keeps the
        # base's dtype, truncating the real power.
        out = np.trunc(np.power(base.astype(np.float64), exponent.astype(np.float64)))
        return out.astype(base.dtype)


@kernel("BitShift")
def bit_shift(node, x, shift):
    if attr_str(node, "direction", "LEFT") == "RIGHT":
        return np.right_shift(x, shift)
    return np.left_shift(x, shift)


@kernel("Where")
def where(node, cond, x, y):
    return np.where(cond, x, y)


@kernel("PRelu")
def prelu(node, x, slope):
    return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)
