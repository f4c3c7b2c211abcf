"""Model: a loaded graph to inspect (ops, params, FLOPs) and save as .mixnn."""
from __future__ import annotations

import os

import numpy as np

from .errors import ModelFormatError


class Model:
    def __init__(self, graph, source=None, report=None):
        self.graph = graph
        self.source = source
        self.report = report or []  # what each optimizer pass changed

    @property
    def ops(self) -> dict:
        return self.graph.op_histogram()

    @property
    def params(self) -> int:
        return self.graph.param_count()

    def flops(self, shapes: dict | None = None) -> int:
        from .flops import count_flops
        return count_flops(self.graph, shapes)

    def save(self, path, fp16_weights=False):
        from . import modelfile
        graph = self.graph
        if fp16_weights:
            graph = graph.copy()
            graph.constants = {k: (v.astype(np.float16) if v.dtype == np.float32 else v)
                               for k, v in graph.constants.items()}
            graph.metadata["fp16_weights"] = "1"
        return modelfile.save(graph, path)

    def __repr__(self):
        return (f"Model('{self.graph.name}', {len(self.graph.nodes)} nodes, {self.params:,} params, "
                f"inputs {self.graph.inputs}, outputs {self.graph.outputs})")


def _is_onnx(model):
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model).lower().endswith(".onnx")
    return type(model).__name__ == "ModelProto"


def load(model, optimize=True) -> Model:
    """Load a .mixnn file, or convert an .onnx file / onnx.ModelProto (optimized by default)."""
    if isinstance(model, Model):
        return model
    if _is_onnx(model):
        from .onnx_frontend import convert
        graph = convert(model)
        report = []
        if optimize:
            from .optimizer import optimize as run_passes
            graph, report = run_passes(graph)
        return Model(graph, model if isinstance(model, (str, os.PathLike)) else None, report)
    if isinstance(model, (str, os.PathLike, bytes, bytearray, memoryview)):
        from . import modelfile
        graph = modelfile.load(model)
        if graph.metadata.get("fp16_weights") == "1":
            graph.constants = {k: (v.astype(np.float32) if v.dtype == np.float16 else v)
                               for k, v in graph.constants.items()}
        return Model(graph, model if isinstance(model, (str, os.PathLike)) else None)
    raise ModelFormatError(f"cannot load a model from {type(model).__name__}: give a path to .onnx/.mixnn, "
                           f"bytes of a .mixnn file, or an onnx.ModelProto")
