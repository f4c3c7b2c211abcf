"""`mixnn run --check`: outputs against onnxruntime, and each node against the CPU backend."""
from __future__ import annotations

import os

import numpy as np


def _diff(got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        return float("inf"), float("inf"), f"shape {got.shape} vs {ref.shape}"
    if ref.size == 0:
        return 0.0, 0.0, ""
    if ref.dtype.kind not in "fc":
        bad = int(np.sum(got != ref))
        return float(bad), float(bad), ""
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    both_nan = np.isnan(got) & np.isnan(ref)
    d[both_nan] = 0
    peak = float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 0.0
    abs_ = float(np.nanmax(d)) if d.size else 0.0
    return abs_, abs_ / max(peak, 1e-12), ""


def within(got, ref, scale=1e-4):
    abs_, _, why = _diff(got, ref)
    ref = np.asarray(ref)
    peak = float(np.max(np.abs(ref[np.isfinite(ref)]))) if ref.dtype.kind == "f" and np.isfinite(ref).any() else 0.0
    return not why and abs_ <= scale * max(1.0, peak)


def check_run(source, model, sess, feed, outs) -> bool:
    ok = True
    if isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".onnx"):
        try:
            import onnxruntime as ort
        except ImportError:
            print("check: onnxruntime is not installed; skipping the output comparison")
        else:
            ref = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, feed)
            for name, got, exp in zip(model.graph.outputs, outs, ref):
                abs_, rel, why = _diff(got, exp)
                good = within(got, exp)
                ok &= good
                print(f"check vs onnxruntime: {name}: max abs diff {abs_:.3g}, max rel diff {rel:.3g} "
                      f"{why}{'ok' if good else 'DIFFERS'}")
    if sess.primary != "cpu":
        ok &= check_nodes(model, sess, feed)
    return ok


def check_nodes(model, sess, feed) -> bool:
    """Run every intermediate value on the session's backend and on the CPU; name the first
    node whose output diverges."""
    from .session import InferenceSession
    from .model import Model
    g = model.graph.copy()
    g.outputs = list(dict.fromkeys([o for n in g.nodes for o in n.outputs if o] + g.outputs))
    debug = Model(g)
    dev = InferenceSession(debug, backend=sess.config.backend, fallback=sess.config.fallback)
    cpu = InferenceSession(debug, backend="cpu")
    got, ref = dev.run(None, feed), cpu.run(None, feed)
    values = dict(zip(g.outputs, zip(got, ref)))
    placement = dev.placement()
    for node in g.nodes:
        for o in node.outputs:
            if o and o in values and not within(*values[o], scale=1e-3):
                abs_, rel, why = _diff(*values[o])
                where = placement.get(node.name, {}).get("backend")
                print(f"check vs cpu: first divergence at node '{node.name}' ({node.op}, on {where}), "
                      f"output '{o}': max abs diff {abs_:.3g}, rel {rel:.3g} {why}")
                return False
    print(f"check vs cpu: all {len(g.nodes)} nodes agree within 1e-3 relative")
    return True
