"""`mixnn bench`: latency of models on mixnn's backends, side by side with onnxruntime (and MNN).

    mixnn bench [MODEL ...] [--backends cpu,opencl] [--threads N] [--runs N] [--json F] [--plot F.png]

MODEL is a zoo name (engine.zoo.NAMES), a real model name (engine.models.NAMES) or a path to
.onnx/.mixnn; none means the zoo plus the real models that are on this machine. Every model
runs with random inputs (fixed seed) at its default shape. For each model, every side -- each
mixnn backend, onnxruntime, and MNN when its Python module is importable -- is loaded and run
once (the first-run latency: load + convert + prepare + first inference), warmed up, then
timed in interleaved rounds, one run of each side per round, so that load on the machine
hits all sides alike. Reported: median and min latency, first run, arena bytes, and each
mixnn backend's ratio to onnxruntime (and the geometric mean of the ratios over the models).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

from .errors import MixnnError

ORT = "onnxruntime"
MNN = "mnn"
WARMUP = 2


# -- models ------------------------------------------------------------------------------

# Idle worker threads spin after a run (OpenBLAS's for ~0.1 s, onnxruntime's intra-op pool):
# a pause before each timed run lets the previous side's workers park, so that two threaded
# runtimes in one process do not steal each other's cores.
SETTLE_S = 0.15

def default_models():
    """The zoo, then the real models found on this machine (the others are skipped quietly)."""
    from . import models, zoo
    out = list(zoo.NAMES)
    for name in models.NAMES:
        try:
            models.find(name)
            out.append(name)
        except models.ModelNotFoundError:
            pass
    return out


def resolve(spec, shape=None):
    """(display name, path, {input: shape} or None) for a zoo name, real model name or path."""
    from . import models, zoo
    if spec in zoo.NAMES:
        return spec, zoo.path(spec), {None: zoo.input_shape(spec)}
    if spec in models.NAMES:
        real = models.REAL_MODELS[spec]
        return spec, models.find(spec), {real.input_name: real.input_shape}
    if os.path.isfile(spec):
        name = os.path.splitext(os.path.basename(spec))[0]
        return name, spec, ({None: shape} if shape else None)
    raise MixnnError(f"bench: {spec!r} is neither a model file nor a known model "
                     f"(zoo: {', '.join(zoo.NAMES)}; real: {', '.join(models.NAMES)})")


def make_feed(graph, shapes, seed=0):
    """Random inputs with a fixed seed; `shapes` maps input names (None: the first input) to
    shapes, and symbolic dims default to 1 (batch) or 224."""
    from .cli import default_feed
    named = {}
    for key, shape in (shapes or {}).items():
        named[graph.inputs[0] if key is None else key] = tuple(shape)
    return default_feed(graph, named, seed)


# -- the sides of a comparison ------------------------------------------------------------
class Side:
    """One contender: prepare() (untimed), start(feed) (timed: the first run), run(), extra()."""
    label = None

    def prepare(self):
        pass

    def extra(self):
        return {}

    def close(self):
        self.sess = None


class MixnnSide(Side):
    def __init__(self, backend, path, threads):
        self.name, self.path, self.threads = backend, path, threads
        self.label = f"mixnn-{backend}"

    def start(self, feed):
        import engine
        self.sess = engine.InferenceSession(self.path, backend=self.name, fallback="cpu",
                                            threads=self.threads)
        self.feed = feed
        self.run()

    def run(self):
        self.sess.run(None, self.feed)

    def extra(self):
        mem = self.sess.memory()
        placement = self.sess.placement().values()
        return {"arena_bytes": sum(m["arena_bytes"] for m in mem.values()),
                "static_bytes": sum(m["static_bytes"] for m in mem.values()),
                "nodes": len(placement), "nodes_on_cpu": sum(p["backend"] == "cpu" for p in placement)}


class OrtSide(Side):
    name = ORT

    def __init__(self, path, threads):
        self.path, self.threads = path, threads

    def start(self, feed):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.feed = feed
        self.run()

    def run(self):
        self.sess.run(None, self.feed)


class MnnSide(Side):
    """MNN's Python wheel: the ONNX model converted by its converter in a subprocess (untimed;
    a crash there cannot take the benchmark down), then run through its Session API."""
    name = MNN

    def __init__(self, path, threads, workdir):
        self.path, self.threads, self.workdir = path, threads, workdir

    def prepare(self):
        self.model = convert_to_mnn(self.path, self.workdir)

    def start(self, feed):
        import MNN as mnn
        import numpy as np
        self.interp = mnn.Interpreter(self.model)
        self.sess = self.interp.createSession({"numThread": self.threads})
        inputs = self.interp.getSessionInputAll(self.sess)
        for name, arr in feed.items():
            self.interp.resizeTensor(inputs[name], arr.shape)
        self.interp.resizeSession(self.sess)

        def host(shape, data):
            return mnn.Tensor(shape, mnn.Halide_Type_Float, data, mnn.Tensor_DimensionType_Caffe)
        self.staged = [(inputs[k], host(a.shape, a.astype(np.float32))) for k, a in feed.items()]
        self.outputs = [(t, host(t.getShape(), np.zeros(t.getShape(), np.float32)))
                        for t in self.interp.getSessionOutputAll(self.sess).values()]
        self.run()

    def run(self):
        for dst, src in self.staged:
            dst.copyFrom(src)
        self.interp.runSession(self.sess)
        for tensor, host in self.outputs:
            tensor.copyToHostTensor(host)


def mnn_version():
    """MNN's version when its module imports, else None."""
    try:
        import MNN as mnn
    except Exception:
        return None
    return getattr(mnn, "version", lambda: "?")()


