"""The ONNX backend node tests on the CPU backend (what CI runs), and the runner's own guarantees:
the comparison rule, the scope rule, and a watchdog that survives crashing and hanging cases."""
import os
import pickle
import time

import numpy as np
import pytest

from engine import conformance

CPU_MIN_PASS_RATE = 90.0  # percent of the in-scope cases


@pytest.fixture(scope="module")
def cases():
    return conformance.annotate_scope(conformance.load_cases())


def test_cpu_in_scope_pass_rate(cases):
    chosen = [k for k, c in enumerate(cases) if not c["scope"]]
    assert len(chosen) > 1500, "the onnx wheel should yield ~1,770 in-scope node tests"
    results = conformance.run_pool(chosen, conformance.cache_file(), "cpu", jobs=2, timeout=60)
    summary = conformance.summarize(cases, results, "cpu")
    s = summary["in_scope"]
    broken = [f"{r['name']}: {r['status']} {r['detail']}" for r in summary["cases"]
              if r["status"] in ("crash", "timeout")]
    assert not broken, "\n".join(broken)
    uncaught = [f"{r['name']}: {r['detail']}" for r in summary["cases"] if "uncaught" in r["detail"]]
    assert not uncaught, "errors that are not MixnnError:\n" + "\n".join(uncaught)
    assert s["pass_rate"] >= CPU_MIN_PASS_RATE, \
        f"in-scope pass rate {s['pass_rate']} % < {CPU_MIN_PASS_RATE} % ({s})"


def test_compare_rule():
    f = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
    assert conformance.compare(f, f.copy()) is None  # NaN equals NaN, infinities exact
    assert conformance.compare(f, f * np.float32(1 + 5e-4)) is None  # within rtol 1e-3
    assert conformance.compare(f, f + np.float32(2e-5)) is not None  # 0 + 2e-5 > atol 1e-5
    assert conformance.compare(f, np.where(np.isinf(f), -f, f)) is not None
    assert conformance.compare(f, f.astype(np.float64)) is not None  # dtype must match
    i = np.arange(4, dtype=np.int64)
    assert conformance.compare(i, i + np.array([0, 0, 0, 1])) is not None  # ints are exact
    assert conformance.compare(i, i.reshape(2, 2)) is not None


def test_scope_rule(cases):
    scope = {c["name"]: c["scope"] for c in cases}
    assert scope["test_relu"] is None
    assert scope["test_adam"].startswith("domain")
    assert scope["test_ai_onnx_ml_binarizer"].startswith("domain")
    assert scope["test_bernoulli"] == "random generator"
    assert scope["test_sequence_insert_at_back"] == "sequence/optional/map type"
    assert scope["test_strnormalizer_export_monday_casesensintive_lower"] is not None
    assert scope["test_cast_FLOAT_to_FLOAT8E4M3FN"] is None  # every dtype is in scope


# -- the watchdog, with runners that misbehave on purpose (sent to the workers by name) ---------
def misbehaving_runner(case, backend):
    if case["name"] == "crash":
        os._exit(3)
    if case["name"] == "hang":
        time.sleep(120)
    return {"status": "pass", "detail": ""}


def test_watchdog_reports_crash_and_hang_and_goes_on(tmp_path):
    path = tmp_path / "cases.pkl"
    names = ["ok0", "crash", "ok1", "hang", "ok2", "ok3"]
    with open(path, "wb") as f:
        pickle.dump([{"name": n} for n in names], f)
    t0 = time.monotonic()
    results = conformance.run_pool(range(len(names)), str(path), jobs=2, timeout=3,
                                   runner=misbehaving_runner)
    assert time.monotonic() - t0 < 60
    status = {names[k]: r["status"] for k, r in results.items()}
    assert status == {"ok0": "pass", "crash": "crash", "ok1": "pass", "hang": "timeout", "ok2": "pass",
                      "ok3": "pass"}
