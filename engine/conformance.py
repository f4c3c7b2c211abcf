"""The ONNX backend node tests as mixnn's conformance suite: `mixnn conformance`.

    mixnn conformance [--backend cpu] [--filter RE] [--json out.json] [--in-scope] [-v]

The cases come from the installed onnx wheel: `onnx.backend.test.case.node.collect_testcases`
runs each test's code and yields its model, inputs and expected outputs (the wheel ships no
node/ data). Generating them takes ~20 s, so they are cached in
.cache/conformance/onnx-<version>/cases.pkl (a pickle we write ourselves; delete it, or pass
--regenerate, to rebuild).

Each case runs in one of a pool of long-lived worker processes (2 by default) under a watchdog:
a case that crashes its worker or runs past --timeout is reported as crash/timeout, the worker
is replaced, and the run goes on. A case is

  pass         every output has the expected shape, dtype and values (floats: |got - want| <=
               1e-5 + 1e-3 * |want|, NaN equal to NaN, infinities exact; ints and bools exact)
  wrong        it ran, but an output differs
  unsupported  mixnn refused it with its own UnsupportedOpError (an op, op version, dtype or
               attribute value it does not implement)
  error        any other exception: a MixnnError, or (a bug) an uncaught Python exception
  crash        the worker process died
  timeout      it ran past the watchdog's limit

Scope. A case is out of scope -- still run and counted in "all", not in "in-scope" -- when
  * its model imports an opset domain other than the default ONNX one (ai.onnx.ml,
    ai.onnx.preview, ai.onnx.preview.training);
  * it is a training op: Gradient/Adagrad/Adam/Momentum, BatchNormalization with
    training_mode=1, Dropout given a training_mode input;
  * it is a string op (StringNormalizer, StringConcat, StringSplit, RegexFullMatch) or any
    graph input/output is a string tensor;
  * any graph input/output, or any op, is of a sequence, optional or map type (Sequence*,
    Optional*, SplitToSequence, ConcatFromSequence, and If/Loop/Scan bodies carrying them);
  * it decodes images (ImageDecoder);
  * it draws random numbers (RandomNormal, RandomUniform, RandomNormalLike,
    RandomUniformLike, Multinomial, Bernoulli).
Everything else -- every dtype included -- is in scope.

The oracle is the expected output stored in the case (onnx's reference implementation);
neither onnx's evaluator nor onnxruntime runs inside mixnn.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import sys
import time
from collections import Counter, defaultdict

RTOL, ATOL = 1e-3, 1e-5
STATUSES = ("pass", "wrong", "unsupported", "error", "crash", "timeout")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAINING_OPS = {"Gradient", "Adagrad", "Adam", "Momentum"}
STRING_OPS = {"StringNormalizer", "StringConcat", "StringSplit", "RegexFullMatch"}
SEQUENCE_OPS = {"SplitToSequence", "ConcatFromSequence"}
IMAGE_OPS = {"ImageDecoder"}
RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli"}


# -- the cases -------------------------------------------------------------------------
def cache_file(root=None):
    import onnx
    root = root or os.environ.get("MIXNN_CONFORMANCE_CACHE") or os.path.join(_REPO, ".cache", "conformance")
    return os.path.join(root, f"onnx-{onnx.__version__}", "cases.pkl")


def _array(x):
    """Inputs/outputs as numpy (TensorProto for dtypes numpy lacks; lists for sequences)."""
    from onnx import TensorProto, numpy_helper
    if isinstance(x, TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, list):
        return [_array(v) for v in x]
    return x


def generate(path):
    """Run the onnx wheel's node test code and pickle the cases to `path`."""
    import warnings

    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = node_cases.collect_testcases()
    ops, cases = {}, []
    for c in found:
        base = re.sub(r"_expanded(_ver\d+)?$", "", c.name)
        op = ops.get(base) or (c.model.graph.node[0].op_type if c.model.graph.node else "?")
        ops.setdefault(c.name, op)
        ins, outs = c.data_sets[0]
        cases.append({"name": c.name, "op": op, "model": c.model.SerializeToString(),
                      "inputs": [_array(x) for x in ins], "outputs": [_array(x) for x in outs]})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(cases, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return cases


def load_cases(path=None, regenerate=False):
    path = path or cache_file()
    if regenerate or not os.path.exists(path):
        return generate(path)
    with open(path, "rb") as f:
        return pickle.load(f)


def _graphs(graph):
    """The graph and every subgraph in it, depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _graphs(g)


def _io_kinds(graphs):
    """Type kinds ("tensor_type", "sequence_type"...) of the graphs' inputs and outputs, plus
    "string" for string tensors."""
    kinds = set()
    for g in graphs:
        for vi in list(g.input) + list(g.output):
            kinds.add(vi.type.WhichOneof("value"))
            if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.elem_type == 8:
                kinds.add("string")
    return kinds


def out_of_scope(model) -> str | None:
    """Why a case is out of scope (the rule in the module docstring), or None."""
    domains = {o.domain for o in model.opset_import} - {"", "ai.onnx"}
    if domains:
        return f"domain {sorted(domains)[0]}"
    graphs = list(_graphs(model.graph))
    kinds = _io_kinds(graphs)
    if kinds - {"tensor_type", "string", None}:
        return "sequence/optional/map type"
    if "string" in kinds:
        return "string tensors"
    for node in (n for g in graphs for n in g.node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return f"domain {node.domain}"
        if op in TRAINING_OPS:
            return "training op"
        attrs = {a.name: a for a in node.attribute}
        if op == "BatchNormalization" and "training_mode" in attrs and attrs["training_mode"].i:
            return "training op"
        if op == "Dropout" and len(node.input) > 2 and node.input[2]:
            return "training op"
        if op in STRING_OPS:
            return "string op"
        if op in SEQUENCE_OPS or op.startswith(("Sequence", "Optional")):
            return "sequence/optional/map type"
        if op in IMAGE_OPS:
            return "image decoding"
        if op in RANDOM_OPS:
            return "random generator"
    return None


# -- one case, inside a worker ---------------------------------------------------------
def compare(want, got) -> str | None:
    """None when `got` matches `want`, else what differs."""
    import numpy as np
    if not isinstance(got, np.ndarray):
        return f"got a {type(got).__name__}, expected an array"
    want = np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if want.dtype.kind in "fc" or want.dtype.name.startswith(("float", "bfloat")):  # ml_dtypes' floats too
        wide = np.complex128 if want.dtype.kind == "c" else np.float64
        w, g = want.astype(wide), got.astype(wide)
        nan_w, nan_g = np.isnan(w), np.isnan(g)
        inf_w = np.isinf(w)
        finite = ~(nan_w | inf_w)
        with np.errstate(invalid="ignore"):
            close = np.abs(g - w) <= ATOL + RTOL * np.abs(w)
        bad = (nan_w != nan_g) | (inf_w & (w != g)) | (finite & ~close)
    else:
        bad = want != got
    if np.any(bad):
        k = int(np.flatnonzero(np.asarray(bad).reshape(-1))[0])
        return (f"{int(np.count_nonzero(bad))}/{want.size} values differ, first at flat index {k}: "
                f"got {got.reshape(-1)[k]!r}, expected {want.reshape(-1)[k]!r}")
    return None


def run_case(case, backend="cpu"):
    """Run one case in this process: {"status", "detail", "nodes", "native"}."""
    import onnx
    from engine.errors import UnsupportedOpError
    from engine.session import InferenceSession
    model = onnx.load_from_string(case["model"])
    init = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    feed = dict(zip(names, case["inputs"]))
    stage = "load"
    try:
        sess = InferenceSession(model, backend=backend, fallback="cpu")
        stage = "run"
        outs = sess.run(None, feed)
    except UnsupportedOpError as e:
        return {"status": "unsupported", "detail": f"{stage}: {e}"}
    except Exception as e:
        kind = "" if _is_mixnn(e) else "uncaught "
        return {"status": "error", "detail": f"{stage}: {kind}{type(e).__name__}: {str(e)[:500]}"}
    placed = [p["backend"] for p in sess.placement().values() if p["backend"] is not None]
    result = {"nodes": len(placed), "native": sum(1 for b in placed if b == sess.primary)}
    if len(outs) != len(case["outputs"]):
        return {**result, "status": "wrong", "detail": f"{len(outs)} outputs, expected {len(case['outputs'])}"}
    out_names = [o.name for o in model.graph.output]
    for name, want, got in zip(out_names, case["outputs"], outs):
        why = compare(want, got)
        if why:
            return {**result, "status": "wrong", "detail": f"output '{name}': {why}"}
    return {**result, "status": "pass", "detail": ""}


def run_case_onnxruntime(case, backend=None):
    """The same case on onnxruntime, for comparison (`--backend onnxruntime`): a refusal at load
    counts as unsupported."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    ort.set_default_logger_severity(4)
    model = onnx.load_from_string(case["model"])
    init = {i.name for i in model.graph.initializer}
    feed = dict(zip([i.name for i in model.graph.input if i.name not in init], case["inputs"]))
    try:
        sess = ort.InferenceSession(case["model"], providers=["CPUExecutionProvider"])
    except Exception as e:
        return {"status": "unsupported", "detail": f"load: {str(e)[:300]}"}
    try:
        outs = sess.run(None, feed)
    except Exception as e:
        return {"status": "error", "detail": f"run: {str(e)[:300]}"}
    for o, want, got in zip(model.graph.output, case["outputs"], outs):
        why = compare(want, np.asarray(got)) if isinstance(got, np.ndarray) else "not a tensor"
        if why:
            return {"status": "wrong", "detail": f"output '{o.name}': {why}"}
    return {"status": "pass", "detail": ""}


def _is_mixnn(e):
    from engine.errors import MixnnError
    return isinstance(e, MixnnError)


def _worker(conn, path, backend, runner):
    """A worker process: load the cases once, then run the indices it is sent with `runner`."""
    import logging
    import warnings
    warnings.simplefilter("ignore")
    logging.getLogger("mixnn").setLevel(logging.ERROR)
    if _REPO not in sys.path:
        sys.path.insert(0, _REPO)
    cases = load_cases(path)
    conn.send("ready")
    while True:
        try:
            k = conn.recv()
        except EOFError:
            return
        if k is None:
            return
        t0 = time.perf_counter()
        try:
            res = runner(cases[k], backend)
        except BaseException as e:  # the case must not take the worker down with a Python error
            res = {"status": "error", "detail": f"uncaught {type(e).__name__}: {str(e)[:500]}"}
        res["seconds"] = round(time.perf_counter() - t0, 4)
        conn.send((k, res))


# -- the pool with its watchdog ----------------------------------------------------------
class _Slot:
    """One worker process, its pipe, and the case it is running (with a deadline)."""

    def __init__(self, ctx, path, backend, runner, start_timeout=300):
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, path, backend, runner), daemon=True)
        self.proc.start()
        child.close()
        self.case, self.deadline = None, None
        try:
            if not self.parent.poll(start_timeout):
                raise EOFError
            self.parent.recv()
        except EOFError:
            self.kill()
            raise RuntimeError(f"a conformance worker did not start (exit code {self.proc.exitcode})") from None

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.parent.close()


