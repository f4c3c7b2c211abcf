"""The graph optimizer (engine/optimizer/): each pass on small ONNX models built here.

Every case checks two things: the pattern really collapsed (node counts of the graph after the
pass), and the numbers still match onnxruntime on the original model -- once for the graph with
only that pass applied, once through `engine.InferenceSession(model)` (which runs every pass).
Passes must not mutate the graph they are given. The zoo and the real models (when present)
run through the whole optimizer against onnxruntime, printing node counts before/after.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine
from engine import models, zoo
from engine.model import Model
from engine.onnx_frontend import convert
from engine.optimizer import (PASSES, fold_batchnorm, fold_constants, fold_input_affine, fuse_activation,
                              fuse_bias, fuse_gelu, fuse_hardsigmoid, fuse_hardswish, fuse_layernorm, fuse_silu,
                              optimize, remove_dead, remove_identity)
from tests.oracle import assert_close, ort_run

RNG = np.random.default_rng(7)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def build(nodes, inputs, outputs, inits=None, opset=17):
    """An ONNX model: inputs {name: shape or None}, float32; outputs: names; inits {name: array}."""
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def snapshot(graph):
    return ([(n.op, list(n.inputs), list(n.outputs), sorted(n.attrs)) for n in graph.nodes],
            list(graph.outputs), sorted(graph.constants))


def run_pass(model, fn):
    """Convert, apply one pass (checking it leaves its input alone); the new graph and report."""
    graph = convert(model)
    before = snapshot(graph)
    out, change = fn(graph)
    assert snapshot(graph) == before, f"{fn.__name__} mutated its input graph"
    assert isinstance(change, str) and change
    return out, change


def check_numbers(model, feed, graph=None):
    """onnxruntime on the original model vs mixnn on `graph` (one pass applied) and on the
    fully optimized session."""
    ref = ort_run(model, feed)
    sessions = [engine.InferenceSession(model, backend="cpu")]
    if graph is not None:
        sessions.append(engine.InferenceSession(Model(graph), backend="cpu"))
    for sess in sessions:
        for got, want in zip(sess.run(None, feed), ref):
            assert_close(got, want, what=f"graph {sess.graph.name}")


def ops(graph):
    return graph.op_histogram()


# -- Conv + BatchNorm --------------------------------------------------------------------------
def conv_bn_model(bias=True, act=None, c=8):
    w, b = rand(c, 3, 3, 3, scale=0.3), rand(c)
    gamma, beta, mean, var = rand(c), rand(c), rand(c), np.abs(rand(c)) + 0.5
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [node("Conv", conv_in, ["y"], pads=[1, 1, 1, 1]),
             node("BatchNormalization", ["y", "g", "be", "m", "v"], ["z" if act else "out"], epsilon=1e-3)]
    if act:
        nodes.append(node(act, ["z"], ["out"]))
    inits = {"w": w, "g": gamma, "be": beta, "m": mean, "v": var}
    if bias:
        inits["b"] = b
    return build(nodes, {"x": [1, 3, 10, 10]}, ["out"], inits)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batchnorm_into_conv(bias):
    model = conv_bn_model(bias=bias, act="Relu")
    graph, change = run_pass(model, fold_batchnorm)
    assert ops(graph) == {"Conv": 1, "Relu": 1}, change
    assert "folded 2" in change
    check_numbers(model, {"x": rand(1, 3, 10, 10)}, graph)
    full = engine.load(model).graph
    assert ops(full) == {"Conv": 1} and full.nodes[0].attrs["activation"] == "Relu"
    assert len(full.constants) == 2  # the old weights and BN statistics are gone


def test_fold_batchnorm_node_the_frontend_kept():
    """With x's rank unknown the frontend cannot lower BN into Mul+Add: the BN node folds."""
    model = conv_bn_model(bias=False)
    model.graph.input[0].type.tensor_type.ClearField("shape")
    graph = convert(model)
    assert "BatchNormalization" in ops(graph)
    graph, change = fold_batchnorm(graph)
    assert ops(graph) == {"Conv": 1}, change
    check_numbers(model, {"x": rand(1, 3, 10, 10)}, graph)


