"""The CPU backend's threads: one pool for OpenBLAS's GEMMs and the executors' own stages.

OpenBLAS splits a GEMM between its threads, and its idle workers spin on the other cores for
a while after every GEMM. Work of our own on a second thread (depthwise channels, Winograd
tile rows, im2col bands) then competes with that spinning worker: measured on this 2-core VM,
a Python helper next to OpenBLAS's pool turned MobileNetV2's 9 ms into 20-160 ms
(docs/cpu.md). onnxruntime and MNN run everything on one pool; so does mixnn now:

* `Pool` keeps `threads - 1` helper threads. Idle, a helper spins in compiled code without the
  GIL (jit_threads.spin) -- for as long as a session runs, and SPIN_CYCLES after -- then sleeps
  on a futex, from which a run's start wakes it without needing the GIL.
* While a session runs (`running()`), OpenBLAS hands its threaded GEMMs' jobs to the pool
  (openblas_set_threads_callback_function, in OpenBLAS since 0.3.27): job 0 on the calling
  thread, the others on the helpers, a hand-off of well under a microsecond.
* Compiled kernels run as native jobs (`pair`): a cfunc that the caller and the helper run at
  once, taking parts of the work from an atomic counter, without the GIL (depthwise, Winograd
  blocks with cblas_sgemm, MaxPool planes, large epilogues).
* Executors share stages of several numpy/numba calls with `chunks(fn, items, workers)`: the
  items are claimed one at a time by the caller and the helper (a Python job: the helper leaves
  its loop and takes the GIL, which the caller gives up inside numba's and numpy's loops).
  GEMMs inside a shared stage run on one thread each (BLAS is set to one thread for the stage).
* A helper that is busy or asleep is not waited for by either: the caller does every part.

Without numba (MIXNN_JIT=0) or off Linux there is no pool: OpenBLAS keeps its own threads and
the executors run their stages on the calling thread. With an OpenBLAS that lacks the callback,
OpenBLAS keeps its threads and the pool only shares the stages.
MIXNN_SERIAL_BLAS=1 keeps BLAS on one thread for machines whose cores are shared with other
processes (a descheduled BLAS worker stalls every GEMM for a time slice, docs/cpu.md); the
pool's helpers still share the stages then.
"""
import contextlib
import os
import sys
import threading
import time

import numpy as np

from . import jit

# Work below this many float elements per split stage runs on the calling thread alone.
MIN_ELEMENTS = 1 << 21
# GEMMs of at least this many multiply-adds are cut into chunks shared by the pool's threads,
# each chunk's GEMM on one thread with its epilogue (None: never; OpenBLAS then splits the
# GEMM itself through the pool and the epilogue runs on the caller).
MIN_MACS = None
SERIAL_BLAS = os.environ.get("MIXNN_SERIAL_BLAS") == "1"


def threads_of(backend):
    """The session's thread count (None: every core)."""
    n = getattr(getattr(backend, "config", None), "threads", None)
    return int(n) if n else (os.cpu_count() or 1)


def helper_allowed(backend):
    """Whether executors may share stages with the pool's helpers: two or more threads and a
    pool to run them (see the module docstring)."""
    return threads_of(backend) >= 2 and pool_available()


def worth_splitting(backend, elements):
    return helper_allowed(backend) and elements >= MIN_ELEMENTS


def gemm_workers(backend, macs, share_at=None):
    """How many threads share a stage of `macs` multiply-adds in chunks (each chunk's GEMM on
    one thread): 1 or 2. `share_at` is the executor's own threshold; MIN_MACS overrides it."""
    limit = MIN_MACS if MIN_MACS is not None else share_at
    return 2 if limit is not None and helper_allowed(backend) and macs >= limit else 1