def run_pool(indices, path, backend="cpu", jobs=2, timeout=30.0, progress=None, runner=run_case):
    """Run the cases at `indices` on `jobs` workers: {index: result}. `runner(case, backend)` is
    what a worker calls per case (a module-level function: it is sent to the workers by name)."""
    import multiprocessing as mp
    from multiprocessing.connection import wait
    ctx = mp.get_context("spawn")
    todo = list(indices)[::-1]
    results = {}
    slots = [_Slot(ctx, path, backend, runner) for _ in range(min(jobs, len(todo)))]
    try:
        while todo or any(s.case is not None for s in slots):
            for s in slots:
                if s.case is None and todo:
                    s.case, s.deadline = todo.pop(), time.monotonic() + timeout
                    s.parent.send(s.case)
            busy = [s for s in slots if s.case is not None]
            wait_s = max(0.0, min(s.deadline for s in busy) - time.monotonic())
            ready = wait([s.parent for s in busy], timeout=wait_s)
            for k, s in enumerate(slots):
                if s.case is None:
                    continue
                res = None
                if s.parent in ready:
                    try:
                        _, res = s.parent.recv()
                    except (EOFError, OSError):
                        res = {"status": "crash", "detail": f"worker died (exit code {s.proc.exitcode})"}
                elif time.monotonic() >= s.deadline:
                    res = {"status": "timeout", "detail": f"ran past {timeout} s"}
                if res is None:
                    continue
                results[s.case] = res
                if progress:
                    progress(s.case, res)
                if res["status"] in ("crash", "timeout"):
                    s.kill()
                    slots[k] = _Slot(ctx, path, backend, runner)
                else:
                    s.case = None
    finally:
        for s in slots:
            try:
                s.parent.send(None)
            except (OSError, ValueError):
                pass
            s.proc.join(2)
            s.kill()
    return results


