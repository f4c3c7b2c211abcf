"""The GL backend (Mesa llvmpipe through EGL in CI): every shader compiles as desktop GLSL 430 and
as GLSL ES 310; every native kernel against the CPU backend on odd shapes and attributes; whole
models against onnxruntime; steady-state memory, the program cache across processes, profiling
and errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import engine
from engine import models, zoo
from engine.ir import Graph, Node, Value
from engine.model import Model
from tests.conftest import ROOT, require_backend
from tests.oracle import Feed, assert_close, check_against_cpu, one_node, ort_run, rand


@pytest.fixture(scope="module", autouse=True)
def gl():
    return require_backend("gl")


def check(op, ins, attrs=None, n_out=1, scale=1e-4):
    """One node with inputs `ins` (Feed, constant array or None) on gl, against the CPU backend."""
    return check_against_cpu("gl", op, ins, attrs, n_out, scale)


# -- shaders ------------------------------------------------------------------------------
def _variants(name):
    """Every macro a shader (with its snippets) tests, each defined alone, plus none."""
    import re
    from backends.gl import programs
    text = programs.assemble(name, {})
    flags = sorted(set(re.findall(r"defined\((\w+)\)", text)) | set(re.findall(r"#ifdef (\w+)", text)))
    out = [{}] + [{f: 1} for f in flags]
    if "TAPS" in text:
        out += [{"TAPS": t} for t in (2, 4)]
    return out


def test_every_shader_compiles_as_glsl_430_and_as_glsl_es_310(tmp_path):
    from backends.gl import programs
    tool = shutil.which("glslangValidator")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("glslangValidator is required in CI (Debian: glslang-tools)")
        pytest.skip("glslangValidator not installed")
    paths = []
    for file in programs.shader_names():
        name = file[:-len(".comp")]
        for k, defines in enumerate(_variants(name)):
            for es in (False, True):
                path = tmp_path / f"{name}.{k}.{'es' if es else '430'}.comp"
                path.write_text(programs.assemble(name, defines, es))
                paths.append(str(path))
    # One process validates every file, each as its own compilation unit.
    res = subprocess.run([tool, "-S", "comp", *paths], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-5000:]
    assert len(paths) > 100


def test_es_header_and_include_expansion():
    from backends.gl import programs
    src = programs.assemble("unary", {"OP_Relu": 1}, es=True)
    assert src.startswith("#version 310 es\nprecision highp float;\nprecision highp int;\n#define OP_Relu 1\n")
    assert "#include" not in src and src.count("float sigmoid_f(") == 1


# -- convolution --------------------------------------------------------------------------
CONVS = [  # (x shape, w shape, attrs, bias)
    ((2, 5, 11, 9), (7, 5, 3, 3), dict(pads=[1, 0, 2, 1]), True),
    ((1, 4, 13, 10), (6, 4, 3, 3), dict(strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2]), False),
    ((2, 13, 7, 5), (17, 13, 1, 1), {}, True),                                   # 1x1, plane 35: scalar x
    ((1, 9, 4, 6), (10, 9, 1, 1), {}, False),                                    # 1x1, plane 24: vec4 x
    ((1, 6, 9, 9), (9, 2, 3, 3), dict(group=3, pads=[1, 1, 1, 1]), True),       # grouped, 3 per group
    ((1, 8, 6, 7), (8, 4, 3, 3), dict(group=2, pads=[0, 1, 1, 0]), False),      # grouped, 4 per group
    ((2, 6, 12, 11), (12, 1, 5, 5), dict(group=6, strides=[2, 2], pads=[2, 1, 0, 2]), True),  # depthwise x2
    ((1, 7, 9, 10), (7, 1, 3, 3), dict(group=7, strides=[2, 2], pads=[1, 1, 0, 1]), True),   # depthwise 3x3/2
    ((1, 3, 6, 13), (3, 1, 3, 3), dict(group=3, pads=[0, 2, 1, 1]), False),                 # depthwise 3x3/1
    ((1, 5, 10, 7), (9, 5, 1, 1), dict(strides=[2, 2]), True),                   # strided 1x1: direct
    ((1, 3, 15, 15), (4, 3, 3, 2), dict(auto_pad="SAME_UPPER", strides=[2, 3]), False),
    ((2, 4, 17), (5, 4, 3), dict(dilations=[2], pads=[1, 2]), True),             # 1-D
    ((1, 3, 9), (3, 1, 3), dict(group=3, pads=[1, 1]), False),                   # 1-D depthwise
]


@pytest.mark.parametrize("xs,ws,attrs,bias", CONVS)
def test_conv(xs, ws, attrs, bias):
    b = rand(ws[0], seed=3) if bias else None
    check("Conv", [Feed(rand(*xs)), rand(*ws, seed=1), b], attrs)


@pytest.mark.parametrize("act,extra", [
    ("Relu", {}), ("Clip", {"act_min": 0.0, "act_max": 6.0}), ("Sigmoid", {}), ("SiLU", {}),
    ("HardSwish", {}), ("LeakyRelu", {"act_alpha": 0.1}), ("HardSigmoid", {"act_alpha": 0.3, "act_beta": 0.4}),
    ("Tanh", {})])
def test_conv_fused_activation(act, extra):
    attrs = {"pads": [1, 1, 1, 1], "activation": act, **extra}
    check("Conv", [Feed(rand(1, 5, 6, 7)), rand(6, 5, 3, 3, seed=1), rand(6, seed=2)], attrs)
    check("Conv", [Feed(rand(1, 5, 6, 7)), rand(5, 1, 3, 3, seed=1)], {**attrs, "group": 5})


@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 4, 5, 6), (4, 3, 3, 3), dict(strides=[2, 2], pads=[1, 1, 0, 0])),
    ((2, 6, 4, 3), (6, 2, 2, 3), dict(strides=[2, 1], group=3, output_padding=[1, 0])),
    ((1, 3, 5, 5), (3, 5, 3, 3), dict(dilations=[2, 2], pads=[1, 2, 0, 1])),
    ((1, 2, 4, 4), (2, 3, 3, 3), dict(strides=[2, 2], output_shape=[8, 9])),
    ((1, 3, 7), (3, 2, 4), dict(strides=[3])),                                  # 1-D
])
def test_conv_transpose(xs, ws, attrs):
    check("ConvTranspose", [Feed(rand(*xs)), rand(*ws, seed=1), rand(ws[1] * attrs.get("group", 1), seed=2)], attrs)


# -- matrix products ------------------------------------------------------------------------
@pytest.mark.parametrize("a,b", [((5, 7), (7, 9)), ((2, 3, 5, 6), (6, 3)), ((3, 1, 4, 5), (2, 5, 7)),
                                 ((7,), (7, 5)), ((4, 7), (7,)), ((2, 17, 33), (2, 33, 18))])
def test_matmul_batched_broadcast(a, b):
    check("MatMul", [Feed(rand(*a)), Feed(rand(*b, seed=1))])


def test_matmul_constant_weights_with_fused_bias_and_activation():
    check("MatMul", [Feed(rand(2, 5, 6)), rand(6, 9, seed=1), rand(9, seed=2)], {"activation": "Relu"})
    check("MatMul", [Feed(rand(3, 6)), rand(6, 5, seed=1), rand(1, 5, seed=2)],
          {"activation": "Clip", "act_min": -0.5, "act_max": 0.5})


@pytest.mark.parametrize("attrs,c", [({}, (4, 6)), ({"transA": 1}, (6,)), ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (4, 1)),
                                     ({"transA": 1, "transB": 1}, ()), ({"beta": 0.0}, (4, 6))])
def test_gemm(attrs, c):
    a = rand(5, 4) if attrs.get("transA") else rand(4, 5)
    b = rand(6, 5, seed=1) if attrs.get("transB") else rand(5, 6, seed=1)
    check("Gemm", [Feed(a), b, rand(*c, seed=2)], attrs)


# -- elementwise ----------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"])
@pytest.mark.parametrize("sa,sb", [((2, 3, 4, 5), (3, 1, 5)), ((3, 7), (3, 7)), ((1, 5, 1, 6), (4, 5, 3, 1)),
                                   ((2, 1, 3, 1, 2, 3), (1, 4, 1, 5, 1, 3)), ((6, 5), ())])
def test_binary_broadcast(op, sa, sb):
    b = rand(*sb, seed=1)
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)
    if op == "PRelu" and len(sb) > len(sa):
        return  # the slope broadcasts to x, never the reverse
    check(op, [Feed(rand(*sa)), Feed(b)])


def test_binary_with_a_constant_operand_on_either_side():
    check("Sub", [rand(3, 1, 5, seed=4), Feed(rand(2, 3, 4, 5))])
    check("Mul", [Feed(rand(2, 3, 4, 5)), rand(3, 1, 1, seed=4)])
    check("Sub", [np.float32(1.5), Feed(rand(2, 3, 4, 5))])
    check("Div", [Feed(rand(2, 3, 4, 5)), np.array([4.0], np.float32)])


def test_pow_signs_and_integer_exponents():
    x = rand(4, 9, seed=5)
    check("Pow", [Feed(x), np.float32(2.0)])
    check("Pow", [Feed(x), np.array([3.0, -1.0, 0.0, 1.0, 5.0, 2.0, -2.0, 4.0, 1.0], np.float32)])
    check("Pow", [Feed(np.abs(x) + 0.1), Feed(rand(4, 9, seed=6))])
    check("Pow", [Feed(np.abs(x)), np.float32(0.5)])


UNARY = {  # op: (attrs, input range)
    "Relu": ({}, None), "Sigmoid": ({}, (-30, 30)), "Tanh": ({}, (-20, 20)), "Exp": ({}, (-5, 5)),
    "Log": ({}, (0.01, 10)), "Sqrt": ({}, (0, 10)), "Erf": ({}, (-5, 5)), "Abs": ({}, None),
    "Neg": ({}, None), "Reciprocal": ({}, (0.2, 5)), "Floor": ({}, None), "Ceil": ({}, None),
    "Round": ({}, None), "Sign": ({}, None), "HardSigmoid": ({"alpha": 0.3, "beta": 0.6}, None),
    "HardSwish": ({}, (-5, 5)), "LeakyRelu": ({"alpha": 0.2}, None), "SiLU": ({}, (-8, 8)),
    "Gelu": ({}, (-5, 5)), "Elu": ({"alpha": 0.7}, None), "Selu": ({}, None), "Celu": ({"alpha": 1.5}, None),
    "Softplus": ({}, (-30, 30)), "Softsign": ({}, None), "Mish": ({}, (-8, 8)),
    "ThresholdedRelu": ({"alpha": 0.5}, None), "Shrink": ({"bias": 0.3, "lambd": 0.7}, None),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op):
    attrs, span = UNARY[op]
    lo, hi = span or (-3, 3)
    check(op, [Feed(rand(2, 3, 7, 5, lo=lo, hi=hi))], attrs)


def test_every_unary_op_of_the_shader_is_tested():
    from backends.gl.exec_elementwise import UNARY_OPS
    assert set(UNARY_OPS) - {"Clip"} == set(UNARY)


def test_gelu_tanh_and_clip_forms():
    check("Gelu", [Feed(rand(3, 11, lo=-5, hi=5))], {"approximate": "tanh"})
    check("Clip", [Feed(rand(3, 11)), np.float32(-0.5), np.float32(1.0)])
    check("Clip", [Feed(rand(3, 11)), None, np.float32(0.3)])
    check("Clip", [Feed(rand(3, 11))])


def test_batch_normalization_unfolded():
    c = 5
    stats = [rand(c, seed=1), rand(c, seed=2), rand(c, seed=3), rand(c, lo=0.5, hi=2, seed=4)]
    check("BatchNormalization", [Feed(rand(2, c, 3, 4))] + stats, {"epsilon": 1e-3})
    check("BatchNormalization", [Feed(rand(4, c))] + stats)


# -- pooling, reductions, normalization ----------------------------------------------------------
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("shape,attrs", [
    ((2, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 5, 10, 7), dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1)),
    ((1, 5, 10, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 2, 1], ceil_mode=1, count_include_pad=1)),
    ((1, 2, 9, 9), dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 0, 0])),
    ((1, 4, 8, 6), dict(kernel_shape=[2, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    ((2, 3, 13), dict(kernel_shape=[4], strides=[3], pads=[1, 2])),              # 1-D
])
def test_pool(op, shape, attrs):
    check(op, [Feed(rand(*shape))], attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 6, 13, 11), (1, 3, 9)])
def test_global_pool(op, shape):
    check(op, [Feed(rand(*shape))])


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"])
@pytest.mark.parametrize("shape,axes,keep", [((2, 3, 4, 5), [1, 3], 1), ((3, 70, 2), [1], 0),
                                             ((2, 3, 4), None, 1), ((4, 5, 6), [-1], 0), ((3, 90), [0, 1], 1)])
def test_reduce(op, shape, axes, keep):
    lo, hi = (0.5, 1.5) if op in ("ReduceProd", "ReduceLogSum") else (-2, 2)
    ins = [Feed(rand(*shape, lo=lo, hi=hi))] + ([np.array(axes, np.int64)] if axes is not None else [])
    check(op, ins, {"keepdims": keep}, scale=1e-4 if op != "ReduceProd" else 1e-3)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((2, 3, 5), -1), ((2, 7, 3, 2), 1), ((4, 9), 0), ((3, 40), 1),
                                        ((3, 2000), 1), ((2, 300, 3), 1)])
def test_softmax(op, shape, axis):
    check(op, [Feed(rand(*shape, lo=-10, hi=10))], {"axis": axis})


@pytest.mark.parametrize("shape,axis,bias", [((2, 5, 24), -1, True), ((3, 130), 1, False), ((2, 3, 4, 5), 2, True)])
def test_layer_normalization(shape, axis, bias):
    norm = shape[axis:]
    check("LayerNormalization", [Feed(rand(*shape)), rand(*norm, seed=1), rand(*norm, seed=2) if bias else None],
          {"axis": axis, "epsilon": 1e-4})


# -- resize and data movement -----------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    dict(mode="nearest"),
    dict(mode="nearest", coordinate_transformation_mode="align_corners", nearest_mode="round_prefer_ceil"),
    dict(mode="linear"),
    dict(mode="linear", coordinate_transformation_mode="align_corners"),
    dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
    dict(mode="linear", coordinate_transformation_mode="asymmetric"),
    dict(mode="cubic"),
])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 0.6, 1.7]])
def test_resize_scales(attrs, scales):
    check("Resize", [Feed(rand(2, 3, 5, 7)), None, np.array(scales, np.float32)], attrs)


def test_resize_sizes_and_last_axis_only():
    check("Resize", [Feed(rand(1, 2, 6, 5)), None, None, np.array([1, 2, 9, 3], np.int64)], {"mode": "linear"})
    check("Resize", [Feed(rand(3, 4, 10)), None, np.array([1, 1, 2.5], np.float32)], {"mode": "nearest"})
    check("Resize", [Feed(rand(1, 2, 12, 10)), None, np.array([1, 1, 0.5, 0.6], np.float32)],
          {"mode": "linear", "antialias": 1})


def test_resize_of_a_leading_axis_falls_back():
    model, feed = one_node("Resize", [Feed(rand(1, 2, 3, 4)), None, np.array([1, 2, 2, 2], np.float32)])
    sess = engine.InferenceSession(model, backend="gl")
    sess.run(None, feed)
    assert sess.placement()["node"]["backend"] == "cpu"
    assert "other than the last two" in sess.placement()["node"]["reason"]


DATA_MOVEMENT = [
    ("Transpose", [Feed(rand(2, 3, 4, 5))], {"perm": [0, 3, 1, 2]}, 1),
    ("Transpose", [Feed(rand(2, 3, 4, 5, 2, 3))], {"perm": [5, 3, 1, 4, 2, 0]}, 1),
    ("Slice", [Feed(rand(5, 7, 9)), np.array([1, -1, 0]), np.array([4, -8, 9]), np.array([0, 1, 2]),
               np.array([2, -2, 3])], {}, 1),
    ("Concat", [Feed(rand(2, 3, 4)), Feed(rand(2, 5, 4, seed=1)), Feed(rand(2, 1, 4, seed=2))], {"axis": 1}, 1),
    ("Split", [Feed(rand(4, 9)), np.array([2, 3, 4])], {"axis": 1}, 3),
    ("Pad", [Feed(rand(2, 3, 4)), np.array([0, 1, 2, 1, 0, 3]), np.float32(1.5)], {}, 1),
    ("Pad", [Feed(rand(2, 5, 4)), np.array([0, -1, 1, 0, -2, 0])], {}, 1),
    ("Tile", [Feed(rand(2, 3, 1)), np.array([2, 1, 3])], {}, 1),
    ("Expand", [Feed(rand(3, 1, 5)), np.array([2, 1, 4, 5])], {}, 1),
    ("DepthToSpace", [Feed(rand(1, 8, 2, 3))], {"blocksize": 2}, 1),
    ("DepthToSpace", [Feed(rand(1, 8, 2, 3))], {"blocksize": 2, "mode": "CRD"}, 1),
    ("SpaceToDepth", [Feed(rand(1, 2, 4, 6))], {"blocksize": 2}, 1),
    ("Gather", [Feed(rand(5, 4, 3)), np.array([3, 0, -1])], {"axis": 1}, 1),
    ("Reshape", [Feed(rand(2, 3, 4)), np.array([4, -1])], {}, 1),
    ("Flatten", [Feed(rand(2, 3, 4))], {"axis": 2}, 1),
    ("Squeeze", [Feed(rand(2, 1, 4)), np.array([1])], {}, 1),
    ("Unsqueeze", [Feed(rand(2, 4)), np.array([0, 3])], {}, 1),
    ("Identity", [Feed(rand(3, 5))], {}, 1),
]


@pytest.mark.parametrize("op,ins,attrs,n_out", DATA_MOVEMENT, ids=[f"{d[0]}{k}" for k, d in enumerate(DATA_MOVEMENT)])
def test_data_movement(op, ins, attrs, n_out):
    check(op, ins, attrs, n_out)


def test_reshape_shares_memory_and_a_chain_of_ops_runs_in_one_subgraph():
    g = Graph("chain")
    g.inputs = ["x"]
    g.values["x"] = Value("x", np.float32, (2, 3, 4))
    shape = g.add_constant("shape", np.array([6, 4]))
    g.nodes = [Node("Relu", ["x"], ["r"], "relu"), Node("Reshape", ["r", shape], ["s"], "reshape"),
               Node("Transpose", ["s"], ["t"], "transpose", {"perm": [1, 0]}), Node("Sigmoid", ["t"], ["y"], "sig")]
    g.outputs = ["y"]
    x = rand(2, 3, 4)
    sess = engine.InferenceSession(Model(g), backend="gl")
    assert_close(sess.run(None, {"x": x})[0], 1 / (1 + np.exp(-np.maximum(x, 0).reshape(6, 4).T)))
    plan = sess._plan
    assert plan.executors["reshape"].aliased and plan.executors["reshape"].bound == []
    assert sum(kind == "subgraph" for kind, _ in plan.steps) == 1


# -- models ----------------------------------------------------------------------------------
def _placed_on_gl(sess):
    executed = [p for p in sess.placement().values() if p["backend"] is not None]
    return sum(p["backend"] == "gl" for p in executed) / len(executed)


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_matches_onnxruntime(name):
    path = zoo.path(name)
    x = rand(*zoo.input_shape(name), seed=7)
    sess = engine.InferenceSession(path, backend="gl")
    got = sess.run(None, {"input": x})
    ref = ort_run(onnx.load(path), {"input": x})
    assert_close(got[0], ref[0], what=name)
    assert _placed_on_gl(sess) >= 0.95, sess.placement()


def _real(name):
    try:
        return models.find(name)
    except models.ModelNotFoundError as e:
        pytest.skip(str(e))


def test_ppocr_det_at_two_sizes_in_one_session():
    path = _real("ppocr_det")
    sess = engine.InferenceSession(path, backend="gl")
    proto = onnx.load(path)
    for shape in [(1, 3, 64, 96), (1, 3, 96, 64)]:
        x = rand(*shape, lo=-1, hi=1, seed=8)
        assert_close(sess.run(None, {"x": x})[0], ort_run(proto, {"x": x})[0], what=f"det {shape}")
        assert _placed_on_gl(sess) >= 0.95
    assert sess.replans == 2


@pytest.mark.parametrize("name,shape", [("ppocr_rec", (1, 3, 48, 96)), ("ppocr_cls", (1, 3, 48, 192))])
def test_ppocr_rec_and_cls(name, shape):
    path = _real(name)
    x = rand(*shape, lo=-1, hi=1, seed=9)
    sess = engine.InferenceSession(path, backend="gl")
    got = sess.run(None, {"x": x})
    assert_close(got[0], ort_run(onnx.load(path), {"x": x})[0], what=name)
    assert _placed_on_gl(sess) >= 0.95


def test_topk_falls_back_to_cpu_between_gl_subgraphs():
    w = rand(4, 3, 3, 3, seed=10)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("TopK", ["f", "k"], ["values", "indices"], axis=1),
             helper.make_node("Sigmoid", ["values"], ["y"])]
    graph = helper.make_graph(
        nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("indices", TensorProto.INT64, None)],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(np.array([7], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rand(1, 3, 5, 6, seed=11)
    sess = engine.InferenceSession(model, backend="gl")
    got = sess.run(None, {"x": x})
    ref = ort_run(model, {"x": x})
    assert_close(got[0], ref[0])
    assert np.array_equal(got[1], ref[1])
    placed = {p["op"]: p["backend"] for p in sess.placement().values() if p["backend"]}
    assert placed["TopK"] == "cpu" and placed["Conv"] == "gl" and placed["Sigmoid"] == "gl"


# -- memory, cache, profiling, errors -----------------------------------------------------------------
def _small_input_mobilenet_v2(tmp_path):
    """The zoo's MobileNetV2 with symbolic H and W, so that it runs on a small image."""
    proto = zoo.build("mobilenet_v2")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    path = tmp_path / "mobilenet_v2_hw.onnx"
    onnx.save(proto, str(path))
    return str(path)