def test_fold_affine_chain_conv_transpose_and_paddle_style():
    """ConvTranspose + bias Add + BN (PP-OCR det's head); Mul(const, y) first, Sub and Div."""
    c = 6
    inits = {"w": rand(4, c // 2, 2, 2), "bias": rand(1, c, 1, 1), "s": rand(c, 1, 1), "t": rand(1),
             "d": np.abs(rand(c, 1, 1)) + 0.5, "g": rand(c), "be": rand(c), "m": rand(c),
             "v": np.abs(rand(c)) + 0.5}
    nodes = [node("ConvTranspose", ["x", "w"], ["y0"], strides=[2, 2], group=2),
             node("Add", ["y0", "bias"], ["y1"]),
             node("BatchNormalization", ["y1", "g", "be", "m", "v"], ["y2"]),
             node("Mul", ["s", "y2"], ["y3"]),
             node("Sub", ["y3", "t"], ["y4"]),
             node("Div", ["y4", "d"], ["out"])]
    model = build(nodes, {"x": [1, 4, 5, 5]}, ["out"], inits)
    graph, change = run_pass(model, fold_batchnorm)
    assert ops(graph) == {"ConvTranspose": 1}, change
    check_numbers(model, {"x": rand(1, 4, 5, 5)}, graph)


def test_fold_batchnorm_leaves_what_it_must():
    """A Conv output read twice, a constant that varies over space, a graph output: no fold."""
    inits = {"w": rand(4, 3, 1, 1), "s": rand(1, 4, 1, 1), "hw": rand(1, 1, 6, 6)}
    nodes = [node("Conv", ["x", "w"], ["y"]),
             node("Mul", ["y", "s"], ["a"]),
             node("Relu", ["y"], ["r"]),
             node("Conv", ["x", "w"], ["y2"]),
             node("Mul", ["y2", "hw"], ["b"]),
             node("Conv", ["x", "w"], ["y3"]),
             node("Mul", ["y3", "s"], ["c"])]
    model = build(nodes, {"x": [1, 3, 6, 6]}, ["a", "r", "b", "c", "y3"], inits)
    graph, change = run_pass(model, fold_batchnorm)
    assert change == "no change"
    assert ops(graph) == {"Conv": 3, "Mul": 3, "Relu": 1}
    check_numbers(model, {"x": rand(1, 3, 6, 6)})


@pytest.mark.parametrize("group,pads,shift,folds", [(1, [0, 0, 0, 0], True, True), (2, [0, 0, 0, 0], True, True),
                                                     (1, [1, 1, 1, 1], False, True), (1, [1, 1, 1, 1], True, False)])
def test_fold_input_affine(group, pads, shift, folds):
    """x * s + t read only by Convs: exact when they are unpadded, or when t is 0."""
    nodes = [node("Relu", ["x"], ["r"]), node("Mul", ["s", "r"], ["a"])]
    nodes += [node("Add", ["a", "t"], ["y"])] if shift else [node("Identity", ["a"], ["y"])]
    nodes += [node("Conv", ["y", "w", "b"], ["out"], pads=pads, group=group),
              node("Conv", ["y", "w2"], ["out2"], pads=pads)]
    inits = {"s": rand(4, 1, 1), "w": rand(6, 4 // group, 3, 3), "b": rand(6), "w2": rand(2, 4, 3, 3)}
    if shift:
        inits["t"] = rand(1)
    model = build(nodes, {"x": [1, 4, 7, 7]}, ["out", "out2"], inits)
    graph, change = run_pass(model, lambda g: fold_input_affine(remove_identity(g)[0]))
    assert ops(graph) == ({"Relu": 1, "Conv": 2} if folds else {"Relu": 1, "Conv": 2, "Mul": 1, "Add": 1}), change
    check_numbers(model, {"x": rand(1, 4, 7, 7)}, graph)


# -- MatMul + bias + activation ----------------------------------------------------------------
@pytest.mark.parametrize("attrs", [{}, {"transB": 1, "alpha": 0.5, "beta": 2.0}])
def test_gemm_relu_becomes_one_matmul(attrs):
    w = rand(16, 10) if attrs.get("transB") else rand(10, 16)
    model = build([node("Gemm", ["x", "w", "c"], ["y"], **attrs), node("Relu", ["y"], ["out"])],
                  {"x": [4, 10]}, ["out"], {"w": w, "c": rand(16)})
    graph, change = run_pass(model, fuse_bias)
    assert ops(graph) == {"MatMul": 1, "Relu": 1}, change
    assert len(graph.nodes[0].inputs) == 3
    check_numbers(model, {"x": rand(4, 10)}, graph)
    full = engine.load(model).graph
    assert ops(full) == {"MatMul": 1} and full.nodes[0].attrs["activation"] == "Relu"


def test_matmul_bias_swish_becomes_one_matmul():
    nodes = [node("MatMul", ["x", "w"], ["m"]), node("Add", ["b", "m"], ["y"]),
             node("Sigmoid", ["y"], ["s"]), node("Mul", ["y", "s"], ["out"])]
    model = build(nodes, {"x": [2, 5, 8]}, ["out"], {"w": rand(8, 12), "b": rand(1, 12)})
    graph, change = run_pass(model, fuse_bias)
    assert ops(graph) == {"MatMul": 1, "Sigmoid": 1, "Mul": 1}, change
    graph, change = fuse_silu(graph)
    assert ops(graph) == {"MatMul": 1, "SiLU": 1}, change
    graph, change = fuse_activation(graph)
    assert ops(graph) == {"MatMul": 1}, change
    assert graph.nodes[0].attrs["activation"] == "SiLU"
    check_numbers(model, {"x": rand(2, 5, 8)}, graph)


def test_bias_that_would_broadcast_is_not_fused():
    """Add of a (3, 1, 12) constant to a (5, 12) product makes (3, 5, 12): not a bias."""
    nodes = [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["out"])]
    model = build(nodes, {"x": [5, 8]}, ["out"], {"w": rand(8, 12), "b": rand(3, 1, 12)})
    graph, change = run_pass(model, fuse_bias)
    assert change == "no change"
    check_numbers(model, {"x": rand(5, 8)})


@pytest.mark.parametrize("act,attrs,extra", [
    ("Clip", {}, {"lo": np.float32(0), "hi": np.float32(6)}),
    ("Clip", {}, {"lo": np.float32(-1)}),
    ("LeakyRelu", {"alpha": 0.2}, {}),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.4}, {}),
    ("Sigmoid", {}, {}), ("Tanh", {}, {}), ("HardSwish", {}, {})])
