"""The CPU backend's thread pool (backends/cpu/parallel.py, jit_threads.py): OpenBLAS's GEMM
jobs and the executors' shared stages on the same helper threads. Results are checked against
float64 products and single-threaded sessions; a pool that deadlocks fails by timeout."""
import threading
import time

import numpy as np
import pytest

import engine
from backends.cpu import parallel
from conftest import need_numba
from engine import zoo


@pytest.fixture(autouse=True)
def no_contention_carried_over():
    """A test whose threads outnumber the CPUs (two sessions at once, a CPU hog) leaves the pool
    working alone for CONTENDED_S: the next test starts without that."""
    if parallel.pool_available():
        parallel.pool(2).quiet_until = 0.0
    yield


@pytest.fixture
def pool(monkeypatch):
    need_numba()
    monkeypatch.setattr(parallel, "MISSES_ALONE", 1 << 62)  # as two_threads (conftest.py)
    with parallel.running(2) as run:
        assert run.pool.wait_awake()
        yield run.pool


def native_jobs(pool):
    jt = pool.jt
    return int(pool.ctl[jt.DONE])  # helper 1's count


def helper_takes_part(pool, exe, tries=500):
    """Run exe until the helper has run its native job: a caller that finishes every part first
    takes the job back, so one run proves nothing. Whoever did which part, the output stays."""
    ref = exe.outputs[0].copy()
    before = native_jobs(pool)
    for _ in range(tries):
        exe.run()
        if native_jobs(pool) > before:
            break
    np.testing.assert_array_equal(exe.outputs[0], ref)
    assert native_jobs(pool) > before, "the helper never took its part"


