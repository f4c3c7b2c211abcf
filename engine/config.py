"""ScheduleConfig: the session's knobs, named after MNN's ScheduleConfig."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .errors import MixnnError


@dataclass
class ScheduleConfig:
    backend: str = "cpu"          # primary backend, "opencl:1" picks a device
    fallback: str = "cpu"         # where nodes the primary declines go
    placement: dict = field(default_factory=dict)  # {node name or op type: backend}
    mode: str = "fixed"           # "fixed" | "auto" (cheapest placement, transfers included)
    precision: str = "fp32"       # "fp32" | "fp16" (GPU backends)
    threads: int | None = None    # CPU threads (BLAS); None: leave as is
    strict: bool = False          # True: an op that would fall back raises
    cache_dir: str | None = None  # compiled kernels / pipelines persist here
    optimize: bool = True         # run the graph optimizer when converting ONNX on the fly

    @classmethod
    def build(cls, config=None, **kwargs) -> "ScheduleConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise MixnnError(f"unknown session option(s) {sorted(unknown)}; known: {sorted(names)}")
        base = config if config is not None else cls()
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        values.update({k: v for k, v in kwargs.items() if v is not None})
        cfg = cls(**values)
        if cfg.mode not in ("fixed", "auto"):
            raise MixnnError(f"mode must be 'fixed' or 'auto', not {cfg.mode!r}")
        if cfg.precision not in ("fp32", "fp16"):
            raise MixnnError(f"precision must be 'fp32' or 'fp16', not {cfg.precision!r}")
        return cfg
