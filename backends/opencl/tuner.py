"""Work-group size tuning, MNN's localWS tuning: opt-in with MIXNN_OPENCL_TUNE=1.

The conv and GEMM launches with enough work try a few local sizes along their pixel/column
dim, timed with profiling events (best of three after a warm-up); the fastest is remembered in
`<cache_dir>/tune.json` under the program's key (device, driver, source), the kernel and its
global size. Later sessions apply remembered choices whether or not they tune. Opt-in because
on PoCL every candidate costs a JIT compile, and a loaded machine times badly.
"""
import json
import os

from .base import fit

TUNABLE = {"conv2d", "deconv2d", "gemm_packed", "matmul", "conv_dw"}
CANDIDATES = (16, 32, 64, 128)
MIN_WORK = 1 << 14  # work-items: smaller launches are not worth a compile per candidate


class Tuner:
    def __init__(self, backend):
        self.backend = backend
        self.enabled = os.environ.get("MIXNN_OPENCL_TUNE", "") not in ("", "0")
        self.path = os.path.join(backend.compiler.cache_dir, "tune.json")
        try:
            with open(self.path) as f:
                self.choices = json.load(f)
        except (OSError, ValueError):
            self.choices = {}

    def apply(self, executors):
        """Give every tunable launch its remembered (or, when enabled, measured) local size."""
        changed = False
        for e in executors:
            for i, (k, g, l) in enumerate(e.launches):
                if k.function_name not in TUNABLE:
                    continue
                key = f"{k.mixnn_key}:{k.function_name}:{e.sizes[i]}"
                if key not in self.choices and self.enabled and _work(e.sizes[i]) >= MIN_WORK:
                    self.choices[key] = self._measure(k, e.sizes[i], l)
                    changed = True
                if key in self.choices:
                    e.launches[i] = (k, *fit(e.sizes[i], self.choices[key]))
        if changed:
            self._save()

    def _measure(self, kernel, gsize, current):
        cl, queue = self.backend.cl, self.backend.queue
        limit = kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self.backend.dev)
        best, best_t = list(current), None
        for width in CANDIDATES:
            local = [width] + [1] * (len(gsize) - 1)
            if width > limit:
                continue
            g, lo = fit(gsize, local)
            cl.enqueue_nd_range_kernel(queue, kernel, g, lo).wait()  # JIT, caches
            times = []
            for _ in range(3):
                ev = cl.enqueue_nd_range_kernel(queue, kernel, g, lo)
                ev.wait()
                times.append(ev.profile.end - ev.profile.start)
            if best_t is None or min(times) < best_t:
                best, best_t = local, min(times)
        return best

    def _save(self):
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(self.choices, f, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            pass


def _work(gsize):
    n = 1
    for g in gsize:
        n *= g
    return n