def test_fuse_activation_into_conv(act, attrs, extra):
    ins = ["y"] + [k for k in ("lo", "hi") if k in extra]
    if act == "Clip" and "hi" not in extra:
        ins = ["y", "lo"]
    nodes = [node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]), node(act, ins, ["out"], **attrs)]
    model = build(nodes, {"x": [1, 3, 6, 6]}, ["out"], {"w": rand(4, 3, 3, 3), "b": rand(4), **extra})
    graph, change = run_pass(model, fuse_activation)
    assert ops(graph) == {"Conv": 1}, change
    a = graph.nodes[0].attrs
    assert a["activation"] == act
    if act == "Clip":
        assert a["act_min"] == float(extra["lo"]) and a["act_max"] == extra.get("hi", np.finfo(np.float32).max)
    check_numbers(model, {"x": rand(1, 3, 6, 6, scale=3)}, graph)


def test_activation_not_fused_when_the_conv_output_is_seen():
    nodes = [node("Conv", ["x", "w"], ["y"]), node("Relu", ["y"], ["out"]),
             node("Conv", ["x", "w"], ["y2"]), node("Relu", ["y2"], ["r2"]), node("Neg", ["y2"], ["n2"])]
    model = build(nodes, {"x": [1, 3, 4, 4]}, ["out", "y", "r2", "n2"], {"w": rand(4, 3, 1, 1)})
    graph, change = run_pass(model, fuse_activation)
    assert change == "no change"


# -- elementwise patterns ----------------------------------------------------------------------
def layernorm_nodes(axes, affine=True):
    nodes = [node("ReduceMean", ["x"], ["mu"], axes=axes), node("Sub", ["x", "mu"], ["d"]),
             node("Pow", ["d", "two"], ["sq"]), node("ReduceMean", ["sq"], ["var"], axes=axes),
             node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["sd"]),
             node("Div", ["d", "sd"], ["n" if affine else "out"])]
    if affine:
        nodes += [node("Mul", ["n", "g"], ["ng"]), node("Add", ["ng", "b"], ["out"])]
    return nodes


