"""The OpenCL backend (PoCL in CI): every native kernel against the CPU backend on odd shapes
and attributes, whole models against onnxruntime, steady-state memory, the disk cache of
compiled programs, profiling and errors."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine
from engine import models, zoo
from engine.ir import Graph, Node, Value
from engine.model import Model
from tests.conftest import ROOT, require_backend
from tests.oracle import Feed, assert_close, check_against_cpu, ort_run, rand


@pytest.fixture(scope="module", autouse=True)
def opencl():
    return require_backend("opencl")


def check(op, ins, attrs=None, n_out=1, scale=1e-4):
    """One node with inputs `ins` (Feed, constant array or None) on opencl, against the CPU backend."""
    return check_against_cpu("opencl", op, ins, attrs, n_out, scale)


# -- convolution -------------------------------------------------------------------------
CONVS = [  # (x shape, w shape, attrs)
    ((2, 5, 11, 9), (7, 5, 3, 3), dict(pads=[1, 0, 2, 1])),
    ((1, 4, 13, 10), (6, 4, 3, 3), dict(strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2])),
    ((2, 13, 7, 5), (17, 13, 1, 1), {}),                                   # 1x1: packed GEMM
    ((1, 6, 9, 9), (9, 2, 3, 3), dict(group=3, pads=[1, 1, 1, 1])),        # grouped
    ((2, 6, 12, 11), (12, 1, 5, 5), dict(group=6, strides=[2, 2], pads=[2, 1, 0, 2])),  # depthwise x2
    ((1, 4, 7, 29), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1], dilations=[1, 2])),  # wide depthwise
    ((1, 5, 10, 7), (9, 5, 1, 1), dict(strides=[2, 2])),                   # strided 1x1: direct
    ((1, 3, 15, 15), (4, 3, 3, 2), dict(auto_pad="SAME_UPPER", strides=[2, 3])),
    ((2, 4, 17), (5, 4, 3), dict(dilations=[2], pads=[1, 2])),              # 1-D
]


@pytest.mark.parametrize("xs,ws,attrs", CONVS)
def test_conv(xs, ws, attrs):
    bias = rand(ws[0], seed=2)
    check("Conv", [Feed(rand(*xs)), rand(*ws, seed=1), bias], attrs)


@pytest.mark.parametrize("act,extra", [("Relu", {}), ("Clip", dict(act_min=-0.5, act_max=0.7)),
                                       ("SiLU", {}), ("HardSwish", {}), ("LeakyRelu", dict(act_alpha=0.2)),
                                       ("HardSigmoid", dict(act_alpha=0.3, act_beta=0.4)), ("Tanh", {}),
                                       ("Sigmoid", {})])
def test_conv_fused_activation(act, extra):
    check("Conv", [Feed(rand(1, 3, 8, 9)), rand(10, 3, 3, 3, seed=1)], dict(pads=[1, 1, 1, 1], activation=act, **extra))
    check("Conv", [Feed(rand(1, 4, 6, 5)), rand(4, 1, 3, 3, seed=1)], dict(group=4, activation=act, **extra))


CONV_TRANSPOSES = [
    ((1, 4, 5, 6), (4, 3, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 0])),
    ((2, 6, 4, 4), (6, 2, 2, 2), dict(strides=[2, 2], group=3)),
    ((1, 3, 5, 4), (3, 9, 3, 2), dict(dilations=[2, 1], strides=[1, 2])),
    ((1, 2, 4, 5), (2, 3, 3, 3), dict(strides=[2, 2], output_shape=[8, 10], auto_pad="SAME_UPPER")),
    ((2, 3, 7), (3, 4, 3), dict(strides=[3], pads=[1, 1])),
]


@pytest.mark.parametrize("xs,ws,attrs", CONV_TRANSPOSES)
def test_conv_transpose(xs, ws, attrs):
    check("ConvTranspose", [Feed(rand(*xs)), rand(*ws, seed=1), rand(ws[1] * attrs.get("group", 1), seed=2)], attrs)


# -- matrix products -----------------------------------------------------------------------
def test_matmul_constant_right_operand_with_bias_and_activation():
    check("MatMul", [Feed(rand(2, 5, 7)), rand(7, 11, seed=1)])
    check("MatMul", [Feed(rand(3, 7)), rand(7, 9, seed=1), rand(9, seed=2)], dict(activation="Relu"))
    check("MatMul", [Feed(rand(7)), rand(7, 3, seed=1)])


@pytest.mark.parametrize("a,b", [((2, 1, 5, 7), (3, 7, 4)), ((5, 7), (2, 7, 9)), ((2, 5, 7), (7,)),
                                 ((7,), (2, 7, 3)), ((1, 9, 6), (1, 6, 10))])
def test_matmul_batched_broadcast(a, b):
    check("MatMul", [Feed(rand(*a)), Feed(rand(*b, seed=1))])


def test_matmul_runtime_operands_with_bias():
    check("MatMul", [Feed(rand(2, 3, 5)), Feed(rand(5, 6, seed=1)), rand(6, seed=2)],
          dict(activation="Clip", act_min=0.0, act_max=1.0))


@pytest.mark.parametrize("attrs,c", [(dict(transB=1), (1, 6)), (dict(transA=1, alpha=0.5, beta=2.0), (5, 1)),
                                     (dict(transA=1, transB=1), (5, 6)), ({}, None)])
def test_gemm(attrs, c):
    a = rand(7, 5) if attrs.get("transA") else rand(5, 7)
    b = rand(6, 7, seed=1) if attrs.get("transB") else rand(7, 6, seed=1)
    check("Gemm", [Feed(a), b, None if c is None else rand(*c, seed=2)], attrs)


# -- elementwise ---------------------------------------------------------------------------
SHAPE_PAIRS = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1)),
               ((7,), (2, 3, 7)), ((2, 1, 3, 1, 2, 5), (1, 4, 1, 3, 2, 1)), ((3, 5), ())]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
def test_binary_broadcast(op, sa, sb):
    lo = 0.5 if op in ("Div", "Pow") else -2.0
    check(op, [Feed(rand(*sa, lo=lo)), Feed(rand(*sb, lo=lo, seed=1))])


def test_binary_with_constant_and_prelu():
    check("Mul", [Feed(rand(2, 6, 5, 3)), rand(6, 1, 1, seed=1)])
    check("PRelu", [Feed(rand(2, 6, 5, 3)), rand(6, 1, 1, seed=1)])
    check("Mod", [Feed(rand(4, 5)), rand(5, lo=0.5, seed=1)], dict(fmod=1))


UNARY = {"Relu": {}, "Sigmoid": {}, "Tanh": {}, "Exp": {}, "Abs": {}, "Neg": {}, "Floor": {}, "Ceil": {},
         "Round": {}, "Sign": {}, "Sin": {}, "Cos": {}, "Atan": {}, "Sinh": {}, "Cosh": {}, "Asinh": {},
         "Erf": {}, "SiLU": {}, "HardSwish": {}, "Softplus": {}, "Softsign": {}, "Mish": {},
         "LeakyRelu": dict(alpha=0.3), "HardSigmoid": dict(alpha=0.3, beta=0.4), "Elu": dict(alpha=0.7),
         "Selu": {}, "Celu": dict(alpha=1.5), "ThresholdedRelu": dict(alpha=0.4),
         "Shrink": dict(lambd=0.6, bias=0.2), "Gelu": {}}
POSITIVE = {"Log": (0.1, 5.0), "Sqrt": (0.0, 5.0), "Reciprocal": (0.2, 3.0), "Acosh": (1.0, 4.0),
            "Asin": (-0.99, 0.99), "Acos": (-0.99, 0.99), "Atanh": (-0.9, 0.9), "Tan": (-1.2, 1.2)}


@pytest.mark.parametrize("op", sorted(UNARY) + sorted(POSITIVE))
def test_unary(op):
    lo, hi = POSITIVE.get(op, (-4.0, 4.0))
    check(op, [Feed(rand(3, 5, 7, lo=lo, hi=hi))], UNARY.get(op))


def test_gelu_tanh_and_clip_forms():
    check("Gelu", [Feed(rand(4, 9))], dict(approximate="tanh"))
    check("Clip", [Feed(rand(4, 9)), np.float32(-0.5), np.float32(0.8)])
    check("Clip", [Feed(rand(4, 9)), np.float32(0.1)])
    check("Clip", [Feed(rand(4, 9)), None, np.float32(0.3)])


def test_batch_normalization_unfolded():
    c = 5
    check("BatchNormalization", [Feed(rand(2, c, 3, 4)), rand(c, seed=1), rand(c, seed=2),
                                 rand(c, seed=3), rand(c, lo=0.5, hi=2.0, seed=4)], dict(epsilon=1e-3))


# -- pooling, normalization, reductions ----------------------------------------------------
POOLS = [
    ("MaxPool", (2, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1)),
    ("MaxPool", (1, 2, 10, 10), dict(kernel_shape=[2, 3], dilations=[2, 2])),
    ("AveragePool", (2, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", (2, 3, 11, 9), dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                                        count_include_pad=1, ceil_mode=1)),
    ("AveragePool", (1, 4, 9), dict(kernel_shape=[4], strides=[3], pads=[2, 1])),
    ("MaxPool", (1, 3, 8, 8), dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER", strides=[2, 2])),
]


@pytest.mark.parametrize("op,shape,attrs", POOLS)
def test_pool(op, shape, attrs):
    check(op, [Feed(rand(*shape))], attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op):
    check(op, [Feed(rand(2, 5, 13, 11))])
    check(op, [Feed(rand(1, 3, 1, 1))])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((3, 5, 7), -1), ((3, 5, 7), 1), ((3, 5, 7), 0), ((2, 300), 1)])
def test_softmax(op, shape, axis):
    check(op, [Feed(rand(*shape, lo=-5, hi=5))], dict(axis=axis))


@pytest.mark.parametrize("axis,bias", [(-1, True), (1, False), (2, True)])
def test_layer_normalization(axis, bias):
    shape = (2, 3, 5, 7)
    norm = shape[axis:]
    check("LayerNormalization", [Feed(rand(*shape)), rand(*norm, seed=1), rand(*norm, seed=2) if bias else None],
          dict(axis=axis, epsilon=1e-5))


REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keep", [([1], 1), ([0, 2], 0), ([-1], 1), (None, 0), ([1, 3], 1)])
def test_reduce(op, axes, keep):
    lo = 0.5 if op in ("ReduceLogSum", "ReduceProd") else -2.0
    hi = 1.5 if op == "ReduceProd" else 2.0
    ins = [Feed(rand(3, 4, 5, 6, lo=lo, hi=hi))] + ([] if axes is None else [np.array(axes, np.int64)])
    check(op, ins, dict(keepdims=keep))


# -- resize --------------------------------------------------------------------------------
RESIZES = [
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), [1, 1, 2, 2], None),
    (dict(mode="nearest"), None, [2, 3, 7, 5]),
    (dict(mode="nearest", nearest_mode="round_prefer_ceil", coordinate_transformation_mode="align_corners"),
     None, [2, 3, 11, 13]),
    (dict(mode="linear"), [1, 1, 2, 2], None),
    (dict(mode="linear"), [1, 1, 0.5, 0.75], None),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), None, [2, 3, 9, 14]),
    (dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), None, [2, 3, 1, 17]),
    (dict(mode="linear", coordinate_transformation_mode="asymmetric"), [1, 1, 1.5, 3], None),
]


@pytest.mark.parametrize("attrs,scales,sizes", RESIZES)
def test_resize(attrs, scales, sizes):
    ins = [Feed(rand(2, 3, 6, 7)), None, None if scales is None else np.array(scales, np.float32),
           None if sizes is None else np.array(sizes, np.int64)]
    check("Resize", ins if sizes is not None else ins[:3], attrs)


# -- data movement (raster) ----------------------------------------------------------------
def test_layout_ops():
    x = Feed(rand(2, 3, 4, 5))
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    check("Transpose", [x], dict(perm=[0, 2, 3, 1]))
    check("Transpose", [x], dict(perm=[3, 1, 0, 2]))
    check("Slice", [x, i64(1, 4), i64(3, 0), i64(1, 3), i64(1, -2)])
    check("Concat", [x, Feed(rand(2, 1, 4, 5, seed=1)), Feed(rand(2, 2, 4, 5, seed=2))], dict(axis=1))
    check("Split", [x, i64(1, 3, 1)], dict(axis=3), n_out=3)
    check("Pad", [x, i64(0, 1, 2, 0, 0, 2, 1, 3), np.float32(0.5)])
    check("Pad", [x, i64(0, 0, -1, 1, 0, 0, 1, -2)])
    check("Tile", [x, i64(1, 2, 1, 3)])
    check("Expand", [Feed(rand(3, 1, 5)), i64(2, 3, 4, 5)])
    check("DepthToSpace", [Feed(rand(1, 8, 3, 2))], dict(blocksize=2, mode="DCR"))
    check("DepthToSpace", [Feed(rand(1, 8, 3, 2))], dict(blocksize=2, mode="CRD"))
    check("SpaceToDepth", [Feed(rand(1, 3, 4, 6))], dict(blocksize=2))
    check("Gather", [x, i64(2, 0, -1)], dict(axis=1))
    check("Gather", [x, np.array(1, np.int64)], dict(axis=3))
    check("Reshape", [x, i64(6, -1)])
    check("Flatten", [x], dict(axis=2))
    check("Dropout", [x])
    check("Transpose", [Feed(np.arange(24, dtype=np.int32).reshape(2, 3, 4))], dict(perm=[2, 0, 1]))


def test_reshape_inside_graph_aliases_its_input():
    g = Graph("alias", inputs=["x"], outputs=["z"])
    g.values["x"] = Value("x", np.float32, (2, 3, 4))
    g.add_constant("shape", np.array([6, 4], np.int64))
    g.nodes = [Node("Relu", ["x"], ["r"], "relu"), Node("Reshape", ["r", "shape"], ["f"], "reshape"),
               Node("Sigmoid", ["f"], ["z"], "sigmoid")]
    sess = engine.InferenceSession(Model(g), backend="opencl")
    x = rand(2, 3, 4)
    assert_close(sess.run(None, {"x": x})[0], 1 / (1 + np.exp(-np.maximum(x, 0).reshape(6, 4))))
    exe = sess._plan.executors["reshape"]
    assert exe.aliased and exe.launches == []


def test_unaliased_reshape_copies_at_any_word_offset():
    """Kernels take element offsets, so tensors need no sub-buffer alignment."""
    from backends.opencl import OpenCLBackend
    from engine.ops import TensorInfo
    b = OpenCLBackend(0)
    ins = [TensorInfo((2, 3, 4), np.dtype(np.float32)), TensorInfo((2,), np.dtype(np.int64), np.array([6, 4]))]
    exe = b.create(Node("Reshape", ["x", "s"], ["y"], "r"), ins, [TensorInfo((6, 4), np.dtype(np.float32))])
    buf = b.allocate(1024)
    x, y = b.view(buf, 4, (2, 3, 4), np.float32), b.view(buf, 300, (6, 4), np.float32)
    data = rand(2, 3, 4)
    b.write(x, data)
    exe.bind([x, None], [y])
    b.compile([exe])()
    out = np.empty((6, 4), np.float32)
    b.read(y, out)
    np.testing.assert_array_equal(out, data.reshape(6, 4))


def test_declined_nodes_fall_back_to_cpu():
    g = Graph("mixed", inputs=["x"], outputs=["v", "i"])
    g.values["x"] = Value("x", np.float32, (2, 10))
    g.add_constant("k", np.array([3], np.int64))
    g.nodes = [Node("Relu", ["x"], ["r"], "relu"), Node("TopK", ["r", "k"], ["v", "i"], "topk")]
    sess = engine.InferenceSession(Model(g), backend="opencl")
    v, i = sess.run(None, {"x": rand(2, 10)})
    place = sess.placement()
    assert place["relu"]["backend"] == "opencl"
    assert place["topk"]["backend"] == "cpu" and place["topk"]["reason"].startswith("fallback")
    ref = np.sort(np.maximum(rand(2, 10), 0), axis=1)[:, ::-1][:, :3]
    assert_close(v, ref)


# -- whole models against onnxruntime ------------------------------------------------------
def image_like(shape, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.random(shape) - 0.5) / 0.25).astype(np.float32)


def on_opencl(sess):
    placed = [p for p in sess.placement().values() if p["backend"] is not None]
    return sum(p["backend"] == "opencl" for p in placed) / len(placed)


def check_model(path, shapes):
    sess = engine.InferenceSession(path, backend="opencl")
    proto = onnx.load(path)
    name = sess.get_inputs()[0].name
    for shape in shapes:
        feed = {name: image_like(shape)}
        for got, ref, out in zip(sess.run(None, feed), ort_run(proto, feed), sess.graph.outputs):
            assert_close(got, ref, what=f"{os.path.basename(path)} {shape} {out}")
        assert on_opencl(sess) >= 0.95, sess.placement()
    return sess


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model(name):
    check_model(zoo.path(name), [(1, 3, 224, 224)])  # the zoo's spatial size is fixed


def _real(name):
    try:
        return models.find(name)
    except models.ModelNotFoundError as e:
        pytest.skip(str(e))


def test_ppocr_det_two_sizes_one_session():
    sess = check_model(_real("ppocr_det"), [(1, 3, 64, 96), (1, 3, 96, 64)])
    assert sess.replans == 2
    packed = dict(sess.backends["opencl"].packed)  # weights repacked once, not once per shape
    sess.run(None, {"x": image_like((1, 3, 32, 32))})
    assert sess.backends["opencl"].packed.keys() == packed.keys()
    assert all(sess.backends["opencl"].packed[k][1] is t for k, (_, t) in packed.items())


@pytest.mark.parametrize("name,shape", [("ppocr_rec", (1, 3, 48, 96)), ("ppocr_cls", (1, 3, 48, 192))])
def test_ppocr_model(name, shape):
    check_model(_real(name), [shape])


def test_model_with_topk_falls_back_and_matches_onnxruntime():
    w = rand(6, 3, 3, 3, seed=5) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("TopK", ["f", "k"], ["vals", "idx"], name="topk"),
             helper.make_node("Sigmoid", ["vals"], ["s"], name="sigmoid")]
    graph = helper.make_graph(nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("idx", TensorProto.INT64, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([5], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = engine.InferenceSession(model, backend="opencl")
    feed = {"x": rand(1, 3, 8, 8)}
    for got, ref in zip(sess.run(None, feed), ort_run(model, feed)):
        assert_close(got, ref)
    place = sess.placement()
    assert place["topk"]["backend"] == "cpu" and place["conv"]["backend"] == "opencl"
    assert place["sigmoid"]["backend"] == "opencl"


# -- steady state, cache, profile, errors --------------------------------------------------
def small_mobilenet_v2(size=64):
    proto = onnx.load(zoo.path("mobilenet_v2"))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = size  # fully convolutional up to the global pool
    return proto


def test_steady_state_allocates_nothing():
    sess = engine.InferenceSession(small_mobilenet_v2(), backend="opencl")
    x = image_like((1, 3, 64, 64))
    first = sess.run(None, {"input": x})[0]
    for _ in range(100):
        out = sess.run(None, {"input": x})[0]
    assert sess.memory()["opencl"]["allocations_last_run"] == 0
    np.testing.assert_array_equal(out, first)
    mem = sess.memory()["opencl"]
    assert mem["arena_bytes"] <= mem["naive_bytes"]


def test_second_process_compiles_nothing(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, engine; "
            "from backends.opencl import OpenCLBackend as B; "
            "s = engine.InferenceSession(sys.argv[2], backend='opencl', cache_dir=sys.argv[3]); "
            "s.run(None, {'input': np.ones((1, 3, 224, 224), np.float32)}); "
            "print(B.cache_stats['misses'], B.cache_stats['hits'])")
    model = zoo.path("squeezenet1_1")
    runs = [subprocess.run([sys.executable, "-c", code, ROOT, model, str(tmp_path)], capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (miss1, hit1), (miss2, hit2) = (map(int, r.stdout.split()[-2:]) for r in runs)
    assert miss1 > 0 and hit1 == 0
    assert miss2 == 0 and hit2 == miss1
    assert any(f.endswith(".bin") for f in os.listdir(tmp_path / "opencl"))


def test_profile_reports_device_times():
    sess = engine.InferenceSession(small_mobilenet_v2(32), backend="opencl")
    prof = sess.profile({"input": image_like((1, 3, 32, 32))})
    nodes = [n for n in prof["nodes"] if n["backend"] == "opencl"]
    assert len(nodes) == len(sess._plan.executors)
    assert all(n["ms"] >= 0 for n in nodes) and sum(n["ms"] for n in nodes) > 0


def test_debug_prints_device_and_launches(monkeypatch, capsys):
    monkeypatch.setenv("MIXNN_DEBUG", "2")
    check("Relu", [Feed(rand(3, 4))])
    err = capsys.readouterr().err
    assert "opencl:0 opened" in err and "unary" in err and " ms" in err


def test_device_selection_and_alignment():
    from backends.opencl import OpenCLBackend, _devices
    n = len(_devices())
    with pytest.raises(engine.BackendUnavailable, match=f"opencl:{n}: there are {n} device"):
        engine.InferenceSession(small_mobilenet_v2(32), backend=f"opencl:{n}")
    b = OpenCLBackend(0)
    assert b.alignment == b.dev.mem_base_addr_align // 8


def test_build_failure_is_a_kernel_compile_error():
    from backends.opencl import OpenCLBackend
    b = OpenCLBackend(0)
    with pytest.raises(engine.KernelCompileError, match="broken.cl") as err:
        b.compiler.program("__kernel void k(__global float* x) { x[0] = undeclared; }", "broken.cl")
    assert "undeclared" in err.value.build_log


def test_tuner_remembers_work_group_sizes(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXNN_OPENCL_TUNE", "1")
    g = Graph("tune", inputs=["x"], outputs=["y"])
    g.values["x"] = Value("x", np.float32, (1, 3, 128, 128))
    g.add_constant("w", rand(16, 3, 3, 3, seed=1))
    g.nodes = [Node("Conv", ["x", "w"], ["y"], "conv", {"pads": [1, 1, 1, 1]})]
    x = rand(1, 3, 128, 128)
    sess = engine.InferenceSession(Model(g), backend="opencl", cache_dir=str(tmp_path))
    got = sess.run(None, {"x": x})[0]
    assert_close(got, engine.InferenceSession(Model(g), backend="cpu").run(None, {"x": x})[0])
    with open(tmp_path / "opencl" / "tune.json") as f:
        choices = json.load(f)
    (key, local), = choices.items()
    assert ":conv2d:" in key and local[0] in (16, 32, 64, 128)
    assert sess._plan.executors["conv"].launches[0][2][0] == local[0]
