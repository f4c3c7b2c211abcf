"""Low-precision types (ml_dtypes' float8 / float8e8m0 / int4...): ONNX's casting rules, and BitCast.

numpy casts into ml_dtypes' types by round-to-nearest-even and lets values out of range become
inf or NaN. ONNX's Cast saturates by default instead: out-of-range and infinite inputs become
the largest finite value of the type; float8e8m0 (a bare power of two) rounds up by default.
"""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str

_FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn")


def cast_lowp(node, x, dtype):
    """The cast of x into an ml_dtypes float type under ONNX's rules, or None for other targets."""
    name = np.dtype(dtype).name
    if name == "float8_e8m0fnu":
        return _to_e8m0(node, x, dtype)
    if name not in _FLOAT8 or not node.attrs.get("saturate", 1):
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        y = x.astype(dtype)
        xf = x.astype(np.float32)
        yf = y.astype(np.float32)
    over = ~np.isnan(xf) & ~np.isfinite(yf)
    if np.any(over):
        import ml_dtypes
        top = np.asarray(float(ml_dtypes.finfo(dtype).max), np.float32)
        y[over] = np.where(xf[over] < 0, -top, top).astype(dtype)
    return y


def _to_e8m0(node, x, dtype):
    """float8e8m0 holds 2**(b - 127) for b in 0..254 and NaN as 255; negative input is undefined."""
    mode = attr_str(node, "round_mode", "up")
    saturate = node.attrs.get("saturate", 1)
    xf = np.abs(x.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = np.log2(xf)
        if mode == "up":
            e = np.ceil(exp)
        elif mode == "down":
            e = np.floor(exp)
        elif mode == "nearest":
            low = np.floor(exp)
            e = np.where(xf >= 1.5 * np.exp2(low), low + 1, low)
        else:
            raise UnsupportedOpError(f"node '{node.name}' (Cast): round_mode '{mode}' is not known")
    bits = e + 127
    bad = np.isnan(xf)
    if saturate:
        bits = np.clip(np.nan_to_num(bits, nan=0.0, posinf=254.0, neginf=0.0), 0, 254)
    else:
        bad |= ~np.isfinite(bits) | (bits < 0) | (bits > 254)
        bits = np.nan_to_num(bits, nan=0.0, posinf=0.0, neginf=0.0)
    out = np.where(bad, 255, bits).astype(np.uint8)
    return out.view(dtype)


def quantize_lowp(node, y, zero_point, dtype):
    """QuantizeLinear's last step into ml_dtypes' types: int4/int2 round half to even and saturate;
    float8/float4 add the zero point and cast (saturating unless saturate=0)."""
    import ml_dtypes
    name = np.dtype(dtype).name
    zp = 0 if zero_point is None else zero_point.astype(np.float32)
    if name in ("int4", "uint4", "int2", "uint2"):
        info = ml_dtypes.iinfo(dtype)
        return np.clip(np.rint(y) + zp, info.min, info.max).astype(dtype)
    if name in _FLOAT8:
        y = (y + zp).astype(np.float32)
        out = cast_lowp(node, y, dtype)
        return y.astype(dtype) if out is None else out
    raise UnsupportedOpError(f"node '{node.name}' (QuantizeLinear): output type {name} is not supported")


@kernel("BitCast")
def bitcast(node, x):
    from engine.onnx_types import onnx_dtype
    dtype = onnx_dtype(node.attrs["to"])
    if dtype.itemsize != x.dtype.itemsize:
        raise UnsupportedOpError(f"node '{node.name}' (BitCast): {x.dtype} and {dtype} differ in size")
    return (x if x.flags.c_contiguous else x.copy()).view(dtype)
