"""The CPU backend's plan-time fusion: a convolution's residual Add, and the activation after
it, run in the convolution's epilogue; a scalar Mul/Add after a convolution's activation in one
pass after it (_affine_chain); a ConvTranspose's activation in its own epilogue; a
squeeze-and-excitation block (GlobalAveragePool, two 1x1 Convs, Mul) as one node
(_squeeze_chain, squeeze.py).

    y = Conv(x, W, b);  s = Add(y, z);  out = Relu(s)   ->   out = Conv(x, W, b, z) [Relu]

A Conv with a fourth input computes act(conv(x, W, b) + z), as onnxruntime's FusedConv does:
the residual costs one pass over the output instead of an Add pass and an activation pass
(ResNet-18: 8 Adds and 8 Relus, ~1 ms of 26). It is a CPU-only form, so it is made here, for
the nodes the scheduler placed on the CPU, and not by the graph optimizer, whose graph every
backend must run (onnxruntime registers its Conv+Add fusion for the CPU provider alone too).

Taken only when nobody else can see the values in between: y is read by the Add alone, s by the
activation alone (or the Add is the end), neither is a graph output, z has y's shape and
dtype (no broadcasting) and is computed at run time, and the Conv has no activation of its own
and runs on one of the fast executors (conv.ConvCPU). The merged node keeps the Conv's name and
runs at the Add's (or the activation's) place: z may be computed after the Conv.
"""
import numpy as np

from engine.ir import Node
from engine.optimizer.fuse_activation import ACTIVATIONS, activation_attrs


def fuse(backend, nodes, readers, keep, infos):
    """`nodes` with every Conv -> Add [-> activation], Conv -> Mul [-> Add] by scalars and
    ConvTranspose -> activation chain among them merged (Backend.fuse)."""
    producer = {o: n for n in nodes for o in n.outputs if o}
    consumer = {}
    for n in nodes:
        for v in n.inputs:
            if v:
                consumer.setdefault(v, n)
    merged, dropped = {}, set()  # id(last node of a chain) -> merged node; ids of nodes gone
    for node in nodes:
        if node.op == "ConvTranspose":
            chain = _transpose_chain(backend, node, consumer, readers, keep, infos)
        elif node.op == "Mul":
            chain = (_affine_chain(backend, node, producer, consumer, readers, keep, infos)
                     or _squeeze_chain(backend, node, producer, readers, keep, infos))
        else:
            chain = _chain(backend, node, producer, consumer, readers, keep, infos)
        if chain is None or any(id(n) in dropped for n in chain[0]):
            continue
        parts, fused = chain
        fused.attrs["fused"] = [n.op for n in parts[1:]]  # for profiles: what the node also ran
        merged[id(parts[-1])] = fused
        dropped.update(id(n) for n in parts)
    if not merged:
        return nodes
    return [merged.get(id(n), n) for n in nodes if id(n) not in dropped or id(n) in merged]


def _chain(backend, add, producer, consumer, readers, keep, infos):
    """([conv, add(, act)], merged node) when `add` ends a residual chain that can be merged."""
    if add.op != "Add" or len(add.inputs) != 2 or add.domain not in ("", "ai.onnx"):
        return None
    s = add.outputs[0]
    for k in (0, 1):
        y, z = add.inputs[k], add.inputs[1 - k]
        conv = producer.get(y)
        if conv is None or conv.op != "Conv" or conv.attrs.get("activation") or y == z:
            continue
        if readers.get(y) != 1 or y in keep or not _same(infos, y, z) or not _same(infos, y, s):
            continue
        if infos[z].value is not None:
            continue  # a constant z is a bias: fold_batchnorm's job
        act = consumer.get(s)
        act_attrs = _activation(act, s, readers, keep, infos)
        inputs = list(conv.inputs) + [""] * (3 - len(conv.inputs)) + [z]
        # With the activation if the executor takes it there, else the Add alone.
        for parts, attrs in (([conv, add, act], act_attrs), ([conv, add], {})):
            fused = None if attrs is None else _merged(backend, conv, inputs, parts[-1], attrs, infos)
            if fused is not None:
                return parts, fused
    return None


def _transpose_chain(backend, node, consumer, readers, keep, infos):
    """([convtranspose, act], merged node): the activation after a ConvTranspose in its
    epilogue (the graph optimizer fuses activations into Conv and MatMul only, the forms
    every backend takes; DBNet's head runs ConvTranspose -> Relu on 320x320 maps)."""
    y = node.outputs[0]
    if node.attrs.get("activation") or len(node.outputs) != 1:
        return None
    act = consumer.get(y)
    attrs = _activation(act, y, readers, keep, infos)
    fused = None if attrs is None else _merged(backend, node, node.inputs, act, attrs, infos)
    return None if fused is None else ([node, act], fused)