def test_steady_state_runs_allocate_nothing(tmp_path):
    sess = engine.InferenceSession(_small_input_mobilenet_v2(tmp_path), backend="gl")
    x = rand(1, 3, 32, 32, seed=12)
    first = sess.run(None, {"input": x})[0]
    for _ in range(100):
        out = sess.run(None, {"input": x})[0]
    assert np.array_equal(out, first)
    mem = sess.memory()["gl"]
    assert mem["allocations_last_run"] == 0
    assert 0 < mem["arena_bytes"] <= mem["naive_bytes"] and mem["lower_bound_bytes"] <= mem["arena_bytes"]
    backend = sess.backends["gl"]
    assert backend.alignment >= 4 and backend.alignment & (backend.alignment - 1) == 0


def test_repacked_weights_are_uploaded_once_across_shapes():
    model, _ = one_node("Conv", [Feed(rand(1, 6, 8, 8)), rand(8, 6, 3, 3, seed=1), rand(8, seed=2)],
                        {"pads": [1, 1, 1, 1]})
    model.graph.values["in0"].shape = ("N", 6, "H", "W")
    sess = engine.InferenceSession(model, backend="gl")
    backend = sess.backends["gl"]
    sess.run(None, {"in0": rand(1, 6, 8, 8)})
    static = backend.static_bytes
    assert static >= 8 * 6 * 9 * 4  # the repacked weights (the original layout is never bound)
    for shape in [(2, 6, 5, 7), (1, 6, 8, 8)]:
        x = rand(*shape, seed=3)
        ref = engine.InferenceSession(model, backend="cpu").run(None, {"in0": x})[0]
        assert_close(sess.run(None, {"in0": x})[0], ref)
    assert backend.static_bytes == static and sess.replans == 3


