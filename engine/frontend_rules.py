"""Per-op rules of the ONNX frontend: upgrades to the newest op form, and lowerings to core ops.

An UPGRADE rule takes (converter, node) and returns the node in its newest ONNX form (or None
when it emitted replacement nodes itself). A LOWER rule emits core ops for the node and returns
nothing, or returns False to keep the node as it is.
"""
from __future__ import annotations

import numpy as np

from .errors import ModelFormatError, UnsupportedOpError

UPGRADE, LOWER = {}, {}


def rule(table, *ops):
    def deco(fn):
        for op in ops:
            table[op] = fn
        return fn
    return deco


def supported_ops():
    from backends.cpu.kernels import KERNELS
    import backends.cpu  # noqa: F401  (registers the kernels)
    return set(KERNELS)


# Old op versions that no upgrade rule brings to the newest form: (op, since_version) -> why.
REFUSED = {("Tile", 1): "tiles/axis inputs", ("Upsample", 1): "width_scale/height_scale attributes"}
# Before opset 7 these took `broadcast` and `axis` attributes (numpy-style broadcasting came in 7).
LEGACY_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"}
# Attributes of old versions that mean nothing for inference (in-place hints, test mode...).
LEGACY_ATTRS = ("consumed_inputs", "is_test", "broadcast")


def check_version(c, node):
    """The since-version of the node's op at the model's opset; refuses versions mixnn does not
    implement (ops the opset does not define, old forms without an upgrade rule) and nodes that
    do not fit their op's schema (input/output counts, required inputs and attributes, types)."""
    import onnx
    try:
        schema = onnx.defs.get_schema(node.op, c.opset, "")
    except onnx.defs.SchemaError:
        raise UnsupportedOpError(f"model '{c.model_name}': node '{node.name}' uses op {node.op}, which "
                                 f"ONNX opset {c.opset} does not define") from None
    since = schema.since_version
    _check_structure(c, node, schema)
    why = REFUSED.get((node.op, since))
    if since < 7 and node.op in LEGACY_BROADCAST and node.attrs.get("broadcast") and "axis" in node.attrs:
        why = "legacy broadcasting along an axis"
    if node.op == "BatchNormalization" and node.attrs.pop("spatial", 1) == 0:
        why = "spatial=0 (per-activation statistics)"
    if why:
        raise UnsupportedOpError(f"model '{c.model_name}': node '{node.name}' uses {node.op}-{since} "
                                 f"(opset {c.opset}) with {why}, which mixnn does not implement; "
                                 f"export the model with a newer opset")
    if since < 7:
        for a in LEGACY_ATTRS:
            node.attrs.pop(a, None)
    return since


def _check_structure(c, node, schema):
    from onnx.defs import OpSchema
    where = f"model '{c.model_name}': node '{node.name}' ({node.op}-{schema.since_version})"
    for what, names, lo, hi, params in (("inputs", node.inputs, schema.min_input, schema.max_input, schema.inputs),
                                        ("outputs", node.outputs, schema.min_output, schema.max_output,
                                         schema.outputs)):
        if not lo <= len(names) <= hi:
            span = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 2 ** 30 else f"at least {lo}"
            raise ModelFormatError(f"{where} has {len(names)} {what}; the op takes {span}")
        for k, p in enumerate(params[:len(names)]):
            if p.option == OpSchema.FormalParameterOption.Single and not names[k]:
                raise ModelFormatError(f"{where}: required {what[:-1]} {k} ('{p.name}') is empty")
    for name, spec in schema.attributes.items():
        if spec.required and name not in node.attrs:
            raise ModelFormatError(f"{where}: required attribute '{name}' is missing")
    for name, value in node.attrs.items():
        spec = schema.attributes.get(name)
        if spec is None:
            raise ModelFormatError(f"{where}: the op has no attribute '{name}'")
        kind = spec.type.name
        if not _ATTR_CHECKS.get(kind, lambda v: True)(value):
            raise ModelFormatError(f"{where}: attribute '{name}' must be {kind}, not {type(value).__name__} "
                                   f"{str(value)[:60]}")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


