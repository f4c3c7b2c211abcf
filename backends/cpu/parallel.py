"""A second thread for the numpy passes that BLAS does not parallelize.

numpy releases the GIL inside its loops but holds it for the ~1 us of each call, so splitting
work between two threads pays only when each half is long (hundreds of microseconds): the
executors use `split` for their big elementwise stages only, and only when the session asked
for two or more threads. One helper thread per process, woken by a condition variable.
"""
import os
import threading

# Work below this many float elements per split stage runs on the calling thread alone.
MIN_ELEMENTS = 1 << 21


def threads_of(backend):
    """The session's thread count (None: every core)."""
    n = getattr(getattr(backend, "config", None), "threads", None)
    return int(n) if n else (os.cpu_count() or 1)


def worth_splitting(backend, elements):
    return threads_of(backend) >= 2 and elements >= MIN_ELEMENTS


class _Helper:
    def __init__(self):
        self.busy = threading.Lock()  # one caller at a time; another caller runs serially
        self.cond = threading.Condition()
        self.job = None
        self.done = True
        self.error = None
        threading.Thread(target=self._loop, name="mixnn-cpu-helper", daemon=True).start()

    def _loop(self):
        while True:
            with self.cond:
                while self.job is None:
                    self.cond.wait()
                fn, args = self.job
            try:
                fn(*args)
            except BaseException as e:  # handed back to the caller, who re-raises it
                self.error = e
            with self.cond:
                self.job, self.done = None, True
                self.cond.notify_all()

    def run_pair(self, fn, helper_args, own_args):
        """fn(*helper_args) on the helper thread while fn(*own_args) runs here."""
        with self.cond:
            self.job, self.done, self.error = (fn, helper_args), False, None
            self.cond.notify_all()
        try:
            fn(*own_args)
        finally:
            with self.cond:
                while not self.done:
                    self.cond.wait()
        if self.error is not None:
            raise self.error


_helper = None
_lock = threading.Lock()


def split(fn, parts):
    """Run fn(*args) for each args in `parts` (one or two tuples), two at a time in parallel."""
    global _helper
    if len(parts) == 1:
        fn(*parts[0])
        return
    with _lock:
        if _helper is None:
            _helper = _Helper()
        helper = _helper
    if not helper.busy.acquire(blocking=False):
        for args in parts:
            fn(*args)
        return
    try:
        helper.run_pair(fn, parts[0], parts[1])
    finally:
        helper.busy.release()
