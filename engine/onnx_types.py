"""ONNX TensorProto element types <-> numpy dtypes, without importing onnx.

The low-precision types numpy lacks (bfloat16, float8, int4, float4...) are ml_dtypes' numpy
dtypes -- ml_dtypes ships with onnx -- and are available only where it is installed.
"""
import numpy as np

from .errors import UnsupportedOpError

_TO_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
             7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
             13: np.uint64, 8: np.object_, 14: np.complex64, 15: np.complex128}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items()}
_ML_DTYPES = {16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2",
              20: "float8_e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu",
              25: "uint2", 26: "int2"}
_loaded = []


def _load_ml_dtypes():
    """Add ml_dtypes' types to the tables once, when a lookup first needs them."""
    if _loaded:
        return
    _loaded.append(True)
    try:
        import ml_dtypes
    except ImportError:
        return
    for code, name in _ML_DTYPES.items():
        if hasattr(ml_dtypes, name):
            _TO_NUMPY[code] = getattr(ml_dtypes, name)
            _FROM_NUMPY[np.dtype(_TO_NUMPY[code])] = code


def onnx_dtype(code) -> np.dtype:
    if int(code) not in _TO_NUMPY and int(code) in _ML_DTYPES:
        _load_ml_dtypes()
    if int(code) not in _TO_NUMPY:
        extra = " (it needs the ml_dtypes package)" if int(code) in _ML_DTYPES else ""
        raise UnsupportedOpError(f"ONNX element type {code} is not supported{extra}")
    return np.dtype(_TO_NUMPY[int(code)])


def onnx_code(dtype) -> int:
    dt = np.dtype(dtype)
    if dt not in _FROM_NUMPY:
        _load_ml_dtypes()
    if dt not in _FROM_NUMPY:
        raise UnsupportedOpError(f"dtype {dt} has no ONNX element type")
    return _FROM_NUMPY[dt]
