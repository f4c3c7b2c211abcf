"""ONNX -> Graph IR.

Every node is brought to the newest ONNX form of its op (attributes that later opsets turned
into inputs become constant inputs; old semantics are rewritten), then lowered into mixnn's
core op set (docs/ops.md): Gemm -> MatMul + Add, BatchNormalization with constant statistics
-> Mul + Add, variadic Sum/Mean/Max/Min -> chains of binary ops, old-style Softmax -> Flatten +
Softmax + Reshape. `onnx` is imported here only, so running a .mixnn file never needs it.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import ModelFormatError, UnsupportedOpError
from .ir import Graph, Node, Value
from .onnx_types import onnx_dtype

MIN_OPSET = 1
IGNORED_DOMAINS = ("", "ai.onnx")


def load_onnx(model):
    import onnx
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelFormatError(f"model file '{path}' does not exist")
        try:
            return onnx.load(path)
        except Exception as e:
            raise ModelFormatError(f"'{path}' is not a readable ONNX model: {type(e).__name__}: {e}") from None
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model))
        except Exception as e:
            raise ModelFormatError(f"bytes are not a readable ONNX model: {type(e).__name__}: {e}") from None
    return model


def convert(model) -> Graph:
    import onnx
    proto = load_onnx(model)
    if not isinstance(proto, onnx.ModelProto) or not proto.HasField("graph"):
        raise ModelFormatError("not an ONNX ModelProto with a graph")
    opsets = {o.domain: o.version for o in proto.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx", 0))
    newest = onnx.defs.onnx_opset_version()
    name = proto.graph.name or "model"
    if not MIN_OPSET <= opset <= newest:
        raise UnsupportedOpError(f"model '{name}': opset {opset} is outside the supported range "
                                 f"{MIN_OPSET}..{newest}")
    if proto.ir_version > onnx.IR_VERSION:
        raise UnsupportedOpError(f"model '{name}': IR version {proto.ir_version} is newer than the "
                                 f"installed onnx {onnx.__version__} knows ({onnx.IR_VERSION})")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    except Exception:
        inferred = proto.graph  # shape info is only used for display and BN/Softmax rank
    conv = _Converter(opset, name)
    graph = conv.graph_from_proto(proto.graph, inferred)
    graph.opset = {"": opset}
    graph.metadata = {p.key: p.value for p in proto.metadata_props}
    graph.metadata.setdefault("producer", f"{proto.producer_name} {proto.producer_version}".strip())
    return graph.toposort()


def _value_from_type(name, tp):
    if tp.WhichOneof("value") is None:
        return Value(name)  # untyped (allowed for subgraph inputs/outputs): known at run time
    if not tp.HasField("tensor_type"):
        raise UnsupportedOpError(f"value '{name}': only tensor types are supported "
                                 f"(sequence/map/optional are out of scope)")
    tt = tp.tensor_type
    dtype = onnx_dtype(tt.elem_type) if tt.elem_type else None
    shape = None
    if tt.HasField("shape"):
        shape = tuple((d.dim_value if d.dim_value >= 0 else None) if d.HasField("dim_value")
                      else (d.dim_param if d.dim_param not in ("", "?") else None) for d in tt.shape.dim)
    return Value(name, dtype, shape)


class _Converter:
    def __init__(self, opset, model_name):
        self.opset, self.model_name = opset, model_name

    def graph_from_proto(self, gp, inferred=None, outer=False) -> Graph:
        from onnx import numpy_helper
        g = Graph(gp.name or self.model_name)
        g.outer_scope = outer
        self.g = g
        for init in gp.initializer:
            g.add_constant(init.name, _to_array(init, numpy_helper))
        for vi in list((inferred or gp).value_info) + list(gp.output) + list(gp.input):
            try:
                g.values[vi.name] = _value_from_type(vi.name, vi.type)
            except UnsupportedOpError:
                if vi in gp.input or vi in gp.output:
                    raise
        for init in gp.initializer:  # initializers listed as inputs stay constants
            g.values[init.name] = Value(init.name, g.constants[init.name].dtype, g.constants[init.name].shape)
        g.inputs = [i.name for i in gp.input if i.name not in g.constants]
        g.outputs = [o.name for o in gp.output]
        used = set()
        for k, np_ in enumerate(gp.node):
            node = Node(np_.op_type, list(np_.input), list(np_.output),
                        np_.name or f"{np_.op_type}_{k}", {}, np_.domain)
            if node.name in used:
                node.name = f"{node.name}_{k}"
            used.add(node.name)
            if np_.domain not in IGNORED_DOMAINS:
                raise UnsupportedOpError(f"model '{self.model_name}': node '{node.name}' uses op "
                                         f"{np_.op_type} of domain '{np_.domain}', which mixnn does not support")
            for a in np_.attribute:
                node.attrs[a.name] = self._attr(a)
            self._emit(node)
        return g

    def _attr(self, a):
        from onnx import helper, numpy_helper
        from onnx import AttributeProto as A
        if a.type == A.TENSOR:
            return _to_array(a.t, numpy_helper)
        if a.type == A.GRAPH:
            sub = _Converter(self.opset, self.model_name)
            return sub.graph_from_proto(a.g, outer=True)
        if a.type in (A.SPARSE_TENSOR, A.TENSORS, A.GRAPHS, A.SPARSE_TENSORS, A.TYPE_PROTO, A.TYPE_PROTOS):
            raise UnsupportedOpError(f"attribute '{a.name}' of type {a.type} is not supported")
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, list) and v and isinstance(v[0], bytes):
            return [x.decode("utf-8", "replace") for x in v]
        return v

    # -- emitting ----------------------------------------------------------------------
    def const(self, base, array):
        return self.g.add_constant(self.g.unique_name(base), np.asarray(array))

    def add(self, op, inputs, outputs, name, **attrs):
        self.g.nodes.append(Node(op, list(inputs), list(outputs), self.g.unique_name(name), attrs))
        return outputs[0] if outputs else None

    def tmp(self, base):
        name = self.g.unique_name(base)
        self.g.values[name] = Value(name)
        return name

    def _emit(self, node):
        from .frontend_rules import LOWER, UPGRADE, check_version, supported_ops
        self.since = check_version(self, node)
        fn = UPGRADE.get(node.op)
        if fn is not None:
            node = fn(self, node)
            if node is None:
                return
        if node.op not in supported_ops():
            raise UnsupportedOpError(f"model '{self.model_name}': node '{node.name}' uses op {node.op} "
                                     f"(opset {self.opset}), which mixnn does not support")
        lower = LOWER.get(node.op)
        if lower is None or lower(self, node) is False:
            self.g.nodes.append(node)

    def rank(self, value):
        if value in self.g.constants:
            return self.g.constants[value].ndim
        v = self.g.values.get(value)
        return len(v.shape) if v is not None and v.shape is not None else None


def _to_array(tensor, numpy_helper):
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as e:
        raise ModelFormatError(f"tensor '{tensor.name}' cannot be read: {type(e).__name__}: {e}") from None
    if arr.dtype.kind in ("U", "S", "O"):
        raise UnsupportedOpError(f"tensor '{tensor.name}': string tensors are not supported")
    onnx_dtype(_code(arr.dtype))  # refuses dtypes without a mixnn mapping
    return arr


def _code(dtype):
    from .onnx_types import onnx_code
    try:
        return onnx_code(dtype)
    except UnsupportedOpError:
        raise UnsupportedOpError(f"dtype {dtype} is not supported") from None