def convert_to_mnn(onnx_path, workdir):
    import subprocess
    out = os.path.join(workdir, os.path.basename(onnx_path) + ".mnn")
    if os.path.exists(out):
        return out
    code = ("import sys\n"
            "try:\n    from MNN.tools import _tools\n"
            "except ImportError:\n    import _tools\n"
            "ok = _tools.mnnconvert(['mnnconvert', '-f', 'ONNX', '--modelFile', sys.argv[1],"
            " '--MNNModel', sys.argv[2], '--bizCode', 'mixnn-bench'])\n"
            "sys.exit(0 if ok in (True, 0, None) else 1)\n")
    proc = subprocess.run([sys.executable, "-c", code, onnx_path, out], capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise MixnnError(f"MNN could not convert {onnx_path}: {' / '.join(tail) or 'no output'}")
    return out


# -- measuring ---------------------------------------------------------------------------
class Progress:
    """A plain-text progress bar on stderr (one line per model when stderr is not a terminal)."""

    def __init__(self, total_models, stream=sys.stderr):
        self.total, self.stream = total_models, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, index, name, done, total):
        if not self.tty:
            return
        width = 30
        fill = int(width * done / max(total, 1))
        self.stream.write(f"\r[{index}/{self.total}] {name:<16} [{'#' * fill}{'.' * (width - fill)}] "
                          f"{done}/{total} rounds")
        self.stream.flush()

    def finish(self, index, name, seconds):
        if self.tty:
            self.stream.write("\r" + " " * 80 + "\r")
        self.stream.write(f"[{index}/{self.total}] {name}: measured in {seconds:.1f} s\n")
        self.stream.flush()


