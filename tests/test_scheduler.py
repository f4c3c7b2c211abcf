"""Placement, fallback, crossings, overrides, strict mode and pools, proven with a backend that
lives only in tests/ (adding a backend needs no change in engine/)."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine
from engine.backend import Backend, Executor, register_backend
from engine.errors import UnsupportedOpError
from tests.oracle import assert_close, ort_run


class DevTensor:
    """A tensor in the test device's own memory: not a numpy array the engine could touch."""

    def __init__(self, buf, offset, shape, dtype):
        self.buf, self.offset, self.shape, self.dtype = buf, offset, tuple(shape), np.dtype(dtype)

    def array(self):
        n = int(np.prod(self.shape)) * self.dtype.itemsize
        return self.buf[self.offset:self.offset + n].view(self.dtype).reshape(self.shape)


@register_backend("testdev")
class ToyDevice(Backend):
    """Runs Relu, Add, Mul, Conv and Transpose on numpy buffers it owns; declines the rest."""
    alignment = 256

    def _alloc(self, nbytes):
        return np.zeros(nbytes, np.uint8)

    def view(self, buf, offset, shape, dtype):
        assert offset % self.alignment == 0 or buf is not None
        return DevTensor(buf, offset, shape, dtype)

    def write(self, tensor, host):
        np.copyto(tensor.array(), host)

    def read(self, tensor, host):
        np.copyto(host, tensor.array())


@ToyDevice.op("Relu", "Add", "Mul", "Conv", "Transpose")
class DevExecutor(Executor):
    @classmethod
    def supports(cls, backend, node, ins, outs):
        if any(i is not None and i.dtype != np.float32 for i in ins):
            return "float32 only"
        return None

    def run(self):
        from backends.cpu.kernels import KERNELS
        res = KERNELS[self.node.op](self.node, *[t.array() if t is not None else None for t in self.inputs])
        np.copyto(self.outputs[0].array(), res)


def _model():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["s"], name="sigmoid"),          # testdev lacks it
        helper.make_node("Add", ["s", "r"], ["a"], name="add"),             # s crosses back
        helper.make_node("Mul", ["s", "a"], ["m"], name="mul"),             # s used twice on testdev
        helper.make_node("Transpose", ["m"], ["t"], name="transpose", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["flat"], name="reshape"),
        helper.make_node("TopK", ["flat", "k"], ["vals", "idx"], name="topk", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("vals", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("idx", TensorProto.INT64, None),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
         numpy_helper.from_array(np.array([5], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def feed():
    return {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}


def test_fallback_runs_declined_ops_on_cpu_and_matches_onnxruntime(feed, caplog):
    model = _model()
    with caplog.at_level("WARNING", logger="mixnn"):
        sess = engine.InferenceSession(model, backend="testdev", fallback="cpu", optimize=False)
        outs = sess.run(None, feed)
    for got, ref, name in zip(outs, ort_run(model, feed), ["vals", "idx", "a"]):
        assert_close(got, ref, what=name)
    place = sess.placement()
    assert {k: v["backend"] for k, v in place.items()} == {
        "conv": "testdev", "relu": "testdev", "sigmoid": "cpu", "add": "testdev", "mul": "testdev",
        "transpose": "testdev", "reshape": "cpu", "topk": "cpu"}
    assert place["sigmoid"]["reason"].startswith("fallback: no testdev kernel for Sigmoid")
    assert place["conv"]["reason"] == "primary"
    lines = [r.getMessage() for r in caplog.records]
    assert "testdev: 5/8 nodes, 3 on cpu (Reshape, Sigmoid, TopK)" in lines


def test_each_crossing_value_is_copied_once(feed):
    sess = engine.InferenceSession(_model(), backend="testdev", optimize=False)
    sess.run(None, feed)
    crossings = [(v, s, d) for v, s, d, _ in sess._plan.crossings]
    # r: testdev->cpu (sigmoid); s: cpu->testdev (read by add AND mul: copied once); t: testdev->cpu
    assert sorted(crossings) == [("r", "testdev", "cpu"), ("s", "cpu", "testdev"), ("t", "testdev", "cpu")]
    steps = [k for k, _ in sess._plan.steps]
    assert steps.count("copy") == 3
    prof = sess.profile()
    assert len(prof["copies"]) == 3 and {n["backend"] for n in prof["nodes"]} == {"testdev", "cpu"}


def test_overrides_move_named_nodes_and_op_types(feed):
    model = _model()
    sess = engine.InferenceSession(model, backend="testdev", optimize=False,
                                   placement={"relu": "cpu", "Mul": "cpu"})
    outs = sess.run(None, feed)
    place = sess.placement()
    assert place["relu"] == {"op": "Relu", "backend": "cpu", "reason": "override"}
    assert place["mul"]["backend"] == "cpu" and place["conv"]["backend"] == "testdev"
    for got, ref in zip(outs, ort_run(model, feed)):
        assert_close(got, ref)


def test_strict_mode_raises_listing_what_would_fall_back(feed):
    sess = engine.InferenceSession(_model(), backend="testdev", strict=True, optimize=False)
    with pytest.raises(UnsupportedOpError, match=r"strict mode: testdev: 5/8 nodes.*sigmoid \(Sigmoid\)"):
        sess.run(None, feed)


def test_override_to_a_backend_that_declines_is_an_error(feed):
    sess = engine.InferenceSession(_model(), backend="testdev", placement={"topk": "testdev"}, optimize=False)
    with pytest.raises(UnsupportedOpError, match="topk"):
        sess.run(None, feed)


def test_pools_allocate_nothing_in_steady_state(feed):
    sess = engine.InferenceSession(_model(), backend="testdev", optimize=False)
    sess.run(None, feed)
    for _ in range(20):
        sess.run(None, feed)
    mem = sess.memory()
    assert mem["testdev"]["allocations_last_run"] == 0 and mem["cpu"]["allocations_last_run"] == 0
    assert 0 < mem["testdev"]["arena_bytes"] <= mem["testdev"]["naive_bytes"]
    assert mem["testdev"]["arena_bytes"] % 256 == 0
    assert mem["testdev"]["lower_bound_bytes"] <= mem["testdev"]["arena_bytes"]


def test_unknown_backend_and_bad_device_index():
    with pytest.raises(engine.BackendUnavailable, match="no backend named 'nope'"):
        engine.InferenceSession(_model(), backend="nope")
    with pytest.raises(engine.BackendUnavailable, match="device index"):
        engine.InferenceSession(_model(), backend="cpu:x")


def test_auto_mode_picks_a_measured_placement_and_stays_correct(feed, caplog):
    model = _model()
    with caplog.at_level("INFO", logger="mixnn"):
        sess = engine.InferenceSession(model, backend="testdev", mode="auto", optimize=False)
        outs = sess.run(None, feed)
    for got, ref in zip(outs, ort_run(model, feed)):
        assert_close(got, ref)
    reasons = {p["reason"].split(":")[0] for p in sess.placement().values()}
    assert reasons <= {"primary", "fallback", "cost"}
    assert any(r.getMessage().startswith("auto placement: ") and "all-cpu" in r.getMessage()
               for r in caplog.records)
