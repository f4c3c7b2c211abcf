"""The ONNX backend node tests on the CPU backend (what CI runs), and the runner's own guarantees:
the comparison rule, the scope rule, and a watchdog that survives crashing and hanging cases."""
import os
import pickle
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
from engine import conformance
from engine.errors import ModelFormatError, UnsupportedOpError

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


# -- the importer's version policy ------------------------------------------------------------
def _one_node_model(node, inputs, outputs, opset, ir=None):
    g = helper.make_graph([node], "m", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir or m.ir_version
    return m


def _vi(name, shape, elem=1):
    return helper.make_tensor_value_info(name, elem, shape)


def test_newest_ir_and_opset_are_accepted():
    m = _one_node_model(onnx.helper.make_node("Relu", ["x"], ["y"]), [_vi("x", [3])], [_vi("y", [3])],
                        onnx.defs.onnx_opset_version(), onnx.IR_VERSION)
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    np.testing.assert_array_equal(engine.InferenceSession(m).run(None, {"x": x})[0], np.maximum(x, 0))


@pytest.mark.parametrize("node, opset, ir, message", [
    ("Relu", 17, "newer", "IR version"),
    ("HardSwish", 13, None, "does not define"),      # HardSwish came in opset 14
    ("Tile", 5, None, "Tile-1"),                      # tiles/axis inputs: no upgrade rule
])
def test_versions_mixnn_does_not_implement_are_refused_clearly(node, opset, ir, message):
    n = onnx.helper.make_node(node, ["x", "t", "a"] if node == "Tile" else ["x"], ["y"])
    ins = [_vi("x", [3])] + ([_vi("t", [], 7), _vi("a", [], 7)] if node == "Tile" else [])
    m = _one_node_model(n, ins, [_vi("y", [3])], opset, onnx.IR_VERSION + 1 if ir else None)
    with pytest.raises(UnsupportedOpError, match=message):
        engine.InferenceSession(m)


def test_nodes_that_do_not_fit_their_schema_are_refused():
    m = _one_node_model(onnx.helper.make_node("Add", ["x"], ["y"]), [_vi("x", [3])], [_vi("y", [3])], 17)
    with pytest.raises(ModelFormatError, match="1 inputs; the op takes 2"):
        engine.InferenceSession(m)


@pytest.mark.parametrize("opset, node, feeds", [
    (1, ("Pad", {"paddings": [1, 2], "mode": "constant", "value": 3.0}), [np.arange(3, dtype=np.float32)]),
    (9, ("Slice", {"starts": [1], "ends": [3]}), [np.arange(4, dtype=np.float32)]),
    (9, ("TopK", {"k": 2}), [np.array([[1.0, 5.0, 3.0]], np.float32)]),
    (11, ("Softmax", {"axis": 1}), [np.arange(24, dtype=np.float32).reshape(2, 3, 4)]),
    (17, ("DFT", {"axis": 1}), [np.arange(8, dtype=np.float32).reshape(1, 8, 1)]),
])
def test_old_op_versions_are_upgraded_faithfully(opset, node, feeds):
    """Old forms (attributes that became inputs, changed semantics) against onnxruntime at the
    same opset (onnx's reference evaluator below opset 7, which onnxruntime does not read; it
    gives Softmax-11 the newest semantics, so it cannot judge that one)."""
    op, attrs = node
    outs = ["y", "i"] if op == "TopK" else ["y"]
    n = onnx.helper.make_node(op, ["x"], outs, **attrs)
    m = _one_node_model(n, [_vi("x", list(feeds[0].shape))], [onnx.helper.make_value_info(o, onnx.TypeProto())
                                                                 for o in outs], opset, 8)
    if opset >= 7:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        want = sess.run(None, {"x": feeds[0]})
    else:
        want = ReferenceEvaluator(m).run(None, {"x": feeds[0]})
    got = engine.InferenceSession(m).run(None, {"x": feeds[0]})
    for w, g in zip(want, got):
        assert conformance.compare(np.asarray(w), g) is None


def test_cast_1_names_its_type():
    m = _one_node_model(onnx.helper.make_node("Cast", ["x"], ["y"], to="INT64"), [_vi("x", [2])],
                        [_vi("y", [2], 7)], 5, 8)
    got = engine.InferenceSession(m).run(None, {"x": np.array([1.5, -2.0], np.float32)})[0]
    assert got.dtype == np.int64 and got.tolist() == [1, -2]


# -- beyond the node suite: paths its cases do not reach, against onnxruntime -------------------
@pytest.mark.parametrize("op, gates", [("RNN", 1), ("GRU", 3), ("LSTM", 4)])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent_layers_with_sequence_lengths_match_onnxruntime(op, gates, direction):
    rng = np.random.default_rng(0)
    seq, batch, size, hidden, dirs = 5, 3, 4, 6, 2 if direction == "bidirectional" else 1
    params = {"W": (dirs, gates * hidden, size), "R": (dirs, gates * hidden, hidden), "B": (dirs, 2 * gates * hidden),
              "h0": (dirs, batch, hidden)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), k) for k, s in params.items()]
    inits.append(numpy_helper.from_array(np.array([5, 2, 3], np.int32), "L"))
    ins, outs = ["x", "W", "R", "B", "L", "h0"], ["Y", "Yh"]
    if op == "LSTM":
        inits += [numpy_helper.from_array(rng.standard_normal((dirs, batch, hidden)).astype(np.float32), "c0"),
                  numpy_helper.from_array(rng.standard_normal((dirs, 3 * hidden)).astype(np.float32), "P")]
        ins, outs = ins + ["c0", "P"], outs + ["Yc"]
    node = helper.make_node(op, ins, outs, hidden_size=hidden, direction=direction)
    g = helper.make_graph([node], "rnn", [_vi("x", [seq, batch, size])],
                          [helper.make_value_info(o, onnx.TypeProto()) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    x = rng.standard_normal((seq, batch, size)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for r, g_ in zip(ref, engine.InferenceSession(m).run(None, {"x": x})):
        np.testing.assert_allclose(g_, r, rtol=1e-4, atol=1e-5)


def test_control_flow_reads_outer_values_and_matches_onnxruntime():
    """If and Loop bodies that read values of the enclosing graph (the frontend makes them
    explicit inputs of the node)."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["t"])], "then", [], [_vi("t", [3])])
    other = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["e"])], "else", [], [_vi("e", [3])])
    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "x"], ["acc2"]), helper.make_node("Identity", ["c"], ["c2"]),
         helper.make_node("Mul", ["acc2", "w"], ["scan"])], "body",
        [_vi("i", [], 7), _vi("c", [], 9), _vi("acc", [3])], [_vi("c2", [], 9), _vi("acc2", [3]), _vi("scan", [3])])
    nodes = [helper.make_node("Relu", ["x0"], ["x"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
             helper.make_node("Loop", ["n", "", "y"], ["final", "stacked"], body=body)]
    g = helper.make_graph(nodes, "cf", [_vi("x0", [3]), _vi("cond", [], 9)],
                          [_vi("final", [3]), _vi("stacked", [4, 3])],
                          [numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "w"),
                           numpy_helper.from_array(np.array(4, np.int64), "n")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    sess = engine.InferenceSession(m)
    for cond in (True, False):
        feed = {"x0": np.array([-1.0, 0.5, 2.0], np.float32), "cond": np.array(cond)}
        ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
        for r, g_ in zip(ref, sess.run(None, feed)):
            np.testing.assert_allclose(g_, r, rtol=1e-6)