class _Blas:
    """numpy's OpenBLAS through ctypes: thread count and threads callback (found through
    threadpoolctl; every handle None when it or the symbol is missing)."""

    def __init__(self):
        self.get_threads = self.set_threads = self.set_callback = self.sgemm64 = None
        try:
            import ctypes
            from threadpoolctl import ThreadpoolController
            libs = [c for c in ThreadpoolController().lib_controllers if c.internal_api == "openblas"]
        except Exception:  # no threadpoolctl, or a BLAS it cannot drive: leave BLAS as it is
            return
        if not libs:
            return
        lib = libs[0]
        prefix, suffix = getattr(lib, "_symbol_prefix", ""), getattr(lib, "_symbol_suffix", "")

        def symbol(name):
            for full in (f"{prefix}{name}{suffix}", name):
                fn = getattr(lib.dynlib, full, None)
                if fn is not None:
                    return fn
            return None
        # cblas_sgemm for compiled jobs, only from an ILP64 build whose integers we know
        # (numpy's scipy-openblas64: suffix 64_); None elsewhere.
        self.sgemm64 = None
        if suffix == "64_" and symbol("cblas_sgemm") is not None:
            self.sgemm64 = ctypes.cast(symbol("cblas_sgemm"), ctypes.c_void_p).value
        self.get_threads = symbol("openblas_get_num_threads")
        self.set_threads = symbol("openblas_set_num_threads")
        self.set_callback = symbol("openblas_set_threads_callback_function")
        if self.set_threads is not None:
            self.set_threads.argtypes = [ctypes.c_int]
        if self.set_callback is not None:
            self.set_callback.argtypes = [ctypes.c_void_p]

    def threads(self):
        return int(self.get_threads()) if self.get_threads is not None else 1

    def serial(self):
        if self.set_threads is not None and self.threads() != 1:
            self.set_threads(1)

    @contextlib.contextmanager
    def one_thread(self):
        """BLAS on one thread inside, its count restored after (~1 us each way)."""
        threads = self.threads() if self.set_threads is not None else 1
        if threads != 1:
            self.set_threads(1)
        try:
            yield
        finally:
            if threads != 1:
                self.set_threads(threads)


_blas = None
_blas_lock = threading.Lock()


def blas():
    global _blas
    with _blas_lock:
        if _blas is None:
            _blas = _Blas()
        return _blas


def serial_blas():
    """Before an executor's GEMMs: with MIXNN_SERIAL_BLAS=1, keep BLAS on one thread (cheap
    when it already is); while a run works alone (Pool.contended) it is on one thread too."""
    if SERIAL_BLAS:
        blas().serial()
    p = _pool
    if p is not None and p.depth:
        p.contended()


