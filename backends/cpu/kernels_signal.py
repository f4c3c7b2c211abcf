"""Signal processing: DFT (FFT/RFFT/IRFFT), STFT, the window generators, and TfIdfVectorizer
(n-gram counts over integer token sequences).

Complex tensors are real tensors with a trailing axis of 2 (real, imaginary) as ONNX lays
them out; a trailing axis of 1 is a real signal. numpy's FFT computes in double precision.
"""
import numpy as np

from engine.errors import UnsupportedOpError
from engine.onnx_types import onnx_dtype

from .kernels import kernel
from .kernels_common import attr_str, fail, scalar


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


@kernel("TfIdfVectorizer")
def tfidf_vectorizer(node, x):
    a = node.attrs
    if "pool_int64s" not in a:
        raise UnsupportedOpError(f"node '{node.name}' (TfIdfVectorizer): only integer pools are supported")
    pool, starts, where = list(a["pool_int64s"]), list(a.get("ngram_counts", [0])), list(a["ngram_indexes"])
    table, k = {}, 0
    for n, start in enumerate(starts, 1):
        end = starts[n] if n < len(starts) else len(pool)
        for i in range(start, end, n):
            table[tuple(pool[i:i + n])] = k
            k += 1
    if k != len(where):
        raise fail(node, f"the pool holds {k} n-grams but ngram_indexes lists {len(where)}")
    lo, hi, skips = a.get("min_gram_length", 1), a.get("max_gram_length", 1), a.get("max_skip_count", 0)
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2:
        raise fail(node, f"input of shape {x.shape} must be 1-D or 2-D")
    counts = np.zeros((rows.shape[0], len(where)))
    for r, row in enumerate(rows.tolist()):
        for n in range(lo, hi + 1):
            for skip in range(skips + 1 if n > 1 else 1):  # unigrams have nothing to skip
                step = skip + 1
                for s in range(len(row) - (n - 1) * step):
                    hit = table.get(tuple(row[s:s + (n - 1) * step + 1:step]))
                    if hit is not None:
                        counts[r, hit] += 1
    mode = attr_str(node, "mode", "TF")
    weights = np.asarray(a.get("weights", [1.0] * len(where)), np.float64)
    if mode == "IDF":
        counts = np.minimum(counts, 1) * weights
    elif mode == "TFIDF":
        counts = counts * weights
    elif mode != "TF":
        raise UnsupportedOpError(f"node '{node.name}' (TfIdfVectorizer): mode '{mode}' is not known")
    out = np.zeros((rows.shape[0], max(where) + 1 if where else 0), np.float32)
    np.add.at(out, (slice(None), np.asarray(where, np.int64)), counts)
    return out.reshape(-1) if x.ndim == 1 else out


@kernel("MelWeightMatrix")
def mel_weight_matrix(node, num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz):
    """Triangular filters between mel-spaced points (mel = 2595 log10(1 + f/700)), each peaking
    at 1, on the bins of a one-sided DFT; points land on bin floor((dft_length + 1) f / rate)."""
    m, n_fft, rate = int(scalar(num_mel_bins, 0)), int(scalar(dft_length, 0)), float(scalar(sample_rate, 0))
    lo, hi = float(scalar(lower_edge_hertz, 0)), float(scalar(upper_edge_hertz, 0))
    if m < 1 or n_fft < 1 or rate <= 0:
        raise fail(node, f"num_mel_bins {m}, dft_length {n_fft} and sample_rate {rate} must be positive")
    mel_lo, mel_hi = 2595 * np.log10(1 + lo / 700), 2595 * np.log10(1 + hi / 700)
    mels = mel_lo + np.arange(m + 2) * (mel_hi - mel_lo) / (m + 2)
    points = ((n_fft + 1) * (700 * (10 ** (mels / 2595) - 1)) // rate).astype(np.int64)
    left, center, right = points[:-2], points[1:-1], points[2:]
    j = np.arange(n_fft // 2 + 1)[:, None]
    rising = np.where(center > left, (j - left) / np.maximum(center - left, 1), 1.0)
    falling = (right - j) / np.maximum(right - center, 1)
    out = np.where((j >= center) & (j < right), falling, np.where((j >= left) & (j <= center), rising, 0.0))
    return out.astype(onnx_dtype(node.attrs.get("output_datatype", 1)))
