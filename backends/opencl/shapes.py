"""Kernel-argument helpers (stride arithmetic itself lives in engine.geometry)."""


def pad_left(values, n, fill):
    return [fill] * (n - len(values)) + list(values)