@pytest.mark.parametrize("axes,affine,shape", [([-1], True, [2, 7, 16]), ([-2, -1], True, [2, 7, 16]),
                                               ([2], False, [2, 7, 16])])
def test_fuse_layernorm(axes, affine, shape):
    norm = shape[-len(axes):]
    inits = {"two": np.float32(2), "eps": np.float32(1e-5), "g": rand(*norm), "b": rand(*norm)}
    model = build(layernorm_nodes(axes, affine), {"x": shape}, ["out"], inits, opset=13)
    graph, change = run_pass(model, fuse_layernorm)
    assert ops(graph) == {"LayerNormalization": 1}, change
    assert graph.nodes[0].attrs["axis"] == -len(axes)
    assert graph.constants[graph.nodes[0].inputs[1]].shape == tuple(norm)
    check_numbers(model, {"x": rand(*shape, scale=3) + 1}, graph)


def test_layernorm_over_a_leading_axis_is_not_fused():
    inits = {"two": np.float32(2), "eps": np.float32(1e-5), "g": rand(7, 1), "b": rand(7, 1)}
    model = build(layernorm_nodes([1]), {"x": [2, 7, 16]}, ["out"], inits, opset=13)
    graph, change = run_pass(model, fuse_layernorm)
    assert change == "no change"


def gelu_erf(form):
    head = [node("Div", ["x", "sqrt2"], ["u"])] if form != "mul" else [node("Mul", ["x", "rsqrt2"], ["u"])]
    head += [node("Erf", ["u"], ["e"]), node("Add", ["e", "one"], ["e1"])]
    tails = {"x_first": [node("Mul", ["x", "e1"], ["p"]), node("Mul", ["p", "half"], ["out"])],
             "mul": [node("Mul", ["x", "e1"], ["p"]), node("Mul", ["p", "half"], ["out"])],
             "half_first": [node("Mul", ["x", "half"], ["hx"]), node("Mul", ["hx", "e1"], ["out"])],
             "e_first": [node("Mul", ["e1", "half"], ["he"]), node("Mul", ["x", "he"], ["out"])]}
    return head + tails[form]


def gelu_tanh(cube):
    head = [node("Pow", ["x", "three"], ["c"])] if cube == "pow" else \
        [node("Mul", ["x", "x"], ["x2"]), node("Mul", ["x2", "x"], ["c"])]
    return head + [node("Mul", ["c", "k"], ["ck"]), node("Add", ["x", "ck"], ["in"]),
                   node("Mul", ["s2pi", "in"], ["arg"]), node("Tanh", ["arg"], ["t"]),
                   node("Add", ["one", "t"], ["t1"]), node("Mul", ["x", "half"], ["hx"]),
                   node("Mul", ["hx", "t1"], ["out"])]


GELU_CONSTS = {"sqrt2": np.float32(np.sqrt(2)), "rsqrt2": np.float32(np.sqrt(0.5)), "one": np.float32(1),
               "half": np.float32(0.5), "three": np.float32(3), "k": np.float32(0.044715),
               "s2pi": np.float32(np.sqrt(2 / np.pi))}


@pytest.mark.parametrize("nodes,approx", [(gelu_erf(f), "none") for f in ("x_first", "mul", "half_first", "e_first")]
                         + [(gelu_tanh(c), "tanh") for c in ("pow", "mul")])
def test_fuse_gelu(nodes, approx):
    used = {i for n in nodes for i in n.input}
    model = build(nodes, {"x": [3, 40]}, ["out"], {k: v for k, v in GELU_CONSTS.items() if k in used})
    graph, change = run_pass(model, fuse_gelu)
    assert ops(graph) == {"Gelu": 1}, change
    assert graph.nodes[0].attrs["approximate"] == approx
    check_numbers(model, {"x": rand(3, 40, scale=3)}, graph)


