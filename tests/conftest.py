import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def required_backends():
    return {b.strip() for b in os.environ.get("MIXNN_REQUIRE_BACKENDS", "").split(",") if b.strip()}


def require_backend(name):
    """Skip when the backend is unavailable here -- unless MIXNN_REQUIRE_BACKENDS names it,
    in which case an unavailable backend fails the test (CI sets it)."""
    from engine.backend import available_backends
    desc = available_backends().get(name, "unavailable: unknown backend")
    if desc.startswith("unavailable"):
        if name in required_backends():
            pytest.fail(f"backend {name} is required by MIXNN_REQUIRE_BACKENDS but {desc}")
        pytest.skip(f"backend {name} {desc}")
    return desc


@pytest.fixture(scope="session")
def tmp_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mixnn_cache"))


def need_numba():
    """numba is a test dependency: the compiled CPU kernels must be there to be tested."""
    from backends.cpu import jit
    if not jit.available():
        pytest.fail(f"numba is a test dependency: {jit.why_not()}")


@pytest.fixture
def two_threads(monkeypatch):
    """Stages shared by the caller and the thread pool's helper (backends/cpu/parallel.py):
    every GEMM in chunks (MIN_MACS 0), inside a session's `running`, the helper awake."""
    need_numba()
    from backends.cpu import parallel
    monkeypatch.setattr(parallel, "MIN_MACS", 0)
    monkeypatch.setattr(parallel, "threads_of", lambda backend: 2)
    # Tests that the helper takes part must not see it sent away by a busy machine's misses
    # (Pool.contended); the contention tests set the threshold back.
    monkeypatch.setattr(parallel, "MISSES_ALONE", 1 << 62)
    parallel.pool(2).quiet_until = 0.0  # no contention carried over from an earlier test
    with parallel.running(2) as run:
        assert run.pool.wait_awake()
        yield run.pool


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def jit_on(request, monkeypatch):
    """The compiled CPU kernels, then the numpy paths a machine without numba runs
    (jit.available() patched off)."""
    from backends.cpu import jit
    if request.param:
        need_numba()
    else:
        monkeypatch.setattr(jit, "available", lambda: False)
    return request.param


@pytest.fixture
def im2col_gemm(monkeypatch):
    """Convolutions that the packed GEMM (backends/cpu/packed.py) would take go through im2col
    and numpy's GEMM instead: Im2colConv stays tested (grouped convolutions and machines
    without numba run it)."""
    from backends.cpu import packed
    monkeypatch.setattr(packed, "ENABLED", False)
