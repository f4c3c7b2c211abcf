"""The CPU backend's own second thread, and OpenBLAS kept on one.

OpenBLAS splits every GEMM statically between its threads and waits for all of them, and its
idle workers spin. On a machine where other processes compete for the cores, a worker that
has been descheduled stalls each GEMM for a scheduler time slice: measured on this project's
2-core VM under load, `threads=2` ran PP-OCR's classifier 20x and MobileNetV2 8x slower than
BLAS on one thread (docs/cpu.md). On an idle machine the opposite holds (ResNet-18 28 ms with
BLAS on 2 threads, 41-50 ms on one), so BLAS follows the session's `threads` by default and
MIXNN_SERIAL_BLAS=1 keeps it on one thread for machines that are shared (`serial_blas`). The
executors can also share big stages with one helper thread themselves, in chunks that either thread claims
(`chunks`): a late helper costs nothing, the caller simply does the chunks it did not take.
numpy releases the GIL inside BLAS and its loops but holds it for the ~1 us of each call, so
only long stages are shared (MIN_ELEMENTS, MIN_MACS), and only when the session asked for two
or more threads.
"""
import os
import threading

# Work below this many float elements per split stage runs on the calling thread alone.
MIN_ELEMENTS = 1 << 21
# GEMMs of at least this many multiply-adds are shared between the two threads (None: never).
# Measured on the loaded 2-core VM, sharing lost: the other core was busy, the helper came
# late, and the halved blocks cost 10-16% more CPU time (docs/cpu.md). Set it (4 << 20 gave
# 1.7x on a 128x128x3136 GEMM with a free core) where the cores are really free.
MIN_MACS = None
SERIAL_BLAS = os.environ.get("MIXNN_SERIAL_BLAS") == "1"


def threads_of(backend):
    """The session's thread count (None: every core)."""
    n = getattr(getattr(backend, "config", None), "threads", None)
    return int(n) if n else (os.cpu_count() or 1)


def helper_allowed(backend):
    """Whether executors may share work with the helper thread. Not while BLAS runs threads of
    its own: its idle workers spin on the other core for a while after every GEMM, and a helper
    competing with them turned MobileNetV2's 9 ms into 20-160 ms (docs/cpu.md). So one pool
    at a time: OpenBLAS's by default, the helper's with MIXNN_SERIAL_BLAS=1."""
    return threads_of(backend) >= 2 and SERIAL_BLAS


def worth_splitting(backend, elements):
    return helper_allowed(backend) and elements >= MIN_ELEMENTS


def gemm_workers(backend, macs):
    """How many threads share a GEMM of `macs` multiply-adds: 1 or 2."""
    return 2 if MIN_MACS is not None and helper_allowed(backend) and macs >= MIN_MACS else 1


class _Blas:
    """OpenBLAS's thread count through threadpoolctl (None when either is missing)."""

    def __init__(self):
        self.lib = None
        try:
            from threadpoolctl import ThreadpoolController
            libs = [c for c in ThreadpoolController().lib_controllers if c.internal_api == "openblas"]
            self.lib = libs[0] if libs else None
        except Exception:  # no threadpoolctl, or a BLAS it cannot drive: leave BLAS as it is
            self.lib = None

    def serial(self):
        lib = self.lib
        if lib is not None and lib.get_num_threads() != 1:
            lib.set_num_threads(1)


_blas = None


def serial_blas():
    """With MIXNN_SERIAL_BLAS=1, keep BLAS on one thread (cheap when it already is)."""
    global _blas
    if not SERIAL_BLAS:
        return
    if _blas is None:
        _blas = _Blas()
    _blas.serial()


class _Job:
    """fn(worker, *items[i]) for every i, claimed one at a time by whichever thread is free."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items
        self.next, self.active, self.error = 0, 0, None
        self.cond = threading.Condition(threading.Lock())

    def work(self, worker):
        while True:
            with self.cond:
                i = self.next
                if i >= len(self.items):
                    return
                self.next, self.active = i + 1, self.active + 1
            try:
                self.fn(worker, *self.items[i])
            except BaseException as e:  # handed back to the caller, who re-raises it
                self.error = e
            finally:
                with self.cond:
                    self.active -= 1
                    if not self.active:
                        self.cond.notify_all()

    def wait(self):
        with self.cond:
            while self.active:
                self.cond.wait()


class _Helper:
    def __init__(self):
        self.busy = threading.Lock()  # one caller at a time; another caller runs serially
        self.cond = threading.Condition()
        self.pending = None
        threading.Thread(target=self._loop, name="mixnn-cpu-helper", daemon=True).start()

    def _loop(self):
        while True:
            with self.cond:
                while self.pending is None:
                    self.cond.wait()
                job, self.pending = self.pending, None
            job.work(1)

    def share(self, job):
        with self.cond:
            self.pending = job
            self.cond.notify()
        try:
            job.work(0)
        finally:
            with self.cond:
                if self.pending is job:  # the helper never came: take the job back
                    self.pending = None
            job.wait()


_helper = None
_lock = threading.Lock()


def chunks(fn, items, workers=2):
    """fn(worker, *args) for each args in `items`; worker (0 = the caller, 1 = the helper)
    tells which per-thread scratch to use. With workers == 1 or one item, all on the caller."""
    global _helper
    if workers < 2 or len(items) < 2:
        for args in items:
            fn(0, *args)
        return
    with _lock:
        if _helper is None:
            _helper = _Helper()
        helper = _helper
    if not helper.busy.acquire(blocking=False):
        for args in items:
            fn(0, *args)
        return
    job = _Job(fn, items)
    try:
        helper.share(job)
    finally:
        helper.busy.release()
    if job.error is not None:
        raise job.error


def split(fn, parts):
    """Run fn(*args) for each args in `parts`, two at a time in parallel."""
    chunks(lambda worker, *args: fn(*args), parts, 2)
