"""Signal processing: DFT (FFT/RFFT/IRFFT), STFT and the window generators.

Complex tensors are real tensors with a trailing axis of 2 (real, imaginary) as ONNX lays
them out; a trailing axis of 1 is a real signal. numpy's FFT computes in double precision.
"""
import numpy as np

from engine.onnx_types import onnx_dtype

from .kernels import kernel
from .kernels_common import fail, scalar


def _complex(node, x):
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise fail(node, f"input of shape {x.shape} needs a last axis of 1 (real) or 2 (complex)")
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0].astype(np.float64)


def _pack(y, dtype):
    if np.iscomplexobj(y):
        return np.stack([y.real, y.imag], axis=-1).astype(dtype)
    return y[..., None].astype(dtype)


@kernel("DFT")
def dft(node, x, dft_length=None, axis=None):
    inverse, onesided = node.attrs.get("inverse", 0), node.attrs.get("onesided", 0)
    sig = _complex(node, x)
    ax = int(scalar(axis, -2))
    ax = ax + x.ndim if ax < 0 else ax
    if not 0 <= ax <= x.ndim - 2:
        raise fail(node, f"axis {scalar(axis, -2)} is not a signal axis of shape {x.shape}")
    default = 2 * (sig.shape[ax] - 1) if inverse and onesided else sig.shape[ax]
    n = int(scalar(dft_length, default))
    if n < 1:
        raise fail(node, f"dft_length {n} must be positive")
    if inverse and onesided:
        y = np.fft.irfft(sig, n=n, axis=ax)
    elif onesided:
        if np.iscomplexobj(sig) and np.any(sig.imag):
            raise fail(node, "a one-sided forward DFT needs a real input")
        y = np.fft.rfft(sig.real, n=n, axis=ax)
    else:
        y = (np.fft.ifft if inverse else np.fft.fft)(sig, n=n, axis=ax)
    return _pack(y, x.dtype)


@kernel("STFT")
def stft(node, signal, frame_step, window=None, frame_length=None):
    sig = _complex(node, signal)
    if sig.ndim != 2:
        raise fail(node, f"signal of shape {signal.shape} must be [batch][length][1 or 2]")
    step = int(scalar(frame_step, 0))
    length = int(scalar(frame_length, window.shape[0] if window is not None else sig.shape[1]))
    if step < 1 or not 1 <= length <= sig.shape[1]:
        raise fail(node, f"frame_step {step} / frame_length {length} do not fit a signal of {sig.shape[1]}")
    if window is not None and window.shape != (length,):
        raise fail(node, f"window of shape {window.shape} does not match frame_length {length}")
    frames = (sig.shape[1] - length) // step + 1
    idx = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    chunks = sig[:, idx]
    if window is not None:
        chunks = chunks * window.astype(np.float64)
    onesided = node.attrs.get("onesided", 1)
    if onesided and not np.iscomplexobj(chunks):
        y = np.fft.rfft(chunks, axis=-1)
    else:
        y = np.fft.fft(chunks, axis=-1)
    return _pack(y.astype(np.complex128), signal.dtype)


def _window(node, size, terms):
    n = int(scalar(size, 0))
    if n < 0:
        raise fail(node, f"window size {n} must not be negative")
    periodic = node.attrs.get("periodic", 1)
    denom = n if periodic else n - 1
    k = np.arange(n, dtype=np.float64)
    w = np.zeros(n)
    for m, c in enumerate(terms):
        w += c * np.cos(2 * np.pi * m * k / denom) if denom > 0 else (c if m == 0 else 0.0)
    return w.astype(onnx_dtype(node.attrs.get("output_datatype", 1)))


@kernel("HannWindow")
def hann_window(node, size):
    return _window(node, size, (0.5, -0.5))


@kernel("HammingWindow")
def hamming_window(node, size):
    return _window(node, size, (25 / 46, -21 / 46))


@kernel("BlackmanWindow")
def blackman_window(node, size):
    return _window(node, size, (0.42, -0.5, 0.08))