_CACHE_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
import numpy as np, engine
from backends.gl import GLBackend
sess = engine.InferenceSession({model!r}, backend="gl", cache_dir={cache!r})
sess.run(None, {{"input": np.ones((1, 3, 32, 32), np.float32)}})
print(json.dumps(GLBackend.cache_stats))
"""


def test_second_process_finds_every_program_in_the_cache(tmp_path):
    model, cache = _small_input_mobilenet_v2(tmp_path), str(tmp_path / "cache")
    code = _CACHE_PROBE.format(root=ROOT, model=model, cache=cache)
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["programs"] > 3 and first["misses"] == first["programs"] - first["hits"]
    assert second == {"hits": first["programs"], "misses": 0, "programs": first["programs"]}
    assert os.path.isfile(os.path.join(cache, "gl", "programs.json"))


def test_profile_reports_every_node_on_gl():
    sess = check("Conv", [Feed(rand(1, 3, 8, 8)), rand(4, 3, 3, 3, seed=1)], {"pads": [1, 1, 1, 1]})
    prof = sess.profile()
    assert [(n["node"], n["backend"]) for n in prof["nodes"]] == [("node", "gl")]
    assert prof["nodes"][0]["ms"] > 0 and prof["total_ms"] >= prof["nodes"][0]["ms"]


def test_shader_compile_error_carries_the_driver_log(monkeypatch):
    from backends.gl import programs
    sess = check("Relu", [Feed(rand(3))])
    original = programs.shader_text
    monkeypatch.setattr(programs, "shader_text", lambda name: "void main() { undeclared = 1; }"
                        if name == "broken.comp" else original(name))
    with pytest.raises(engine.KernelCompileError) as err:
        sess.backends["gl"].programs.get("broken")
    assert "broken" in str(err.value) and "undeclared" in err.value.build_log


def test_missing_binding_makes_the_backend_unavailable_with_the_reason():
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); sys.modules['moderngl'] = None; import engine; "
            "print(engine.available_backends()['gl'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("unavailable: moderngl is not installed")


def test_unknown_device_index_is_unavailable():
    with pytest.raises(engine.BackendUnavailable):
        engine.InferenceSession(one_node("Relu", [Feed(rand(3))])[0], backend="gl:1")


def test_non_float32_and_runtime_weights_fall_back_to_cpu():
    model, feed = one_node("Add", [Feed(np.arange(6, dtype=np.int64)), Feed(np.ones(6, np.int64))])
    sess = engine.InferenceSession(model, backend="gl")
    assert np.array_equal(sess.run(None, feed)[0], np.arange(1, 7))
    assert sess.placement()["node"]["backend"] == "cpu"
    model, feed = one_node("Conv", [Feed(rand(1, 2, 5, 5)), Feed(rand(3, 2, 3, 3, seed=1))])
    sess = engine.InferenceSession(model, backend="gl")
    sess.run(None, feed)
    assert "weights computed at run time" in sess.placement()["node"]["reason"]
