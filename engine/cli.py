"""The `mixnn` command line: convert, info, run, bench, backends, conformance."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import MixnnError


def _parse_shapes(items):
    """["x=1x3x224x224", ...] -> {"x": (1, 3, 224, 224)}"""
    out = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        try:
            out[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise MixnnError(f"--shape {item!r}: expected NAME=1x3x224x224") from None
    return out


def default_feed(graph, shapes=None, seed=0):
    """Random inputs at the given shapes, symbolic dims defaulting to 1 (batch) or 224."""
    import numpy as np
    rng = np.random.default_rng(seed)
    feed = {}
    for name in graph.inputs:
        v = graph.value(name)
        if shapes and name in shapes:
            shape = shapes[name]
        else:
            shape = tuple(d if isinstance(d, int) else (1 if k == 0 else 224) for k, d in enumerate(v.shape or ()))
        dtype = v.dtype or np.dtype(np.float32)
        if dtype.kind == "f":
            feed[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feed[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feed[name] = rng.integers(0, 10, shape).astype(dtype)
    return feed


def _load_feed(args, graph):
    import numpy as np
    shapes = _parse_shapes(args.shape)
    feed = default_feed(graph, shapes)
    for item in args.input or []:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = graph.inputs[0], item
        if name not in graph.inputs:
            raise MixnnError(f"--input {item}: the model has no input '{name}' (inputs: {graph.inputs})")
        feed[name] = np.load(path)
    return feed


def cmd_convert(args):
    from .model import load
    t0 = time.perf_counter()
    model = load(args.model, optimize=not args.no_optimize)
    if args.quantize:
        raise MixnnError("--quantize int8 is not implemented yet")
    model.save(args.output, fp16_weights=args.fp16_weights)
    for name, change in model.report:
        print(f"  {name:<24} {change}")
    size = os.path.getsize(args.output)
    print(f"{args.model} -> {args.output}: {len(model.graph.nodes)} nodes, {model.params:,} params, "
          f"{size / 1e6:.2f} MB, {time.perf_counter() - t0:.2f} s")


def cmd_info(args):
    from .backend import available_backends, open_backend
    from .model import load
    from .ops import TensorInfo
    from .shape_inference import infer_shapes
    model = load(args.model)
    g = model.graph
    shapes = _parse_shapes(args.shape)
    print(f"model: {g.name}  ({args.model})")
    for title, names in (("inputs", g.inputs), ("outputs", g.outputs)):
        print(f"{title}:")
        for n in names:
            v = g.value(n)
            print(f"  {n:<28} {v.dtype}  {list(v.shape) if v.shape is not None else '?'}")
    print(f"nodes: {len(g.nodes)}   params: {model.params:,}   constants: "
          f"{sum(a.nbytes for a in g.constants.values()) / 1e6:.2f} MB")
    feed = default_feed(g, shapes)
    print(f"FLOPs at {', '.join(f'{k}{tuple(a.shape)}' for k, a in feed.items())}: "
          f"{model.flops({k: a.shape for k, a in feed.items()}) / 1e9:.3f} G")
    print("ops: " + ", ".join(f"{op} {n}" for op, n in model.ops.items()))
    cpu = open_backend("cpu")
    infos = infer_shapes(g, {k: TensorInfo(a.shape, a.dtype) for k, a in feed.items()}, cpu.evaluate)
    print("backend support (nodes it would run at these shapes):")
    for name, desc in available_backends().items():
        if desc.startswith("unavailable"):
            print(f"  {name:<8} {desc}")
            continue
        b = cpu if name == "cpu" else open_backend(name)
        declined = {}
        live = [n for n in g.nodes if not all(infos.get(o) is not None and infos[o].value is not None
                                              for o in n.outputs if o)]
        for n in live:
            if any(infos.get(x) is None for x in list(n.inputs) + list(n.outputs) if x):
                declined[n.op] = declined.get(n.op, 0) + 1
                continue
            why = b.supports(n, [infos[i] if i else None for i in n.inputs], [infos[o] for o in n.outputs if o])
            if why:
                declined[n.op] = declined.get(n.op, 0) + 1
        ran = len(live) - sum(declined.values())
        extra = f"; declines {', '.join(f'{k} x{v}' for k, v in declined.items())}" if declined else ""
        print(f"  {name:<8} {ran}/{len(live)}{extra}")
    if args.memory:
        _print_memory(model, feed, "cpu")


def _print_memory(model, feed, backend):
    from .session import InferenceSession
    sess = InferenceSession(model, backend=backend)
    sess.run(None, feed)
    for name, m in sess.memory().items():
        if not m.get("naive_bytes"):
            continue
        print(f"memory[{name}]: arena {m['arena_bytes'] / 1e6:.2f} MB, naive {m['naive_bytes'] / 1e6:.2f} MB "
              f"(naive/arena {m['naive_bytes'] / max(m['arena_bytes'], 1):.2f}x), lower bound "
              f"{m['lower_bound_bytes'] / 1e6:.2f} MB (arena/lower bound "
              f"{m['arena_bytes'] / max(m['lower_bound_bytes'], 1):.3f}), static {m['static_bytes'] / 1e6:.2f} MB, "
              f"allocations last run {m['allocations_last_run']}")


def cmd_run(args):
    import numpy as np
    from .model import load
    from .session import InferenceSession
    t0 = time.perf_counter()
    model = load(args.model)
    sess = InferenceSession(model, backend=args.backend, fallback=args.fallback, threads=args.threads,
                            cache_dir=args.cache_dir)
    feed = _load_feed(args, model.graph)
    outs = sess.run(None, feed)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        outs = sess.run(None, feed)
        times.append(time.perf_counter() - t)
    placed = sess.placement()
    executed = [p for p in placed.values() if p["backend"] is not None]
    on_primary = sum(1 for p in executed if p["backend"] == sess.primary)
    print(f"{args.model} on {args.backend}: first run {first * 1e3:.1f} ms (load+prepare+run)"
          + (f", median {np.median(times) * 1e3:.2f} ms, min {min(times) * 1e3:.2f} ms over {args.runs} runs"
             if times else "") + f"; {on_primary}/{len(executed)} nodes on {sess.primary}")
    for name, out in zip(model.graph.outputs, outs):
        print(f"  {name:<28} {out.dtype} {list(out.shape)}  mean {float(np.mean(out)) if out.size else 0:.5g}")
    if args.output:
        np.savez(args.output, **dict(zip(model.graph.outputs, outs)))
    if args.memory:
        _print_memory(model, feed, args.backend)
    if args.profile:
        from .report import print_profile
        print_profile(sess.profile(feed))
    if args.check:
        from .check import check_run
        if not check_run(args.model, model, sess, feed, outs):
            return 1
    return 0


def cmd_backends(args):
    from .backend import available_backends
    for name, desc in available_backends().items():
        print(f"{name:<8} {desc}")


def cmd_bench(args):
    from .bench import main as bench_main
    return bench_main(args.rest)


def cmd_conformance(args):
    from .conformance import main as conf_main
    return conf_main(args.rest)


PASSTHROUGH = {"bench": "engine.bench", "conformance": "engine.conformance"}


def build_parser():
    p = argparse.ArgumentParser(prog="mixnn", description="mixnn: ONNX -> .mixnn, run on cpu/opencl/vulkan/gl")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="convert an ONNX model to .mixnn (optimized)")
    c.add_argument("model")
    c.add_argument("output")
    c.add_argument("--fp16-weights", action="store_true", help="store float weights as fp16")
    c.add_argument("--no-optimize", action="store_true")
    c.add_argument("--quantize", choices=["int8"])
    c.add_argument("--calib")
    c.set_defaults(fn=cmd_convert)
    i = sub.add_parser("info", help="inputs/outputs, ops, params, FLOPs, backend support")
    i.add_argument("model")
    i.add_argument("--shape", action="append", help="NAME=1x3x224x224")
    i.add_argument("--memory", action="store_true", help="plan memory on cpu and report arena vs naive")
    i.set_defaults(fn=cmd_info)
    r = sub.add_parser("run", help="run a model once (or --runs N) on a backend")
    r.add_argument("model")
    r.add_argument("--backend", default="cpu")
    r.add_argument("--fallback", default="cpu")
    r.add_argument("--input", action="append", help="x.npy or NAME=x.npy")
    r.add_argument("--shape", action="append", help="NAME=1x3x224x224 for random inputs")
    r.add_argument("--runs", type=int, default=0)
    r.add_argument("--threads", type=int)
    r.add_argument("--cache-dir")
    r.add_argument("--output", help="save outputs to an .npz")
    r.add_argument("--check", action="store_true",
                   help="compare outputs with onnxruntime and each node with the cpu backend")
    r.add_argument("--profile", action="store_true", help="per-node time table")
    r.add_argument("--memory", action="store_true", help="arena vs naive vs lower bound")
    r.set_defaults(fn=cmd_run)
    b = sub.add_parser("bench", help="benchmark against onnxruntime (see mixnn bench -h)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    k = sub.add_parser("conformance", help="the ONNX node test suite (see mixnn conformance -h)", add_help=False)
    k.add_argument("rest", nargs=argparse.REMAINDER)
    k.set_defaults(fn=cmd_conformance)
    sub.add_parser("backends", help="available backends, and why the others are not").set_defaults(fn=cmd_backends)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:  # these parse their own options (argparse.REMAINDER
        import importlib                 # cannot take a leading "-h" or "--backends")
        try:
            return importlib.import_module(PASSTHROUGH[argv[0]]).main(argv[1:]) or 0
        except MixnnError as e:
            print(f"mixnn {argv[0]}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args) or 0
    except MixnnError as e:
        print(f"mixnn {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