# -- the report ------------------------------------------------------------------------
def summarize(cases, results, backend):
    rows = []
    for k, res in sorted(results.items()):
        c = cases[k]
        rows.append({"name": c["name"], "op": c["op"], "scope": c["scope"] or "in", **res})
    inscope = [r for r in rows if r["scope"] == "in"]
    touched = [r for r in inscope if r.get("native")]  # cases where the backend ran >= 1 node

    def rate(rs):
        return round(100.0 * sum(r["status"] == "pass" for r in rs) / max(len(rs), 1), 2)
    return {
        "backend": backend,
        "onnx": _onnx_version(),
        "all": {"cases": len(rows), "pass_rate": rate(rows), **Counter(r["status"] for r in rows)},
        "in_scope": {"cases": len(inscope), "pass_rate": rate(inscope),
                     **Counter(r["status"] for r in inscope)},
        "on_backend": {"cases": len(touched), "all_nodes": sum(1 for r in touched if r["native"] == r["nodes"]),
                       **Counter(r["status"] for r in touched)},
        "out_of_scope": dict(Counter(r["scope"] for r in rows if r["scope"] != "in")),
        "cases": rows,
    }


def _onnx_version():
    import onnx
    return onnx.__version__


def print_report(summary, verbose=False, out=sys.stdout):
    b = summary["backend"]
    for title, key in (("all", "all"), ("in-scope", "in_scope")):
        s = summary[key]
        counts = ", ".join(f"{st} {s.get(st, 0)}" for st in STATUSES)
        print(f"{b}: {title:<8} {s['cases']:>5} cases, pass rate {s['pass_rate']:.1f} %  ({counts})", file=out)
    if b not in ("cpu", "onnxruntime"):
        t = summary["on_backend"]
        print(f"{b}: ran nodes itself in {t['cases']} in-scope cases ({t['all_nodes']} entirely, the rest partly "
              f"on the cpu fallback): pass {t.get('pass', 0)}, wrong {t.get('wrong', 0)}, "
              f"error {t.get('error', 0)}", file=out)
    per_op = defaultdict(Counter)
    for r in summary["cases"]:
        if r["scope"] == "in":
            per_op[r["op"]][r["status"]] += 1
    failing = {op: c for op, c in per_op.items() if sum(c.values()) != c["pass"]}
    if failing:
        print("in-scope ops with failures (op: pass/total, failures by kind):", file=out)
        for op, c in sorted(failing.items(), key=lambda kv: kv[1]["pass"] - sum(kv[1].values())):
            kinds = ", ".join(f"{st} {c[st]}" for st in STATUSES[1:] if c[st])
            print(f"  {op:<28} {c['pass']}/{sum(c.values())}  {kinds}", file=out)
    if verbose:
        for r in summary["cases"]:
            if r["status"] != "pass":
                print(f"  [{r['status']}] {r['name']} ({r['op']}, {r['scope']}): {r['detail']}", file=out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="mixnn conformance",
                                description="Run the ONNX backend node tests on a mixnn backend.")
    p.add_argument("--backend", default="cpu", help="cpu, opencl, vulkan, gl (cpu is the fallback); "
                                                    "onnxruntime runs the cases on onnxruntime, for comparison")
    p.add_argument("--filter", help="regular expression on case names (re.search)")
    p.add_argument("--json", help="write the per-case results here")
    p.add_argument("--in-scope", action="store_true", help="run only the in-scope cases")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before the watchdog kills it")
    p.add_argument("--regenerate", action="store_true", help="rebuild the case cache from the onnx wheel")
    p.add_argument("-v", "--verbose", action="store_true", help="print every failing case with its reason")
    args = p.parse_args(argv)
    path = cache_file()
    t0 = time.perf_counter()
    cases = load_cases(path, args.regenerate)
    annotate_scope(cases)
    chosen = [k for k, c in enumerate(cases)
              if (not args.filter or re.search(args.filter, c["name"])) and not (args.in_scope and c["scope"])]
    if not chosen:
        print("no case matches", file=sys.stderr)
        return 1
    runner = run_case_onnxruntime if args.backend == "onnxruntime" else run_case
    results = run_pool(chosen, path, args.backend, args.jobs, args.timeout, runner=runner)
    summary = summarize(cases, results, args.backend)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print_report(summary, args.verbose)
    print(f"{len(chosen)} cases in {summary['seconds']} s (onnx {summary['onnx']}, cache {path})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1, default=str)
    return 0


def annotate_scope(cases):
    import onnx
    for c in cases:
        if "scope" not in c:
            c["scope"] = out_of_scope(onnx.load_from_string(c["model"]))
    return cases


if __name__ == "__main__":
    sys.exit(main())