_ATTR_CHECKS = {
    "INT": _is_int,
    "FLOAT": lambda v: isinstance(v, (float, int, np.floating, np.integer)),
    "STRING": lambda v: isinstance(v, (str, bytes)),
    "INTS": lambda v: isinstance(v, (list, tuple)) and all(_is_int(x) for x in v),
    "FLOATS": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (float, int)) for x in v),
    "STRINGS": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (str, bytes)) for x in v),
    "TENSOR": lambda v: isinstance(v, np.ndarray),
}


@rule(UPGRADE, "Cast")
def _cast(c, node):
    to = node.attrs.get("to")
    if isinstance(to, str):  # Cast-1 names the type: "FLOAT"
        import onnx
        try:
            node.attrs["to"] = onnx.TensorProto.DataType.Value(to.upper())
        except ValueError:
            raise UnsupportedOpError(f"node '{node.name}': Cast to unknown type '{to}'") from None
    return node


@rule(UPGRADE, "Concat")
def _concat(c, node):
    if c.since < 4:
        node.attrs.setdefault("axis", 1)
    return node


@rule(UPGRADE, "If", "Loop", "Scan")
def _control_flow(c, node):
    """Values a subgraph reads from enclosing graphs become explicit inputs (after the op's own),
    named in `outer_values` as the subgraph knows them: the planner then sees the dependency."""
    from .ir import Graph
    free = set()
    for g in (v for v in node.attrs.values() if isinstance(v, Graph)):
        made = set(g.inputs) | set(g.constants) | {o for n in g.nodes for o in n.outputs if o}
        free |= {i for n in g.nodes for i in n.inputs if i and i not in made}
        free |= {o for o in g.outputs if o not in made}
    node.attrs["outer_values"] = sorted(free)
    node.inputs = list(node.inputs) + sorted(free)
    if node.op == "Scan" and c.since < 9:  # Scan-8: batch axis first, sequence_lens input
        node.attrs["batched"] = 1
        if "directions" in node.attrs:
            node.attrs["scan_input_directions"] = node.attrs.pop("directions")
    return node


@rule(UPGRADE, "DFT")
def _dft(c, node):
    return _attr_to_input(c, node, "axis", 2, default=1) if c.since < 20 else node


@rule(UPGRADE, "Scatter")
def _scatter(c, node):
    node.op = "ScatterElements"  # Scatter-9/11 is ScatterElements under its old name
    return node


def _attr_to_input(c, node, attr, position, dtype=np.int64, default=None):
    """Move attribute `attr` into input slot `position` as a constant."""
    value = node.attrs.pop(attr, default)
    while len(node.inputs) < position:
        node.inputs.append("")
    if value is None:
        return node
    name = c.const(f"{node.name}_{attr}", np.asarray(value, dtype=dtype))
    if len(node.inputs) == position:
        node.inputs.append(name)
    else:
        node.inputs[position] = name
    return node


@rule(UPGRADE, "Constant")
def _constant(c, node):
    a = node.attrs
    if "value" in a:
        v = a["value"]
    elif "value_float" in a:
        v = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        v = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        v = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        v = np.array(a["value_ints"], np.int64)
    else:
        raise UnsupportedOpError(f"node '{node.name}': Constant with attributes {sorted(a)} is not supported")
    c.g.add_constant(node.outputs[0], np.asarray(v))
    return None


@rule(UPGRADE, "Reshape")
def _reshape(c, node):
    return _attr_to_input(c, node, "shape", 1) if "shape" in node.attrs else node


@rule(UPGRADE, "Squeeze", "Unsqueeze")
def _squeeze(c, node):
    return _attr_to_input(c, node, "axes", 1) if "axes" in node.attrs else node