def test_gelu_with_a_wrong_constant_stays():
    consts = dict(GELU_CONSTS, half=np.float32(0.25))
    model = build(gelu_erf("x_first"), {"x": [3, 40]}, ["out"], {k: consts[k] for k in ("sqrt2", "one", "half")})
    assert run_pass(model, fuse_gelu)[1] == "no change"


def test_fuse_silu_forms():
    nodes = [node("Sigmoid", ["x"], ["s"]), node("Mul", ["s", "x"], ["a"]),        # torch
             node("Mul", ["x", "one"], ["xb"]), node("Sigmoid", ["xb"], ["s2"]),   # paddle, beta 1
             node("Mul", ["x", "s2"], ["b"]),
             node("Mul", ["x", "two"], ["xc"]), node("Sigmoid", ["xc"], ["s3"]),   # beta 2: not SiLU
             node("Mul", ["x", "s3"], ["c"])]
    model = build(nodes, {"x": [2, 3, 5]}, ["a", "b", "c"], {"one": np.ones(1, np.float32),
                                                             "two": np.full(1, 2, np.float32)})
    graph, change = run_pass(model, fuse_silu)
    assert ops(graph) == {"SiLU": 2, "Mul": 2, "Sigmoid": 1}, change
    check_numbers(model, {"x": rand(2, 3, 5, scale=4)}, graph)


HS_CONSTS = {"three": np.float32(3), "zero": np.float32(0), "six": np.float32(6),
             "sixth": np.float32(1 / 6), "one": np.float32(1), "a": np.float32(0.3), "b": np.float32(0.4)}


def hardswish_nodes(form):
    clip = [node("Add", ["x", "three"], ["x3"]), node("Clip", ["x3", "zero", "six"], ["r6"])]
    return {"hardsigmoid": [node("HardSigmoid", ["x"], ["h"], alpha=1 / 6), node("Mul", ["x", "h"], ["out"])],
            "div_last": clip + [node("Mul", ["x", "r6"], ["m"]), node("Div", ["m", "six"], ["out"])],
            "mul_last": clip + [node("Mul", ["r6", "x"], ["m"]), node("Mul", ["m", "sixth"], ["out"])],
            "div_first": clip + [node("Div", ["r6", "six"], ["h"]), node("Mul", ["x", "h"], ["out"])]}[form]


@pytest.mark.parametrize("form", ["hardsigmoid", "div_last", "mul_last", "div_first"])
def test_fuse_hardswish(form):
    nodes = hardswish_nodes(form)
    used = {i for n in nodes for i in n.input}
    model = build(nodes, {"x": [2, 30]}, ["out"], {k: v for k, v in HS_CONSTS.items() if k in used})
    graph = convert(model)
    for fn in (fuse_hardsigmoid, fuse_hardswish):
        graph, change = fn(graph)
    assert ops(graph) == {"HardSwish": 1}, change
    check_numbers(model, {"x": rand(2, 30, scale=4)}, graph)


def test_fuse_hardsigmoid_forms():
    nodes = [node("Add", ["x", "three"], ["x3"]), node("Clip", ["x3", "zero", "six"], ["r6"]),
             node("Div", ["r6", "six"], ["a"]),                                    # relu6(x + 3) / 6
             node("Mul", ["x", "a_c"], ["xa"]), node("Add", ["xa", "b"], ["xab"]),  # clip(a x + b, 0, 1)
             node("Clip", ["xab", "zero", "one"], ["c"])]
    consts = dict(HS_CONSTS, a_c=np.float32(0.3))
    used = {i for n in nodes for i in n.input}
    model = build(nodes, {"x": [2, 30]}, ["a", "c"], {k: v for k, v in consts.items() if k in used})
    graph, change = run_pass(model, fuse_hardsigmoid)
    assert ops(graph) == {"HardSigmoid": 2}, change
    attrs = sorted((n.attrs["alpha"], n.attrs["beta"]) for n in graph.nodes)
    assert np.allclose(attrs, [(1 / 6, 0.5), (0.3, 0.4)])
    check_numbers(model, {"x": rand(2, 30, scale=4)}, graph)


