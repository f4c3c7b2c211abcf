"""The CPU backend's plan-time fusion (backends/cpu/fusion.py) against onnxruntime: residuals:
Conv -> Add(residual) [-> activation] on every convolution strategy, both epilogue paths
(compiled and numpy), the residual computed before or after the Conv in the plan's order, and
the chains that must stay apart (a value seen by someone else, a broadcast); and the
activation after a ConvTranspose."""
import zlib

import numpy as np
import pytest
from onnx import helper

import engine
from test_cpu_fast import activation_nodes, onnx_model
from oracle import assert_close, ort_run

F32 = np.float32

# (x shape, conv W shape, conv attrs): the residual has the conv output's shape.
STRATEGIES = {
    "pointwise": ((1, 8, 9, 11), (8, 8, 1, 1), {}),
    "winograd": ((1, 16, 24, 24), (16, 16, 3, 3), {"pads": [1, 1, 1, 1]}),
    "im2col": ((2, 6, 13, 9), (10, 6, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "depthwise": ((1, 12, 10, 10), (12, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 12}),
}


def residual_model(strategy, act, z_after=True, extra_outputs=(), z_shape=None):
    """x -> conv "c0" (+ bias) ; z = conv "zc" (1x1/strided like the main one) of x ; c = c0 + z ; y = act(c).
    z_after puts z's conv after the main one in the node list (ResNet's downsample branch)."""
    x_shape, w_shape, attrs = STRATEGIES[strategy]
    rng = np.random.default_rng(zlib.crc32(f"{strategy} {act}".encode()))
    x = rng.standard_normal(x_shape).astype(F32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(F32)
    b = rng.standard_normal(w_shape[0]).astype(F32)
    m = w_shape[0]
    zw = (rng.standard_normal((m, x_shape[1], 1, 1)) / np.sqrt(x_shape[1])).astype(F32)
    z_attrs = {"strides": attrs["strides"]} if "strides" in attrs else {}
    main = helper.make_node("Conv", ["x", "w", "b"], ["c0"], **attrs)
    branch = helper.make_node("Conv", ["x", "zw"], ["z"], **z_attrs)
    inits = {"w": w, "b": b, "zw": zw}
    z_name = "z"
    nodes = [main, branch] if z_after else [branch, main]
    if z_shape is not None:  # a broadcast residual: z reduced to z_shape
        nodes.append(helper.make_node("ReduceMean", ["z", "axes"], ["zr"], keepdims=1))
        inits["axes"] = np.array([a for a, s in enumerate(z_shape) if s == 1], np.int64)
        z_name = "zr"
    nodes.append(helper.make_node("Add", ["c0", z_name], ["c"]))
    act_nodes, _, act_inits = activation_nodes(act)
    model = onnx_model(nodes + act_nodes, {"x": x}, "y", {**inits, **act_inits})
    for name in extra_outputs:
        model.graph.output.append(helper.make_tensor_value_info(name, 1, None))
    return model, x


def run_both(model, x):
    sess = engine.InferenceSession(model, backend="cpu")
    got = sess.run(None, {"x": x})
    ref = ort_run(model, {"x": x})
    for g, r in zip(got, ref):
        assert_close(g, r)
    nodes = sess.profile()["nodes"]
    # a merged node names what it also ran; the ops gone from the profile are exactly those
    fused = [op for n in nodes for op in n.get("fused", [])]
    assert len(nodes) + len(fused) == len(sess.graph.nodes), (nodes, [n.op for n in sess.graph.nodes])
    return [n["op"] for n in nodes]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("act", [None, "Relu", "Clip", "Sigmoid", "HardSwish", "LeakyRelu"])
def test_residual_fused(strategy, act, jit_on):
    model, x = residual_model(strategy, act)
    ops = run_both(model, x)
    assert "Add" not in ops, ops  # the Add ran in the Conv's epilogue
    # The numpy pass would need a scratch for LeakyRelu and HardSwish: they stay apart there.
    assert len(ops) == (2 if jit_on or act not in ("HardSwish", "LeakyRelu") else 3), ops


def test_residual_before_the_conv(jit_on):
    model, x = residual_model("winograd", "Relu", z_after=False)
    assert run_both(model, x) == ["Conv", "Conv"]


def test_silu_after_a_residual(jit_on):
    """The compiled pass takes SiLU; numpy's would need a scratch of the output's size, so
    without numba the Add joins the Conv and the SiLU stays apart."""
    model, x = residual_model("pointwise", "SiLU")
    ops = run_both(model, x)
    assert "Add" not in ops and len(ops) == (2 if jit_on else 3), ops


@pytest.mark.parametrize("seen", [("c0",), ("c0", "z"), ("c",)])
def test_value_seen_elsewhere_is_not_fused(seen):
    model, x = residual_model("pointwise", "Relu", extra_outputs=seen)
    ops = run_both(model, x)
    if seen == ("c0",):  # the other Conv takes the Add, with c0 as its residual
        assert ops == ["Conv", "Conv"]
    elif seen == ("c0", "z"):  # both sums' terms are outputs: nothing to fuse
        assert "Add" in ops and "Relu" in ops
    else:  # the Add joins a Conv; the Relu after the visible sum stays a node
        assert "Add" not in ops and "Relu" in ops


def test_broadcast_residual_is_not_fused():
    model, x = residual_model("pointwise", "Relu", z_shape=(1, 8, 1, 1))
    assert "Add" in run_both(model, x)


@pytest.mark.parametrize("act", [None, "Relu", "Sigmoid", "Clip", "SiLU"])
def test_convtranspose_activation_fused(act, jit_on):
    """DBNet's upsampling head: ConvTranspose (kernel == stride) -> activation, one node on CPU."""
    rng = np.random.default_rng(zlib.crc32(f"ct {act}".encode()))
    x = rng.standard_normal((1, 6, 9, 7)).astype(F32)
    w = rng.standard_normal((6, 5, 2, 2)).astype(F32)
    b = rng.standard_normal(5).astype(F32)
    ct = helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2, 2])
    act_nodes, _, act_inits = activation_nodes(act)
    model = onnx_model([ct] + act_nodes, {"x": x}, "y", {"w": w, "b": b, **act_inits})
    ops = run_both(model, x)
    # SiLU's numpy pass needs a scratch the ConvTranspose executor has: it joins too.
    assert ops == ["ConvTranspose"], ops


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("form", ["mul-add", "const-first", "mul-only", "vector-mul"])
def test_affine_after_activation(strategy, form, jit_on):
    """PP-LCNet's learnable affine: Conv -> HardSwish -> Mul(s) -> Add(b), s and b scalars."""
    x_shape, w_shape, attrs = STRATEGIES[strategy]
    rng = np.random.default_rng(zlib.crc32(f"affine {strategy} {form}".encode()))
    x = rng.standard_normal(x_shape).astype(F32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(F32)
    inits = {"w": w, "b": rng.standard_normal(w_shape[0]).astype(F32),
             "s": np.array([1.7] if form != "vector-mul" else rng.standard_normal((w_shape[0], 1, 1)), F32),
             "t": np.array([-0.3], F32)}
    mul_in = ["s", "h"] if form == "const-first" else ["h", "s"]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
             helper.make_node("HardSwish", ["c"], ["h"]),
             helper.make_node("Mul", mul_in, ["m" if form != "mul-only" else "y"])]
    if form != "mul-only":
        nodes.append(helper.make_node("Add", ["t", "m"] if form == "const-first" else ["m", "t"], ["y"]))
    ops = run_both(onnx_model(nodes, {"x": x}, "y", inits), x)
    assert ops == (["Conv", "Mul", "Add"] if form == "vector-mul" else ["Conv"]), ops


def test_no_fusion_across_backends():
    """The Add placed on another backend: the CPU's run of nodes ends at the Conv, which then
    has nothing to merge; the result crosses over and still matches."""
    from conftest import require_backend
    require_backend("opencl")
    model, x = residual_model("pointwise", "Relu")
    sess = engine.InferenceSession(model, backend="cpu", placement={"Add": "opencl"})
    assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    nodes = sess.profile()["nodes"]
    assert [n["backend"] for n in nodes if n["op"] == "Add"] == ["opencl"]
    assert not any(n.get("fused") for n in nodes), nodes


def _act(act, src, dst, tag):
    """ONNX nodes applying `act` to value src into dst (temporaries and constants named by tag)."""
    nodes, _, inits = activation_nodes(act, out=dst)
    rename = {"c": src, "s": f"{tag}_s", "lo": f"{tag}_lo", "hi": f"{tag}_hi"}
    out = [helper.make_node(n.op_type, [rename.get(v, v) for v in n.input], [rename.get(v, v) for v in n.output],
                            **{a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in nodes]
    return out, {rename[k]: v for k, v in inits.items()}


def squeeze_model(act1, act2, bias=True, x_shape=(2, 12, 7, 9), reduce=3, extra_outputs=()):
    """x -> GlobalAveragePool -> Conv1x1 (C -> C/reduce) [act1] -> Conv1x1 (-> C) [act2] -> Mul(x, .)."""
    rng = np.random.default_rng(zlib.crc32(f"se {act1} {act2} {bias}".encode()))
    c = x_shape[1]
    r = max(1, c // reduce)
    x = rng.standard_normal(x_shape).astype(F32)
    inits = {"w1": (rng.standard_normal((r, c, 1, 1)) / np.sqrt(c)).astype(F32),
             "w2": (rng.standard_normal((c, r, 1, 1)) / np.sqrt(r)).astype(F32)}
    if bias:
        inits.update(b1=rng.standard_normal(r).astype(F32), b2=rng.standard_normal(c).astype(F32))
    a1, i1 = _act(act1, "c1", "h", "a1")
    a2, i2 = _act(act2, "c2", "sc", "a2")
    nodes = ([helper.make_node("GlobalAveragePool", ["x"], ["p"]),
              helper.make_node("Conv", ["p", "w1"] + (["b1"] if bias else []), ["c1"])] + a1
             + [helper.make_node("Conv", ["h", "w2"] + (["b2"] if bias else []), ["c2"])] + a2
             + [helper.make_node("Mul", ["x", "sc"], ["y"])])
    model = onnx_model(nodes, {"x": x}, "y", {**inits, **i1, **i2})
    for name in extra_outputs:
        model.graph.output.append(helper.make_tensor_value_info(name, 1, None))
    return model, x


@pytest.mark.parametrize("act1, act2", [("Relu", "HardSigmoid"), ("Relu", "Sigmoid"), (None, None),
                                        ("SiLU", "Clip"), ("LeakyRelu", "Tanh")])
@pytest.mark.parametrize("bias", [True, False])
def test_squeeze_excite_fused(act1, act2, bias, jit_on):
    """GlobalAveragePool -> Conv1x1 [act] -> Conv1x1 [act] -> Mul runs as one SqueezeExcite node
    with numba (four nodes without), matching onnxruntime either way."""
    model, x = squeeze_model(act1, act2, bias)
    ops = run_both(model, x)
    assert ops == (["SqueezeExcite"] if jit_on else ["GlobalAveragePool", "Conv", "Conv", "Mul"]), ops


def test_squeeze_excite_not_fused_when_a_value_is_seen():
    """The pooled value as a graph output too: the chain stays apart."""
    model, x = squeeze_model("Relu", "HardSigmoid", extra_outputs=("p",))
    assert "SqueezeExcite" not in run_both(model, x)
