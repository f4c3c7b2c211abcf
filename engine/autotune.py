"""mode="auto": choose the fastest placement by measuring, transfers included.

Three candidates are planned and timed on the actual feed: the fixed placement (primary +
fallback), all-CPU, and a per-node choice made from the two profiles (each node where the CPU
was faster moves to the CPU). Whole runs are timed, so the copies a mixed placement adds are
paid in the measurement; the chosen placement is therefore never slower (as measured) than
all-CPU or all-primary.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from .plan import Plan
from .scheduler import assign, order_nodes

log = logging.getLogger("mixnn")


def _measure(sess, infos, placement, feed, runs=3):
    plan = Plan(sess.graph, infos, placement, order_nodes(sess.graph, placement), sess.backends,
                sess.pools, sess._statics, sess._evaluate)
    plan.run(feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        plan.run(feed)
        times.append(time.perf_counter() - t0)
    prof = {"nodes": [], "copies": []}
    plan.run(feed, profile=prof)
    return plan, float(np.median(times)), {n["node"]: n["ms"] for n in prof["nodes"]}


def choose(sess, infos, feed):
    cfg = sess.config
    fixed = assign(sess.graph, infos, sess.backends, cfg, sess.primary, sess.fallback)
    if sess.primary == "cpu":
        return fixed
    cpu_only = assign(sess.graph, infos, sess.backends, replace(cfg, placement={}), "cpu", "cpu")
    _, t_fixed, prof_fixed = _measure(sess, infos, fixed, feed)
    _, t_cpu, prof_cpu = _measure(sess, infos, cpu_only, feed)
    moves = {name: "cpu" for name, p in fixed.items()
             if p["backend"] == sess.primary and prof_cpu.get(name, 1e9) < prof_fixed.get(name, 0)}
    candidates = [(t_fixed, "fixed", fixed), (t_cpu, "all-cpu", cpu_only)]
    if moves and len(moves) < sum(p["backend"] == sess.primary for p in fixed.values()):
        mixed = assign(sess.graph, infos, sess.backends, replace(cfg, placement={**moves, **cfg.placement}),
                       sess.primary, sess.fallback)
        _, t_mixed, _ = _measure(sess, infos, mixed, feed)
        candidates.append((t_mixed, "mixed", mixed))
    t, label, best = min(candidates, key=lambda c: c[0])
    for name, p in best.items():
        if p["backend"] != fixed[name]["backend"] and name not in cfg.placement:
            p["reason"] = "cost"
    log.info("auto placement: %s (%s)", label, ", ".join(f"{lab} {tt * 1e3:.2f} ms" for tt, lab, _ in candidates))
    return best
