"""Arena planning and steady state on the CPU: no pool allocation and no Python memory growth
across runs, an arena close to the lower bound, one re-plan per shape change."""
import gc
import tracemalloc

import numpy as np
import onnx
import pytest

import engine
from engine import models, zoo
from engine.memory import Block, lower_bound, plan_arena
from tests.oracle import assert_close, ort_run


def test_plan_arena_never_overlaps_live_blocks():
    rng = np.random.default_rng(0)
    blocks = []
    for k in range(200):
        first = int(rng.integers(0, 100))
        blocks.append(Block(k, int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 10))))
    size = plan_arena(blocks, 64)
    for a in blocks:
        assert a.offset % 64 == 0 and a.offset + a.nbytes <= size
        for b in blocks:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset
    assert lower_bound(blocks, 64) <= size


def _steady(sess, feed, runs):
    sess.run(None, feed)
    backend = sess.backends["cpu"]
    before = backend.allocations
    gc.collect()
    tracemalloc.start()
    sess.run(None, feed)
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(runs):
        sess.run(None, feed)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return backend.allocations - before, grown


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_steady_state_and_arena_quality(name):
    sess = engine.InferenceSession(zoo.path(name), backend="cpu")
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    allocations, grown = _steady(sess, feed, 100)
    assert allocations == 0
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes over 100 runs"
    mem = sess.memory()["cpu"]
    assert mem["allocations_last_run"] == 0
    assert mem["arena_bytes"] <= 1.10 * mem["lower_bound_bytes"], mem
    assert mem["naive_bytes"] > mem["arena_bytes"]


def test_static_bytes_count_repacked_weights():
    """ResNet-18's Winograd layers keep U = G g G^T, (m+2)^2/9 times the kernel's bytes: the CPU's
    static_bytes must count them (they are not views of the model file)."""
    from backends.cpu.winograd import WinogradConv
    sess = engine.InferenceSession(zoo.path("resnet18"), backend="cpu")
    sess.run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})
    convs = [e for kind, p in sess._plan.steps if kind == "subgraph" for e in p[1] if isinstance(e, WinogradConv)]
    assert convs
    winograd = sum(4 * e.a * e.a * e.g.m * e.g.c for e in convs)
    static = sess.memory()["cpu"]["static_bytes"]
    assert static >= winograd, (static, winograd)


def test_ppocr_det_alternating_shapes():
    path = models.find("ppocr_det")
    sess = engine.InferenceSession(path)
    proto = onnx.load(path)
    rng = np.random.default_rng(0)
    feeds = [{"x": ((rng.random(s) - 0.5) / 0.25).astype(np.float32)} for s in [(1, 3, 96, 128), (1, 3, 64, 160)]]
    refs = [ort_run(proto, f) for f in feeds]
    backend = sess.backends["cpu"]
    sizes = []
    for k in range(20):
        out = sess.run(None, feeds[k % 2])
        assert_close(out[0], refs[k % 2][0], what=f"run {k}")
        assert sess.replans == k + 1  # exactly one re-plan per change of shape
        if k == 1:
            allocations = backend.allocations
            tracemalloc.start()
        if k == 3:  # both plans of the cycle were made while tracing: compare like with like
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
        sizes.append(sess.memory()["cpu"]["arena_bytes"])
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert backend.allocations == allocations, "the arena was re-allocated although it was big enough"
    assert grown < 256 * 1024, f"memory grew by {grown} bytes over 16 alternating runs"
    assert len(set(sizes[2:])) == 2


def test_release_memory_gives_the_arena_back():
    sess = engine.InferenceSession(zoo.path("squeezenet1_1"))
    feed = {"input": np.zeros((1, 3, 64, 64), np.float32)}
    sess.run(None, feed)
    assert sess.pools["cpu"].capacity > 0
    sess.release_memory()
    assert sess.pools["cpu"].capacity == 0
    assert sess.run(None, feed)[0].shape == (1, 1000)
