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