@rule(UPGRADE, "Split")
def _split(c, node):
    return _attr_to_input(c, node, "split", 1) if "split" in node.attrs else node


@rule(UPGRADE, "Slice")
def _slice(c, node):
    if "starts" in node.attrs:
        node = _attr_to_input(c, node, "starts", 1)
        node = _attr_to_input(c, node, "ends", 2)
        if "axes" in node.attrs:
            node = _attr_to_input(c, node, "axes", 3)
    return node


@rule(UPGRADE, "Clip")
def _clip(c, node):
    if c.opset < 11:
        lo, hi = node.attrs.pop("min", None), node.attrs.pop("max", None)
        node.inputs = node.inputs[:1]
        node.inputs.append(c.const(f"{node.name}_min", np.float32(lo)) if lo is not None else "")
        node.inputs.append(c.const(f"{node.name}_max", np.float32(hi)) if hi is not None else "")
    return node


@rule(UPGRADE, "Pad")
def _pad(c, node):
    if "paddings" in node.attrs:  # Pad-1
        node.attrs["pads"] = node.attrs.pop("paddings")
    if "pads" in node.attrs:
        value = node.attrs.pop("value", 0.0)
        node = _attr_to_input(c, node, "pads", 1)
        node.inputs.append(c.const(f"{node.name}_value", np.float32(value)))
    return node


REDUCE_AXES_INPUT_FROM = {"ReduceSum": 13}