def test_hardsigmoid_gate_on_another_tensor_is_not_hardswish():
    """SE blocks: x * HardSigmoid(f(x)) -- the gate reads something else than x."""
    nodes = [node("Neg", ["x"], ["f"]), node("HardSigmoid", ["f"], ["h"], alpha=1 / 6),
             node("Mul", ["x", "h"], ["out"])]
    model = build(nodes, {"x": [2, 30]}, ["out"])
    assert run_pass(model, fuse_hardswish)[1] == "no change"


# -- constants, dead nodes, identities ---------------------------------------------------------
def test_fold_constant_subgraphs_and_static_shapes():
    nodes = [node("Add", ["c1", "c2"], ["c3"]), node("Mul", ["c3", "c2"], ["c4"]),     # weights
             node("Shape", ["x"], ["sh"]), node("Gather", ["sh", "i0"], ["n"], axis=0),  # static shape
             node("Unsqueeze", ["n", "ax0"], ["n1"]), node("Concat", ["n1", "m1"], ["shape"], axis=0),
             node("Reshape", ["x", "shape"], ["flat"]), node("MatMul", ["flat", "c4"], ["out"])]
    inits = {"c1": rand(12, 5), "c2": rand(12, 5), "i0": np.array(0, np.int64),
             "ax0": np.array([0], np.int64), "m1": np.array([-1], np.int64)}
    model = build(nodes, {"x": [2, 3, 4]}, ["out"], inits)
    graph, change = run_pass(model, fold_constants)
    assert ops(graph) == {"Reshape": 1, "MatMul": 1}, change
    assert "folded 6" in change
    check_numbers(model, {"x": rand(2, 3, 4)}, graph)


def test_fold_constants_keeps_big_results_random_ops_and_dynamic_shapes():
    from engine.ir import Node
    nodes = [node("ConstantOfShape", ["big"], ["z"], value=numpy_helper.from_array(np.ones(1, np.float32))),
             node("Add", ["x", "z"], ["out"]), node("Shape", ["y"], ["s"])]
    inits = {"big": np.array([512, 512], np.int64), "c": rand(3)}
    graph = convert(build(nodes, {"x": [512, 512], "y": ["n", 4]}, ["out", "s"], inits))
    graph.nodes.append(Node("RandomNormalLike", ["c"], ["r"], "random"))  # a fresh draw every run
    graph.outputs.append("r")
    graph, change = fold_constants(graph)
    assert change == "no change"
    assert ops(graph) == {"ConstantOfShape": 1, "Add": 1, "RandomNormalLike": 1, "Shape": 1}


def test_remove_dead_branches_and_their_constants():
    nodes = [node("Add", ["x", "w1"], ["a"]), node("Mul", ["a", "w2"], ["unused"]),
             node("Relu", ["unused"], ["unused2"]), node("Neg", ["x"], ["out"])]
    model = build(nodes, {"x": [3, 4], "spare": [1]}, ["out"], {"w1": rand(4), "w2": rand(4)})
    graph, change = run_pass(model, remove_dead)
    assert ops(graph) == {"Neg": 1} and not graph.constants, change
    assert graph.inputs == ["x", "spare"] and "unused" not in graph.values
    check_numbers(model, {"x": rand(3, 4), "spare": rand(1)}, graph)


def test_remove_identity_and_dropout():
    nodes = [node("Identity", ["x"], ["i"]), node("Dropout", ["i"], ["d"]), node("Neg", ["d"], ["n"]),
             node("Identity", ["n"], ["out"]), node("Identity", ["x"], ["passthrough"])]
    model = build(nodes, {"x": [3, 4]}, ["out", "passthrough"])
    graph, change = run_pass(model, remove_identity)
    assert ops(graph) == {"Neg": 1, "Identity": 1}, change  # x -> passthrough needs its node
    assert graph.outputs == ["out", "passthrough"]
    check_numbers(model, {"x": rand(3, 4)}, graph)


def test_passes_are_listed_in_order_and_report():
    names = [name for name, _ in PASSES]
    assert names[0] == "fold_constants" and names[-1] == "remove_dead"
    assert names.index("fuse_hardsigmoid") < names.index("fuse_hardswish") < names.index("fuse_activation")
    model = conv_bn_model(act="Relu")
    graph, report = optimize(convert(model))
    assert [name for name, _ in report] == names
    assert dict(report)["fold_batchnorm"] == "folded 2 BatchNorm/affine nodes into 1 Conv"
    assert engine.load(model).report == report