class _Job:
    """fn(worker, *items[i]) for every i, claimed one at a time by whichever thread is free."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items
        self.next, self.error = 0, None
        self.lock = threading.Lock()

    def work(self, worker):
        while self.error is None:
            with self.lock:
                i = self.next
                self.next = i + 1
            if i >= len(self.items):
                return
            try:
                self.fn(worker, *self.items[i])
            except BaseException as e:  # handed back to the caller, who re-raises it
                self.error = e


# Most helpers a pool holds (the control blocks are allocated once, 128 bytes each).
MAX_HELPERS = 63
# After a helper missed a job (jit_threads MISSES: its CPU is taken by another thread, such as
# onnxruntime's pool, which spins ~40 ms after each of its runs), the caller works alone --
# BLAS on one thread, native and Python jobs all on the caller -- for the rest of the run and
# the runs that start within this many seconds. Without it, a mixnn run right after an
# onnxruntime run took 16-18 ms instead of 1.5 (PP-OCR cls, docs/cpu.md "Contention").
CONTENDED_S = 0.1
# Misses within one run before it goes alone: one may be a helper still moving to its CPU at
# the run's start (Pool._place); a helper whose CPU is taken misses again within a few jobs.
MISSES_ALONE = 2


class Pool:
    """Helper threads around control blocks (jit_threads), grown to the largest `threads`
    any session asked for, minus one (the caller is the first thread)."""

    def __init__(self):
        from . import jit_threads as jt
        self.jt = jt
        raw = np.zeros(jt.BLOCK * (MAX_HELPERS + 1), np.int64)
        skip = (-raw.ctypes.data % 128) // 8
        self.ctl = raw[skip:skip + jt.BLOCK * MAX_HELPERS]
        self.ctl.reshape(MAX_HELPERS, jt.BLOCK)[:, jt.STATE] = jt.SLEEP  # no thread behind them yet
        self.base = int(self.ctl.ctypes.data)
        self.helpers = []
        self.threads = []
        try:
            self.cpus = frozenset(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = frozenset()
        self.caller_cpu = None
        self.saved = None  # (thread, its CPU set) while the caller is held on one CPU (_place)
        self.lock = threading.Lock()
        self.depth = 0
        self.installed = False
        self.blas = blas()
        self.misses_seen = 0
        self.quiet_until = 0.0   # time.perf_counter() before which runs start alone
        self.alone = None        # while a run works alone: BLAS's thread count to restore
        self.callback = None
        if self.blas.set_callback is not None and not SERIAL_BLAS:
            jt.set_blas_blocks(self.base)
            self.callback = jt.blas_callback

    def block(self, i):
        return self.base + 8 * self.jt.BLOCK * i

    def grow(self, helpers):
        with self.lock:
            while len(self.helpers) < min(helpers, MAX_HELPERS):
                i = len(self.helpers)
                self.ctl[self.jt.BLOCK * i + self.jt.STATE] = self.jt.IDLE
                self.helpers.append([self.block(i), None])  # block address, pending Python job
                t = threading.Thread(target=self._loop, args=(i,), name=f"mixnn-cpu-{i + 1}", daemon=True)
                t.start()
                self.threads.append(t)
            self.caller_cpu = None  # place the new ones at the next run

    def _loop(self, i):
        jt, h = self.jt, self.helpers[i]
        while True:
            jt.spin(h[0])  # returns for a Python job only; sleeps and wakes in native code
            job, h[1] = h[1], None
            job.work(i + 1)
            jt.put(h[0], jt.STATE, jt.IDLE)

    def wait_awake(self, timeout=2.0):
        """Until every helper is in its loop (tests: a shared stage then really is shared)."""
        import time
        end = time.monotonic() + timeout
        states = self.ctl.reshape(MAX_HELPERS, self.jt.BLOCK)[:len(self.helpers), self.jt.STATE]
        while (states == self.jt.SLEEP).any() and time.monotonic() < end:
            time.sleep(0.001)
        return not (states == self.jt.SLEEP).any()

    # -- a session's run -----------------------------------------------------------------
    def __enter__(self):
        self.enter()
        return self

    def __exit__(self, *exc):
        self.exit()

    def enter(self):
        with self.lock:
            self.depth += 1
            if self.depth > 1:
                return
            self.misses_seen = int(self.ctl[self.jt.MISSES])
            if self.quiet_until and time.perf_counter() < self.quiet_until:
                self._alone()
                return
            self.quiet_until = 0.0
            self._place()
            for k, (block, _) in enumerate(self.helpers):
                self.ctl[self.jt.BLOCK * k + self.jt.ACTIVE] = 1
                self.jt.wake(block)
            if self.callback is not None and 1 < self.blas.threads() <= len(self.helpers) + 1:
                self.blas.set_callback(self.callback.address)
                self.installed = True

    def _place(self):
        """Keep the caller and the helpers on different CPUs for the run. Linux wakes a thread
        on its waker's CPU: a helper woken at a run's start, and the caller woken when the
        helper gave back the GIL, ended up sharing one core while the other idled, stalling
        GEMMs for 4-16 ms until the load balancer moved one (SqueezeNet 7 -> 25-80 ms for a run
        after 0.15 s idle, as `mixnn bench` runs; keeping only the helpers off the caller's
        CPU was not enough). So the caller is held on its current CPU until `exit`, and the
        helpers may run on every other CPU the process may use."""
        self.saved = None
        if len(self.cpus) < 2:
            return
        cpu = self.jt.current_cpu()
        try:
            mine = os.sched_getaffinity(0)
            if cpu not in mine or len(mine) < 2:
                return
            os.sched_setaffinity(0, {cpu})
            self.saved = threading.get_native_id(), mine
        except OSError:  # affinity is not ours to set here: leave the scheduler to it
            return
        if cpu != self.caller_cpu:
            self.caller_cpu = cpu
            for t in self.threads:
                try:
                    os.sched_setaffinity(t.native_id, self.cpus - {cpu})
                except OSError:
                    pass

    def contended(self):
        """Whether this run works alone (CONTENDED_S): checked before each shared stage, native
        job and BLAS executor; MISSES_ALONE misses by the helper switch the rest of the run."""
        if self.alone is not None:
            return True
        if self.ctl.item(self.jt.MISSES) - self.misses_seen < MISSES_ALONE:
            return False
        self.quiet_until = time.perf_counter() + CONTENDED_S
        self._alone()
        return True

    def _alone(self):
        """The rest of the run on the caller: BLAS on one thread, helpers left to sleep."""
        self.alone = self.blas.threads()
        if self.alone != 1:
            self.blas.set_threads(1)
        for k in range(len(self.helpers)):
            self.ctl[self.jt.BLOCK * k + self.jt.ACTIVE] = 0

    def exit(self):
        with self.lock:
            self.depth -= 1
            if self.depth:
                return
            if self.alone is not None:
                if self.alone != 1:
                    self.blas.set_threads(self.alone)
                self.alone = None
            if self.saved is not None:
                try:  # the thread that entered first: another one may be the last to leave
                    os.sched_setaffinity(*self.saved)
                except OSError:
                    pass
                self.saved = None
            if self.installed:
                self.blas.set_callback(None)
                self.installed = False
            for k in range(len(self.helpers)):
                self.ctl[self.jt.BLOCK * k + self.jt.ACTIVE] = 0

    # -- shared stages -------------------------------------------------------------------
    def share(self, fn, items, workers):
        jt = self.jt
        claimed = [h for h in self.helpers[:workers - 1] if jt.try_claim(h[0])]
        if not claimed:
            for args in items:
                fn(0, *args)
            return
        job = _Job(fn, items)
        with self.blas.one_thread():  # a shared stage's GEMMs run on one thread each
            try:
                for h in claimed:
                    h[1] = job
                    jt.put(h[0], jt.STATE, jt.PYTHON)
                job.work(0)
            finally:
                for h in claimed:
                    jt.revoke(h[0], jt.PYTHON, jt.TAKEN)
        if job.error is not None:
            raise job.error


_pool = None
_pool_lock = threading.Lock()


def _after_fork_in_child():
    """A forked child has none of the helper threads its copy of the pool describes: a GEMM
    handed to one would wait forever. The child starts without a pool (a new one on first use)
    and with OpenBLAS's own threads."""
    global _pool, _pool_lock
    old, _pool, _pool_lock = _pool, None, threading.Lock()
    if old is not None and old.installed:
        old.blas.set_callback(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def pool_available():
    """numba is there (its compiled loop is the helpers' idle loop; not jit.available(): the
    numpy paths share their stages through the pool too) on Linux (they sleep on a futex)."""
    if jit._numba() is None or not sys.platform.startswith("linux"):
        return False
    from . import jit_threads
    return jit_threads.SYS_FUTEX is not None


def pool(threads=None):
    """The process's pool, grown to `threads - 1` helpers (None when there can be none)."""
    global _pool
    if not pool_available():
        return None
    with _pool_lock:
        if _pool is None:
            _pool = Pool()
    if threads and threads > 1:
        _pool.grow(threads - 1)
    return _pool


class running:
    """`with running(threads):` around a session's CPU work: the helpers spin instead of
    sleeping and OpenBLAS's GEMMs go through the pool."""

    def __init__(self, threads):
        self.pool = pool(threads) if threads > 1 else None

    def __enter__(self):
        if self.pool is not None:
            self.pool.enter()
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.exit()


def chunks(fn, items, workers=2):
    """fn(worker, *args) for each args in `items`; worker (0 = the caller, k = helper k) tells
    which per-thread scratch to use. With workers == 1, one item, no pool or no free helper,
    all on the caller."""
    p = _pool
    if workers < 2 or len(items) < 2 or p is None or not p.helpers or p.contended():
        for args in items:
            fn(0, *args)
        return
    p.share(fn, items, workers)


def pool_running():
    """Whether a session's run holds the pool now (its helpers spin, ready for jobs)."""
    p = _pool
    return p is not None and p.depth > 0 and bool(p.helpers)


def pair(fn, args0, args1, blas=False):
    """A compiled kernel run at once by two threads: fn (a cfunc address, void fn(int part,
    void *args, int)) gets (0, args0) on the caller and (1, args1) on the pool's first helper,
    or both, one after the other, on the caller when no pool runs or its helper is busy or
    asleep. No GIL on either side: a Python job per part cost 20-80 us of GIL hand-offs, most
    of a small depthwise layer (docs/cpu.md). blas=True: the job calls BLAS, which then runs on
    one thread (a threaded GEMM from the helper would hand its jobs to the helper itself)."""
    p = _pool
    if p is None:  # an executor run outside any session (no pool made yet): all on the caller
        from . import jit_threads
        jit_threads.run_pair(0, fn, args0, args1)
        return
    block = p.helpers[0][0] if pool_running() and not p.contended() else 0
    with p.blas.one_thread() if blas else contextlib.nullcontext():
        p.jt.run_pair(block, fn, args0, args1)


class NativeJob:
    """A cfunc (numba) run by `pair` on one argument block per thread (float64 arrays packed by
    the kernel module's pack_job; one block serves both when the part index alone tells them
    apart), whose parts both threads take from `counter` (reset before each run). Holds the
    blocks: the job knows them by address only."""

    def __init__(self, fn, blocks, counter, blas=False, solo=False):
        self.fn, self.blocks, self.counter, self.blas = fn.address, blocks, counter, blas
        self.addresses = blocks[0].ctypes.data, blocks[-1].ctypes.data
        self.solo = solo  # both parts on the caller (a one-thread session)

    def run(self):
        self.counter[:] = 0
        if self.solo:
            from . import jit_threads
            jit_threads.run_pair(0, self.fn, *self.addresses)
        else:
            pair(self.fn, *self.addresses, blas=self.blas)


def split(fn, parts):
    """Run fn(*args) for each args in `parts`, two at a time in parallel."""
    chunks(lambda worker, *args: fn(*args), parts, 2)