@rule(UPGRADE, "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
def _reduce(c, node):
    return _attr_to_input(c, node, "axes", 1) if "axes" in node.attrs else node


@rule(UPGRADE, "TopK")
def _topk(c, node):
    return _attr_to_input(c, node, "k", 1, default=None) if "k" in node.attrs else node


@rule(UPGRADE, "Upsample")
def _upsample(c, node):
    mode = node.attrs.get("mode", "nearest")
    if "scales" in node.attrs:
        scales = c.const(f"{node.name}_scales", np.asarray(node.attrs.pop("scales"), np.float32))
    else:
        scales = node.inputs[1]
    return _resize_node(c, node, scales, mode)


def _resize_node(c, node, scales, mode):
    from .ir import Node
    attrs = {"mode": "linear" if mode in ("linear", "bilinear") else mode,
             "coordinate_transformation_mode": "asymmetric"}
    if attrs["mode"] == "nearest":
        attrs["nearest_mode"] = "floor"
    return Node("Resize", [node.inputs[0], "", scales], node.outputs, node.name, attrs)


@rule(UPGRADE, "Resize")
def _resize(c, node):
    if c.opset < 11:  # Resize-10: (X, scales), asymmetric coordinates, like Upsample
        return _resize_node(c, node, node.inputs[1], node.attrs.get("mode", "nearest"))
    return node


@rule(UPGRADE, "Softmax", "LogSoftmax", "Hardmax")
def _softmax(c, node):
    if c.opset >= 13:
        return node
    axis = node.attrs.get("axis", 1)
    rank = c.rank(node.inputs[0])
    if rank is not None and (axis % rank if rank else 0) == rank - 1:
        node.attrs["axis"] = -1
        return node
    # Old semantics: flatten to 2-D at `axis`, normalize rows, restore the shape.
    x = node.inputs[0]
    flat = c.tmp(f"{node.name}_flat")
    c.add("Flatten", [x], [flat], f"{node.name}_flatten", axis=axis)
    sm = c.tmp(f"{node.name}_2d")
    c.add(node.op, [flat], [sm], node.name, axis=-1)
    shape = c.tmp(f"{node.name}_shape")
    c.add("Shape", [x], [shape], f"{node.name}_shapeof")
    c.add("Reshape", [sm, shape], node.outputs, f"{node.name}_restore")
    return None


@rule(LOWER, "Gemm")
def _gemm(c, node):
    a, b = node.inputs[0], node.inputs[1]
    cin = node.inputs[2] if len(node.inputs) > 2 else ""
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if node.attrs.get("transA", 0):
        at = c.tmp(f"{node.name}_At")
        c.add("Transpose", [a], [at], f"{node.name}_transA", perm=[1, 0])
        a = at
    if b in c.g.constants:
        w = c.g.constants[b]
        w = (w.T if node.attrs.get("transB", 0) else w) * np.asarray(alpha, w.dtype)
        b = c.const(f"{b}_gemm", np.ascontiguousarray(w))
        alpha = 1.0
    elif node.attrs.get("transB", 0):
        bt = c.tmp(f"{node.name}_Bt")
        c.add("Transpose", [b], [bt], f"{node.name}_transB", perm=[1, 0])
        b = bt
    out = node.outputs[0]
    need_tail = alpha != 1.0 or cin
    mm = c.tmp(f"{node.name}_mm") if need_tail else out
    c.add("MatMul", [a, b], [mm], node.name)
    if alpha != 1.0:
        scaled = c.tmp(f"{node.name}_alpha") if cin else out
        c.add("Mul", [mm, c.const(f"{node.name}_alpha", np.float32(alpha))], [scaled], f"{node.name}_scale")
        mm = scaled
    if cin:
        if cin in c.g.constants:
            bias = c.const(f"{cin}_gemm", c.g.constants[cin] * np.asarray(beta, c.g.constants[cin].dtype))
        elif beta != 1.0:
            bias = c.tmp(f"{node.name}_beta")
            c.add("Mul", [cin, c.const(f"{node.name}_beta", np.float32(beta))], [bias], f"{node.name}_bscale")
        else:
            bias = cin
        c.add("Add", [mm, bias], [out], f"{node.name}_bias")


@rule(LOWER, "BatchNormalization")
def _batchnorm(c, node):
    x, scale, bias, mean, var = node.inputs[:5]
    if len([o for o in node.outputs if o]) > 1 or node.attrs.get("training_mode", 0):
        raise UnsupportedOpError(f"node '{node.name}': BatchNormalization in training mode is not supported")
    rank = c.rank(x)
    if rank is None or not all(v in c.g.constants for v in (scale, bias, mean, var)):
        return False
    eps = node.attrs.get("epsilon", 1e-5)
    k = c.g.constants
    s = (k[scale] / np.sqrt(k[var].astype(np.float64) + eps)).astype(k[scale].dtype)
    t = (k[bias] - k[mean] * s).astype(k[scale].dtype)
    shape = (-1,) + (1,) * max(rank - 2, 0)
    mul = c.tmp(f"{node.name}_scaled")
    c.add("Mul", [x, c.const(f"{node.name}_scale", s.reshape(shape))], [mul], f"{node.name}_mul")
    c.add("Add", [mul, c.const(f"{node.name}_shift", t.reshape(shape))], node.outputs[:1], node.name)


@rule(LOWER, "Sum", "Mean", "Max", "Min")
def _variadic(c, node):
    ins = [i for i in node.inputs if i]
    if len(ins) == 2 and node.op in ("Max", "Min"):
        return False
    if len(ins) == 1 and node.op != "Mean":
        c.add("Identity", ins, node.outputs, node.name)
        return None
    binary = "Add" if node.op in ("Sum", "Mean") else node.op
    acc = ins[0]
    for k, nxt in enumerate(ins[1:]):
        last = k == len(ins) - 2 and node.op != "Mean"
        out = node.outputs[0] if last else c.tmp(f"{node.name}_{k}")
        c.add(binary, [acc, nxt], [out], f"{node.name}_{k}")
        acc = out
    if node.op == "Mean":
        dtype = c.g.values.get(ins[0]).dtype if c.g.values.get(ins[0]) is not None else None
        div = c.const(f"{node.name}_n", np.asarray(len(ins), dtype or np.float32))
        c.add("Div", [acc, div], node.outputs, f"{node.name}_div")