def test_blas_gemms_run_on_the_helper(pool):
    if parallel.blas().set_callback is None:
        pytest.skip("this OpenBLAS has no openblas_set_threads_callback_function (OpenBLAS < 0.3.27)")
    if parallel.blas().threads() != 2:
        pytest.skip("BLAS is not on two threads here")  # pragma: no cover - the pool follows BLAS's count
    assert pool.installed
    rng = np.random.default_rng(0)
    before = native_jobs(pool)
    for m, k, n in [(256, 1152, 196), (24, 96, 3000), (300, 301, 302), (7, 5, 3)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        ref = a.astype(np.float64) @ b
        np.testing.assert_allclose(a @ b, ref, rtol=1e-4, atol=1e-3 * np.sqrt(k))
    assert native_jobs(pool) > before, "no GEMM job reached the helper"


def test_callback_only_while_running():
    need_numba()
    p = parallel.pool(2)
    with parallel.running(2):
        inside = p.installed
    assert not p.installed
    if parallel.blas().set_callback is not None and parallel.blas().threads() == 2:
        assert inside


def test_chunks_use_both_threads(pool):
    workers = []

    def item(worker, k):
        time.sleep(0.002)  # releases the GIL: the helper can take items meanwhile
        workers.append((worker, k))
    parallel.chunks(item, [(k,) for k in range(20)])
    assert sorted(k for _, k in workers) == list(range(20))
    assert {w for w, _ in workers} == {0, 1}


def test_shared_stage_runs_blas_on_one_thread(pool):
    before, seen = parallel.blas().threads(), []
    parallel.chunks(lambda worker, k: (time.sleep(0.002), seen.append(parallel.blas().threads())),
                    [(k,) for k in range(6)])
    assert set(seen) == {1}
    assert parallel.blas().threads() == before  # restored after the stage


def test_shared_stage_reraises_and_pool_survives(pool):
    def boom(worker, k):
        time.sleep(0.001)
        if k == 3:
            raise ValueError("item 3 failed")
    with pytest.raises(ValueError, match="item 3 failed"):
        parallel.chunks(boom, [(k,) for k in range(8)])
    test_chunks_use_both_threads(pool)


def test_helper_sleeps_when_idle_and_wakes_for_a_run():
    need_numba()
    p = parallel.pool(2)
    jt = p.jt
    with parallel.running(2):
        assert p.wait_awake()
    deadline = time.monotonic() + 5
    while p.ctl[jt.STATE] != jt.SLEEP and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.ctl[jt.STATE] == jt.SLEEP, "an idle helper outside any run keeps spinning"
    with parallel.running(2):
        assert p.wait_awake()


def test_sessions_in_two_threads_at_once():
    """Two sessions run concurrently from two Python threads, both with threads=2: they share
    one helper; every result matches a one-thread session's."""
    need_numba()
    name = "resnet18"
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = engine.InferenceSession(zoo.path(name), backend="cpu", threads=1).run(None, {"input": x})[0]
    results, errors = [], []

    def worker():
        try:
            s = engine.InferenceSession(zoo.path(name), backend="cpu", threads=2)
            for _ in range(3):
                results.append(s.run(None, {"input": x})[0])
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "sessions sharing the pool deadlocked"
    assert not errors, errors
    assert len(results) == 6
    for r in results:
        np.testing.assert_allclose(r, ref, rtol=1e-3, atol=1e-3)


def test_caller_held_on_one_cpu_only_during_a_run():
    """During a run the caller stays on one CPU and the helper on the others (see
    Pool._place); after it, the caller's own CPU set is back."""
    import os
    need_numba()
    mine = os.sched_getaffinity(0)
    p = parallel.pool(2)
    with parallel.running(2):
        inside = os.sched_getaffinity(0)
        helper = os.sched_getaffinity(p.threads[0].native_id)
    assert os.sched_getaffinity(0) == mine
    if len(mine) >= 2:
        assert len(inside) == 1 and inside <= mine and not (inside & helper)


@pytest.mark.parametrize("x_shape, attrs, blocks", [
    ((2, 12, 17, 15), {"group": 12, "pads": [1, 1, 1, 1]}, False),
    ((1, 7, 19, 22), {"group": 7, "pads": [2, 1, 2, 1], "strides": [2, 2]}, False),
    ((2, 70, 17, 15), {"group": 70, "pads": [1, 1, 1, 1]}, True),
    ((1, 50, 19, 22), {"group": 50, "pads": [2, 1, 2, 1], "strides": [2, 2]}, True),
])
def test_depthwise_halves_as_one_native_job(two_threads, monkeypatch, x_shape, attrs, blocks):
    """The compiled depthwise's channel ranges, taken by the caller and the helper
    (parallel.pair), match onnxruntime, on the flat paths and by channel blocks (whole blocks
    per range); the helper really ran its part."""
    from backends.cpu import depthwise, jit_gemm
    from test_cpu_fast import check_conv
    monkeypatch.setattr(depthwise, "JIT_SPLIT_MIN", 0)
    monkeypatch.setattr(depthwise, "BLOCKED", blocks)
    c = x_shape[1]
    k = 5 if attrs.get("strides") else 3
    exe = check_conv(x_shape, (c, 1, k, k), attrs, "DepthwiseConv", act="Relu")
    assert type(exe).__name__ == "CompiledDepthwise" and len(exe.jobs) == x_shape[0]
    assert exe.by_blocks == blocks
    if blocks:
        assert all(lo % jit_gemm.LANES == 0 for lo, _ in exe.ranges) and exe.ranges[-1][1] == c
        assert sum(hi > lo for lo, hi in exe.ranges) >= 2
    helper_takes_part(two_threads, exe)


def _run_in_child(queue):
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    s = engine.InferenceSession(zoo.path("squeezenet1_1"), backend="cpu", threads=2)
    queue.put(s.run(None, {"input": x})[0])


def test_forked_child_gets_a_pool_of_its_own():
    """multiprocessing's fork start method copies the pool but not its threads: the child must
    not hand GEMMs to helpers that do not exist (it would hang)."""
    import multiprocessing
    need_numba()
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    s = engine.InferenceSession(zoo.path("squeezenet1_1"), backend="cpu", threads=2)
    ref = s.run(None, {"input": x})[0]  # the parent's pool exists and has run
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("unit, x_shape, attrs, act", [
    (2, (1, 9, 27, 19), {"pads": [1, 1, 1, 1]}, "Relu"),
    (4, (2, 12, 37, 23), {"pads": [1, 0, 2, 1]}, "SiLU"),
    (6, (1, 5, 30, 31), {"pads": [1, 1, 1, 1]}, "Clip"),
])
def test_winograd_blocks_as_one_native_job(two_threads, monkeypatch, unit, x_shape, attrs, act):
    """The compiled Winograd blocks claimed from an atomic counter by the caller and the helper
    (jit_winograd.block_job: transforms and cblas_sgemm without the GIL) match onnxruntime, for
    every unit, a batch of two and uneven pads."""
    from backends.cpu import jit, winograd
    from test_cpu_fast import WINOGRAD_SCALE, check_conv
    if parallel.blas().sgemm64 is None:
        pytest.skip("numpy's BLAS is not the ILP64 scipy-openblas64 (no native Winograd job)")
    monkeypatch.setattr(winograd, "best_unit", lambda g: unit if winograd.applies(g) else 1)
    monkeypatch.setattr(winograd, "compiled_pays", lambda g, m: jit.available())
    monkeypatch.setattr(winograd, "PASS_BYTES", 1 << 12)  # several passes per block as well
    exe = check_conv(x_shape, (7, x_shape[1], 3, 3), attrs, "WinogradConv", act=act, scale=WINOGRAD_SCALE[unit])
    assert exe.jobs and len(exe.jobs) == x_shape[0] and len(exe.blocks) >= 2
    helper_takes_part(two_threads, exe)


@pytest.mark.parametrize("path", ["planes", "blocks"])
def test_max_pool_planes_as_one_native_job(two_threads, monkeypatch, path):
    """MaxPool's planes claimed by the caller and the helper (jit_pool.pool_job, each with its
    own R; or jit_depthwise.depthwise_job by channel blocks), match onnxruntime over the
    geometries test_cpu_jit_pool.py checks."""
    from backends.cpu import fast_ops
    from test_cpu_jit_pool import GEOMETRIES, onnx_pool, run_pool
    import backends.cpu
    from engine.ir import Node
    from engine.ops import TensorInfo
    monkeypatch.setattr(fast_ops, "POOL_SHARE_FLOATS", 0)
    monkeypatch.setattr(fast_ops, "POOL_BLOCKS", path == "blocks")
    monkeypatch.setattr(fast_ops, "POOL_BLOCK_BYTES", 1 << 40)
    rng = np.random.default_rng(3)
    for shape, attrs in GEOMETRIES:
        x = rng.standard_normal(shape).astype(np.float32)
        ref = onnx_pool(x, attrs)
        np.testing.assert_array_equal(run_pool(x, attrs, ref.shape, path), ref, err_msg=str((shape, attrs)))
    x = rng.standard_normal((2, 24, 27, 27)).astype(np.float32)  # 48 planes: three channel blocks
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    ref = onnx_pool(x, attrs)
    exe = backends.cpu.CpuBackend().create(Node("MaxPool", ["x"], ["y"], "pool", attrs), [TensorInfo(x.shape, x.dtype)],
                                           [TensorInfo(ref.shape, x.dtype)])
    y = np.empty_like(ref)
    exe.bind([x], [y], np.empty(exe.scratch_bytes(), np.uint8))
    exe.run()
    np.testing.assert_array_equal(y, ref)
    helper_takes_part(two_threads, exe)


@pytest.mark.parametrize("act", ["Relu", "Clip", "SiLU", "HardSwish", "LeakyRelu", "HardSigmoid"])
def test_epilogue_rows_as_one_native_job(two_threads, monkeypatch, act, im2col_gemm):
    """A 1x1 convolution's bias + activation pass split by rows between the caller and the
    helper (jit_epilogue.epilogue_job) matches onnxruntime."""
    from backends.cpu import gemm
    from test_cpu_fast import check_conv
    monkeypatch.setattr(gemm, "EPILOGUE_SHARE_FLOATS", 0)
    monkeypatch.setattr(parallel, "MIN_MACS", None)  # one GEMM, then the epilogue (inside a
    # shared stage it would run on its own thread)
    exe = check_conv((1, 24, 19, 21), (40, 24, 1, 1), {}, "PointwiseConv", act=act)
    check_conv((1, 5, 19, 21), (3, 5, 1, 1), {}, "PointwiseConv", act=act)  # fewer rows than parts
    helper_takes_part(two_threads, exe)


@pytest.mark.parametrize("unit", [2, 4])
@pytest.mark.parametrize("with_helper", [True, False])
def test_winograd_whole_layer_job(monkeypatch, unit, with_helper):
    """A layer whose transformed weights dominate runs as one block whose a*a GEMMs both threads
    take from a counter (jit_winograd.layer_job); with the helper busy or asleep the caller
    runs both parts one after the other and must neither wait for the other part nor skip a
    GEMM. Both match onnxruntime."""
    import contextlib
    from backends.cpu import winograd
    from test_cpu_fast import WINOGRAD_SCALE, check_conv
    need_numba()
    if parallel.blas().sgemm64 is None:
        pytest.skip("numpy's BLAS is not the ILP64 scipy-openblas64 (no native Winograd job)")
    monkeypatch.setattr(parallel, "threads_of", lambda backend: 2)
    monkeypatch.setattr(winograd, "best_unit", lambda g: unit if winograd.applies(g) else 1)
    monkeypatch.setattr(winograd, "compiled_pays", lambda g, m: False)  # taken over by the whole-layer job
    monkeypatch.setattr(winograd, "WHOLE_U_BYTES", 0)
    monkeypatch.setattr(winograd, "SHARE_MACS", 0)
    with (parallel.running(2) if with_helper else contextlib.nullcontext()) as run:
        if with_helper:
            assert run.pool.wait_awake()
        exe = check_conv((1, 16, 13, 11), (24, 16, 3, 3), {"pads": [1, 1, 1, 1]}, "WinogradConv", act="Relu",
                         scale=WINOGRAD_SCALE[unit])
    assert exe.whole and exe.compiled and exe.jobs and len(exe.blocks) == 1


def test_native_job_runs_without_any_pool(monkeypatch):
    """An executor planned for two threads but run outside any session, before a pool exists
    (parallel.pair then runs both parts on the caller), still matches onnxruntime."""
    from backends.cpu import depthwise
    from test_cpu_fast import check_conv
    need_numba()
    monkeypatch.setattr(parallel, "threads_of", lambda backend: 2)
    monkeypatch.setattr(parallel, "_pool", None)
    monkeypatch.setattr(depthwise, "JIT_SPLIT_MIN", 0)
    exe = check_conv((1, 12, 17, 15), (12, 1, 3, 3), {"group": 12, "pads": [1, 1, 1, 1]}, "DepthwiseConv", act="Relu")
    assert exe.jobs and parallel._pool is None


def _packed_exe(monkeypatch):
    """A packed-GEMM convolution planned for two threads (its native job: parallel.pair)."""
    from backends.cpu import winograd
    from test_cpu_fast import check_conv
    monkeypatch.setattr(winograd, "best_unit", lambda g: 1)
    exe = check_conv((1, 32, 30, 30), (64, 32, 3, 3), {"pads": [1, 1, 1, 1]}, "PackedConv", act="Relu")
    assert exe.workers == 2
    return exe


def test_a_missed_job_leaves_the_run_to_the_caller(two_threads, monkeypatch):
    """After the helper missed a job (its CPU busy: jit_threads MISSES), the rest of the run and
    the runs starting within CONTENDED_S work on the caller alone -- BLAS on one thread, no
    native job handed over -- and the next run after that uses the helper again."""
    pool = two_threads
    monkeypatch.setattr(parallel, "MISSES_ALONE", 2)
    exe = _packed_exe(monkeypatch)
    ref = exe.outputs[0].copy()
    blas_threads = parallel.blas().threads()
    jt = pool.jt
    assert not pool.contended()
    base = int(pool.ctl[jt.MISSES])
    pool.misses_seen = base  # as at the run's start
    pool.ctl[jt.MISSES] = base + 1  # as the native code counts a miss
    assert not pool.contended()  # one miss is forgiven (a helper still moving to its CPU)
    pool.ctl[jt.MISSES] = base + 2
    done = native_jobs(pool)
    for _ in range(20):
        exe.run()
    np.testing.assert_array_equal(exe.outputs[0], ref)
    assert native_jobs(pool) == done and pool.contended()
    assert parallel.blas().threads() == 1
    pool.exit()  # the run ends (the fixture's `running` entered it)
    assert parallel.blas().threads() == blas_threads
    pool.enter()  # a run within CONTENDED_S: alone from its start
    assert pool.contended() and parallel.blas().threads() == 1
    pool.exit()
    pool.quiet_until = time.perf_counter() - 1  # CONTENDED_S later
    pool.enter()
    assert not pool.contended() and parallel.blas().threads() == blas_threads
    assert pool.wait_awake()
    monkeypatch.setattr(parallel, "MISSES_ALONE", 1 << 62)  # a busy CI machine's own misses aside
    helper_takes_part(pool, exe)


def test_helper_on_a_busy_cpu_is_noticed(two_threads, monkeypatch):
    """A process spinning on the helper's CPU (as another runtime's pool does after its runs):
    the helper, alive but off its CPU, misses a job within a few hundred runs, and the run goes
    on alone with the same result."""
    import multiprocessing
    pool = two_threads
    monkeypatch.setattr(parallel, "MISSES_ALONE", 2)
    exe = _packed_exe(monkeypatch)
    ref = exe.outputs[0].copy()
    helper_cpus = pool.cpus - {pool.caller_cpu}
    assert helper_cpus, "two CPUs needed"
    ctx = multiprocessing.get_context("spawn")
    hog = ctx.Process(target=_spin_on, args=(sorted(helper_cpus)[0], 30.0), daemon=True)
    hog.start()
    try:
        time.sleep(0.3)  # the hog is up and spinning
        end = time.monotonic() + 20
        while not pool.contended() and time.monotonic() < end:
            exe.run()
        np.testing.assert_array_equal(exe.outputs[0], ref)
        assert pool.contended(), "the helper never missed a job on a busy CPU"
    finally:
        hog.kill()
        hog.join()


def _spin_on(cpu, seconds):
    import os
    os.sched_setaffinity(0, {cpu})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize("strategy", ["winograd", "packed"])
def test_native_jobs_keep_what_they_point_at(two_threads, monkeypatch, strategy):
    """A native job's argument block holds addresses only: every array it points at must live as
    long as the executor. Garbage collection and fresh allocations full of NaN between bind and
    run must not change the result (a Winograd job's zero bias once lived only in a local, and
    its memory came back as other arrays: wrong outputs, only sometimes)."""
    import gc
    from backends.cpu import jit, winograd
    from test_cpu_fast import WINOGRAD_SCALE, check_conv
    if strategy == "winograd":
        monkeypatch.setattr(winograd, "best_unit", lambda g: 2 if winograd.applies(g) else 1)
        monkeypatch.setattr(winograd, "compiled_pays", lambda g, m: jit.available())
        exe = check_conv((1, 8, 14, 14), (256, 8, 3, 3), {"pads": [1, 1, 1, 1]}, "WinogradConv", act="Relu",
                         scale=WINOGRAD_SCALE[2])
    else:
        monkeypatch.setattr(winograd, "best_unit", lambda g: 1)
        exe = check_conv((1, 8, 15, 15), (70, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "PackedConv",
                         act="Relu")
    assert exe.jobs
    ref = exe.outputs[0].copy()
    for _ in range(3):
        gc.collect()
        junk = [np.full(n, np.nan, np.float32) for n in (16, 64, 256, 384, 1024, 4096) for _ in range(50)]
        exe.run()
        del junk
        np.testing.assert_array_equal(exe.outputs[0], ref)
