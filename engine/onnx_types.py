"""ONNX TensorProto element types <-> numpy dtypes, without importing onnx."""
import numpy as np

from .errors import UnsupportedOpError

_TO_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
             7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
             13: np.uint64, 8: np.object_}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items()}


def onnx_dtype(code) -> np.dtype:
    if int(code) not in _TO_NUMPY:
        raise UnsupportedOpError(f"ONNX element type {code} (e.g. bfloat16, complex, float8) is not supported")
    return np.dtype(_TO_NUMPY[int(code)])


def onnx_code(dtype) -> int:
    dt = np.dtype(dtype)
    if dt not in _FROM_NUMPY:
        raise UnsupportedOpError(f"dtype {dt} has no ONNX element type")
    return _FROM_NUMPY[dt]