def measure(sides, feed, runs, progress=None, label=("", 0)):
    """Start every side (first-run latency), then `runs` interleaved rounds. {side: result}."""
    results, live = {}, []
    for side in sides:
        try:
            side.prepare()
            t0 = time.perf_counter()
            side.start(feed)
        except Exception as e:  # one side failing is a result, not the end of the benchmark
            results[side.name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        results[side.name] = {"label": side.label or side.name,
                              "first_run_ms": (time.perf_counter() - t0) * 1e3}
        live.append(side)
    times = {side.name: [] for side in live}
    for r in range(WARMUP + runs):
        for side in list(live):
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            try:
                side.run()
            except Exception as e:
                results[side.name] = {"error": f"{type(e).__name__}: {e}"}
                live.remove(side)
                continue
            if r >= WARMUP:
                times[side.name].append((time.perf_counter() - t0) * 1e3)
        if progress is not None and r >= WARMUP:
            progress.update(label[1], label[0], r - WARMUP + 1, runs)
    for side in live:
        ts = times[side.name]
        results[side.name].update(median_ms=statistics.median(ts), min_ms=min(ts), runs=len(ts))
        results[side.name].update(side.extra())
        side.close()
    ref = results.get(ORT, {}).get("median_ms")
    for name, res in results.items():
        if name not in (ORT, MNN) and ref and "median_ms" in res:
            res["ratio_vs_onnxruntime"] = res["median_ms"] / ref
    return results


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


# -- reporting ---------------------------------------------------------------------------
def machine(threads, runs):
    import numpy as np
    from .threads import blas_info
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": threads, "runs": runs, "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas_info()}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    info["mnn"] = mnn_version()
    if hasattr(os, "getloadavg"):
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def print_table(report, file=sys.stdout):
    m = report["machine"]
    print(f"mixnn bench: {m['threads']} threads, {m['runs']} rounds, {m['cores']} cores, numpy {m['numpy']} "
          f"({m['blas']}), onnxruntime {m['onnxruntime']}" + (f", MNN {m['mnn']}" if m.get("mnn") else ""),
          file=file)
    load = max(m.get("load_average") or 0, m.get("load_average_end") or 0)
    if load > 0.5 * (m["cores"] or 1):
        print(f"warning: load average up to {load} on {m['cores']} cores: other work is running, "
              "latencies are inflated (the ratios less so: the rounds are interleaved)", file=file)
    for name, why in report["unavailable"].items():
        print(f"backend {name}: {why}", file=file)
    head = f"{'model':<15}{'input':<17}{'side':<13}{'median ms':>10}{'min ms':>9}{'first ms':>10}" \
           f"{'arena MB':>10}{'vs ORT':>8}"
    print(head, file=file)
    print("-" * len(head), file=file)
    for entry in report["models"]:
        shape = "x".join(str(d) for d in next(iter(entry["inputs"].values()), ()))
        first = True
        for side, res in entry["results"].items():
            lead = f"{entry['model'][:14]:<15}{shape[:16]:<17}" if first else " " * 32
            first = False
            side = res.get("label", side)
            if "error" in res:
                print(f"{lead}{side:<13}error: {res['error'][:90]}", file=file)
                continue
            arena = f"{res['arena_bytes'] / 2**20:.1f}" if "arena_bytes" in res else "-"
            ratio = f"{res['ratio_vs_onnxruntime']:.2f}x" if "ratio_vs_onnxruntime" in res else "-"
            print(f"{lead}{side:<13}{res['median_ms']:>10.2f}{res['min_ms']:>9.2f}{res['first_run_ms']:>10.0f}"
                  f"{arena:>10}{ratio:>8}", file=file)
    for backend, s in report["summary"].items():
        if s["geomean_ratio_vs_onnxruntime"] is not None:
            print(f"{backend}: geometric mean of median latency / onnxruntime = "
                  f"{s['geomean_ratio_vs_onnxruntime']:.2f} over {s['models']} models", file=file)