def _affine_chain(backend, mul, producer, consumer, readers, keep, infos):
    """([conv, mul(, add)], merged node): y = Conv(..) [act];  Mul(y, s);  Add(., b) with scalar
    constants s, b -- PaddlePaddle's learnable affine blocks after each activation of PP-LCNet
    (PP-OCRv4 det: 14, rec: 16), which fold_input_affine cannot fold into a padded next Conv.
    The merged Conv carries post_scale/post_shift: y = act(conv) * s + b, one pass after it."""
    if len(mul.inputs) != 2 or mul.domain not in ("", "ai.onnx"):
        return None
    m = mul.outputs[0]
    for k in (0, 1):
        y, c = mul.inputs[k], mul.inputs[1 - k]
        conv = producer.get(y)
        scale = _scalar(infos, c)
        if conv is None or conv.op != "Conv" or len(conv.inputs) > 3 or scale is None \
                or readers.get(y) != 1 or y in keep or not _same(infos, y, m):
            continue
        parts, shift = [conv, mul], 0.0
        add = consumer.get(m)
        if add is not None and add.op == "Add" and len(add.inputs) == 2 and add.domain in ("", "ai.onnx") \
                and readers.get(m) == 1 and m not in keep and _same(infos, m, add.outputs[0]):
            b = _scalar(infos, add.inputs[1] if add.inputs[0] == m else add.inputs[0])
            if b is not None:
                parts, shift = parts + [add], b
        fused = _merged(backend, conv, conv.inputs, parts[-1], {"post_scale": scale, "post_shift": shift}, infos)
        if fused is not None:
            return parts, fused
    return None


def _squeeze_chain(backend, mul, producer, readers, keep, infos):
    """([pool, squeeze, excite, mul], merged SqueezeExcite node): y = x * s where
    s = Conv1x1(Conv1x1(GlobalAveragePool(x))) with constant weights, each value read by the
    next node alone (squeeze.py)."""
    if len(mul.inputs) != 2 or mul.domain not in ("", "ai.onnx"):
        return None
    for k in (0, 1):
        x, s = mul.inputs[k], mul.inputs[1 - k]
        excite = producer.get(s)
        squeeze = producer.get(excite.inputs[0]) if excite is not None and excite.inputs else None
        pool = producer.get(squeeze.inputs[0]) if squeeze is not None and squeeze.inputs else None
        if pool is None or pool.op != "GlobalAveragePool" or pool.inputs[0] != x or x == s:
            continue
        parts = [pool, squeeze, excite, mul]
        inner = [pool.outputs[0], squeeze.outputs[0], s]
        if any(readers.get(v) != 1 or v in keep for v in inner) or not _same(infos, x, mul.outputs[0]):
            continue
        if not all(_pointwise(conv, infos) for conv in (squeeze, excite)):
            continue
        inputs = [x] + [v for conv in (squeeze, excite) for v in (list(conv.inputs) + [""])[1:3]]
        attrs = {"squeeze": dict(squeeze.attrs), "excite": dict(excite.attrs)}
        fused = _merged(backend, pool, inputs, mul, attrs, infos, op="SqueezeExcite")
        if fused is not None:
            return parts, fused
    return None


def _pointwise(conv, infos):
    """A plain 1x1 Conv (one group, no stride or pad, constant weights, no residual or affine)."""
    if conv.op != "Conv" or conv.domain not in ("", "ai.onnx") or len(conv.inputs) > 3 or len(conv.outputs) != 1:
        return False
    a = conv.attrs
    if a.get("group", 1) != 1 or a.get("post_scale") is not None or any(v != 1 for v in a.get("strides", [1, 1])) \
            or any(a.get("pads", [0])) or any(v != 1 for v in a.get("dilations", [1, 1])) \
            or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    w = infos.get(conv.inputs[1])
    return w is not None and w.value is not None and tuple(w.shape[2:]) == (1, 1)


def _merged(backend, head, inputs, last, attrs, infos, op=None):
    """The node that runs a chain from `head` (its op -- or `op` -- name and attributes, plus
    `attrs`, over `inputs`) to `last` (whose output it writes), if the backend's executor for
    the op takes it; else None."""
    out, op = last.outputs[0], op or head.op
    fused = Node(op, list(inputs), [out], head.name, {**head.attrs, **attrs}, head.domain)
    exe = backend.ops.get(op)
    ins = [infos[v] if v else None for v in inputs]
    return fused if exe is not None and exe.supports(backend, fused, ins, [infos[out]]) is None else None


def _scalar(infos, name):
    """The value of a one-element float constant, else None."""
    info = infos.get(name) if name else None
    value = None if info is None else info.value
    if value is None or np.size(value) != 1 or np.asarray(value).dtype.kind != "f":
        return None
    return float(np.asarray(value).reshape(-1)[0])


def _activation(act, s, readers, keep, infos):
    """The Conv attributes of `act` when it can join the chain after s, else None."""
    if act is None or act.op not in ACTIVATIONS or act.domain not in ("", "ai.onnx") \
            or readers.get(s) != 1 or s in keep or act.inputs[0] != s:
        return None
    return activation_attrs(act, lambda name: _scalar(infos, name))


def _same(infos, a, b):
    ia, ib = infos.get(a), infos.get(b)
    return ia is not None and ib is not None and tuple(ia.shape) == tuple(ib.shape) and ia.dtype == ib.dtype