def renamed(nodes, mapping):
    """Copies of ONNX nodes with value names replaced (to chain the pattern builders)."""
    return [helper.make_node(n.op_type, [mapping.get(i, i) for i in n.input], [mapping.get(o, o) for o in n.output],
                             **{a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in nodes]


def test_fused_graph_survives_the_model_file(tmp_path):
    """Every fused form (activation attrs, MatMul bias, Gelu, LayerNormalization, SiLU) saved as
    .mixnn and loaded back still matches onnxruntime."""
    nodes = [node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]), node("Clip", ["c", "zero", "six"], ["c6"]),
             node("Flatten", ["c6"], ["f"]), node("MatMul", ["f", "w2"], ["m"]), node("Add", ["m", "b2"], ["mb"])]
    nodes += renamed(gelu_erf("x_first"), {"x": "mb", "out": "gelu"})
    nodes += renamed(layernorm_nodes([-1]), {"x": "gelu", "out": "ln"})
    nodes += [node("Sigmoid", ["ln"], ["sg"]), node("Mul", ["ln", "sg"], ["out"])]
    inits = dict(GELU_CONSTS, zero=np.float32(0), six=np.float32(6), two=np.float32(2), eps=np.float32(1e-5),
                 cw=rand(4, 3, 3, 3), cb=rand(4), w2=rand(64, 16, scale=0.2), b2=rand(16), g=rand(16), b=rand(16))
    used = {i for n in nodes for i in n.input}
    model = build(nodes, {"x": [1, 3, 4, 4]}, ["out"], {k: v for k, v in inits.items() if k in used}, opset=13)
    loaded = engine.load(model)
    assert ops(loaded.graph) == {"Conv": 1, "Flatten": 1, "MatMul": 1, "Gelu": 1, "LayerNormalization": 1,
                                 "SiLU": 1}
    path = str(tmp_path / "fused.mixnn")
    loaded.save(path)
    feed = {"x": rand(1, 3, 4, 4, scale=2)}
    for got, want in zip(engine.InferenceSession(path, backend="cpu").run(None, feed), ort_run(model, feed)):
        assert_close(got, want)


# -- whole models ------------------------------------------------------------------------------
def _whole_model(name, path, feed, capsys):
    before = convert(path)
    model = engine.load(path)
    after = model.graph
    with capsys.disabled():
        print(f"\n{name}: {len(before.nodes)} -> {len(after.nodes)} nodes")
        for pass_name, change in model.report:
            if change != "no change":
                print(f"  {pass_name}: {change}")
    assert len(after.nodes) < len(before.nodes)
    assert {change for _, change in optimize(after)[1]} == {"no change"}  # one run reaches the fixpoint
    ref = ort_run(onnx.load(path), feed)
    for got, want in zip(engine.InferenceSession(model, backend="cpu").run(None, feed), ref):
        assert_close(got, want, what=name)
    return model


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_optimized_matches_onnxruntime(name, capsys):
    model = _whole_model(name, zoo.path(name), {"input": rand(1, 3, 96, 96)}, capsys)
    assert not {"BatchNormalization", "Mul", "Gemm"} & set(model.ops)  # BN folded, Gemm lowered
    if name != "resnet18":  # (its residual Add + Relu stay: Relu fuses only into Conv/MatMul)
        assert not {"Relu", "Clip"} & set(model.ops)


REAL_SHAPES = {"ppocr_det": (1, 3, 128, 128), "ppocr_rec": (1, 3, 48, 96), "ppocr_cls": (1, 3, 48, 192),
               "nudenet": (1, 3, 160, 160)}


@pytest.mark.parametrize("name", models.NAMES)
def test_real_model_optimized_matches_onnxruntime(name, capsys):
    try:
        path = models.find(name)
    except models.ModelNotFoundError as e:
        pytest.skip(str(e))
    spec = models.REAL_MODELS[name]
    _whole_model(name, path, {spec.input_name: RNG.random(REAL_SHAPES[name]).astype(np.float32)}, capsys)