def plot(report, path):
    """Grouped bars: one group per model, one bar per side, median latency labelled."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MixnnError("--plot needs matplotlib (pip install matplotlib)") from None
    entries = report["models"]
    sides = []
    for e in entries:
        sides += [s for s, r in e["results"].items() if "median_ms" in r and s not in sides]
    values = [[e["results"].get(s, {}).get("median_ms") for e in entries] for s in sides]
    labels = {s: r.get("label", s) for e in entries for s, r in e["results"].items()}
    flat = [v for row in values for v in row if v]
    if not flat:
        raise MixnnError("--plot: nothing was measured")
    width = 0.8 / max(len(sides), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(entries) * max(1, len(sides)) / 2.5), 5.0))
    for k, (side, row) in enumerate(zip(sides, values)):
        xs = [i + (k - (len(sides) - 1) / 2) * width for i in range(len(entries))]
        bars = ax.bar([x for x, v in zip(xs, row) if v], [v for v in row if v], width, label=labels[side])
        ax.bar_label(bars, labels=[f"{v:.1f}" if v < 100 else f"{v:.0f}" for v in row if v],
                     fontsize=7, rotation=90, padding=2)
    if max(flat) / min(flat) > 30:
        ax.set_yscale("log")
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels([e["model"] for e in entries], rotation=20, ha="right")
    ax.set_ylabel("median latency, ms (lower is better)")
    m = report["machine"]
    ax.set_title(f"mixnn bench: batch 1, {m['threads']} threads, {m['cores']} cores")
    ax.margins(y=0.15)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- command line ------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(prog="mixnn bench", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="zoo names, real model names or .onnx/.mixnn paths "
                   "(default: the zoo and the real models found here)")
    p.add_argument("--backends", default="cpu", help="comma-separated mixnn backends (default: cpu)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads for every side (default: the number of cores)")
    p.add_argument("--runs", type=int, default=30, help="timed rounds per model (default: 30)")
    p.add_argument("--shape", help="input shape for model files with symbolic dims, e.g. 1x3x224x224")
    p.add_argument("--no-onnxruntime", action="store_true", help="do not run onnxruntime")
    p.add_argument("--no-mnn", action="store_true", help="do not run MNN even when it is installed")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--plot", help="write a bar chart of the median latencies to this PNG file")
    args = p.parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        p.error("--runs and --threads must be at least 1")
    return args


def available(names):
    from .backend import available_backends
    found = available_backends()
    ok, missing = [], {}
    for name in names:
        desc = found.get(name.split(":")[0], "unavailable: no such backend")
        if desc.startswith("unavailable"):
            missing[name] = desc
        else:
            ok.append(name)
    return ok, missing


def run_bench(args):
    from .model import load
    from .threads import set_threads
    set_threads(args.threads)
    backends, missing = available([b.strip() for b in args.backends.split(",") if b.strip()])
    shape = tuple(int(d) for d in args.shape.lower().split("x")) if args.shape else None
    specs = args.models or default_models()
    with_ort = not args.no_onnxruntime and _importable("onnxruntime")
    with_mnn = not args.no_mnn and mnn_version() is not None
    report = {"machine": machine(args.threads, args.runs), "unavailable": missing, "models": [], "summary": {}}
    progress = Progress(len(specs))
    with tempfile.TemporaryDirectory(prefix="mixnn-bench-") as workdir:
        for index, spec in enumerate(specs, 1):
            name, path, shapes = resolve(spec, shape)
            feed = make_feed(load(path, optimize=False).graph, shapes)
            sides = [MixnnSide(b, path, args.threads) for b in backends]
            onnx_file = path.lower().endswith(".onnx")
            if with_ort and onnx_file:
                sides.append(OrtSide(path, args.threads))
            if with_mnn and onnx_file:
                sides.append(MnnSide(path, args.threads, workdir))
            t0 = time.perf_counter()
            results = measure(sides, feed, args.runs, progress, (name, index))
            progress.finish(index, name, time.perf_counter() - t0)
            report["models"].append({"model": name, "path": os.path.abspath(path),
                                     "inputs": {k: list(v.shape) for k, v in feed.items()},
                                     "results": results})
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)
    for b in backends:
        ratios = [e["results"].get(b, {}).get("ratio_vs_onnxruntime") for e in report["models"]]
        ratios = [r for r in ratios if r]
        report["summary"][b] = {"geomean_ratio_vs_onnxruntime": geomean(ratios), "models": len(ratios)}
    return report


def _importable(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = run_bench(args)
    except MixnnError as e:
        print(f"mixnn bench: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print_table(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        try:
            plot(report, args.plot)
        except MixnnError as e:
            print(f"mixnn bench: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
