"""Compiled loops for the CPU backend's hot kernels, through numba when it is installed.

numpy has no primitive for a depthwise convolution, a Winograd tile transform or a fused
bias + activation pass: built from whole-array numpy calls they cost several passes over memory
and run at 4-15 GFLOP/s here, against 50-70 for the same loop compiled (docs/cpu.md). numba
compiles such loops from plain Python at first use and caches the machine code on disk, so the
second process loads it in milliseconds. It is optional (the `mixnn[speed]` extra): a phone that
ships only numpy and flatbuffers runs the numpy paths, which stay tested.

The loops live in modules named jit_*.py, written in numba's Python subset and decorated with
`compile()`; an executor imports its module only when `available()` says the compiled paths
are on, so numba is never imported by `import engine`. MIXNN_JIT=0 turns them off (the tests
run both ways).
"""
import os
import threading

# No 'nnan'/'ninf': NaN and infinity must propagate through a convolution as they do in
# onnxruntime. 'contract' lets LLVM fuse multiply-adds, 'reassoc' vectorize the reductions.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

_state = {"numba": None, "why": None}
_lock = threading.Lock()


def _numba():
    """The numba module, or None (with the reason in _state["why"])."""
    with _lock:
        if _state["numba"] is None and _state["why"] is None:
            if os.environ.get("MIXNN_JIT", "1") == "0":
                _state["why"] = "MIXNN_JIT=0"
            else:
                try:
                    import numba
                    _state["numba"] = numba
                except Exception as e:  # not installed, or an llvmlite that does not load here
                    _state["why"] = f"numba does not import: {e}"
                else:
                    _drop_stale_cache()
        return _state["numba"]


def _drop_stale_cache():
    """numba checks a cached function against its own file only, but kernels inline helpers
    from other jit_*.py files (jit_epilogue.activate): after an edit to one file, the others'
    cached machine code would still hold the old helper -- silently wrong results. So the
    cache next to the sources is keyed by all of them: when their hash changes, it is emptied.
    (An install writes every file at once; this matters where sources are edited.)"""
    import glob
    import hashlib
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(here, "jit*.py"))):
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = os.path.join(here, "__pycache__")
    stamp = os.path.join(cache, "mixnn-jit-sources.sha256")
    try:
        with open(stamp) as f:
            if f.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        for path in glob.glob(os.path.join(cache, "jit*.nb[ic]")):
            os.remove(path)
        os.makedirs(cache, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(digest.hexdigest())
    except OSError:  # a read-only install: numba keeps its cache elsewhere, written at install
        pass


def available():
    return _numba() is not None


def why_not():
    """Why the compiled paths are off ("" when they are on)."""
    return "" if available() else _state["why"]


def compile(parallel=False, inline=False):
    """Decorator for a loop in a kernel module (modules named jit_*.py, which import numba at
    their top and are themselves imported only once available() is True). inline=True: a
    helper inlined into its callers -- a call between compiled functions costs ~25 ns (its
    array arguments are reference-counted), too much for a loop over one image row."""
    numba = _numba()

    def wrap(fn):
        # error_model="numpy": a float division is then a plain division; numba's default
        # checks each divisor for zero to raise ZeroDivisionError, a branch that kept the
        # rational tanh (jit_epilogue) scalar at 1.9 ns per float (0.13 vectorized).
        return numba.njit(fn, parallel=parallel, fastmath=FASTMATH, cache=True, nogil=True,
                          inline="always" if inline else "never", error_model="numpy")
    return wrap
