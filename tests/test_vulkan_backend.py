"""The Vulkan backend (Mesa lavapipe here): every native kernel against the CPU backend on odd
shapes and attributes, real models against onnxruntime, steady-state allocations, the pipeline
cache across processes, profiling, the staging path, and the committed SPIR-V."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, TensorProto

import engine
from engine import models, zoo
from engine.errors import BackendUnavailable, KernelCompileError
from engine.ir import Graph, Node, Value
from engine.model import Model
from tests.conftest import require_backend
from tests.oracle import assert_close, ort_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHADERS = os.path.join(ROOT, "shaders", "vulkan")
RNG = np.random.default_rng(2024)


@pytest.fixture(scope="module")
def vk():
    return require_backend("vulkan")


def rand(*shape, low=-3.0, high=3.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def node_model(op, inputs, attrs=None, n_out=1):
    """A one-node IR model. inputs: (name, array, fed) triples -- fed arrays are graph inputs,
    the others constants -- or None for an omitted optional input."""
    names, values, consts, feed = [], {}, {}, {}
    for item in inputs:
        if item is None:
            names.append("")
            continue
        name, arr, fed = item
        names.append(name)
        if fed:
            feed[name] = arr
            values[name] = Value(name, arr.dtype, arr.shape)
        else:
            consts[name] = arr
    outs = [f"y{k}" for k in range(n_out)]
    graph = Graph(f"vk_{op}", [Node(op, names, outs, f"{op}_node", dict(attrs or {}))], list(feed), outs,
                  values, consts)
    return Model(graph), feed


def check(op, inputs, attrs=None, n_out=1, scale=1e-4):
    """Run on cpu and vulkan, compare, and require every node to have run on vulkan."""
    model, feed = node_model(op, inputs, attrs, n_out)
    ref = engine.InferenceSession(model, backend="cpu").run(None, feed)
    sess = engine.InferenceSession(model, backend="vulkan")
    got = sess.run(None, feed)
    for g, r in zip(got, ref):
        assert_close(g, r, scale, what=f"{op} {attrs}")
    placed = {k: v["backend"] for k, v in sess.placement().items()}
    assert set(placed.values()) == {"vulkan"}, sess.placement()
    return sess


def shaders_used(sess):
    return {d.pipeline.key.split("@")[0] for e in sess._plan.executors.values() for d in e.dispatches}


# -- the committed SPIR-V ------------------------------------------------------------------
def test_committed_spirv_matches_sources(tmp_path):
    tool = shutil.which("glslangValidator")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("glslangValidator is needed in CI to check shaders/vulkan/*.spv")
        pytest.skip("glslangValidator is not installed")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    sources = sorted(glob.glob(os.path.join(SHADERS, "*.comp")))
    stems = {os.path.basename(p)[:-5] for p in sources}
    assert stems == {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(SHADERS, "*.spv"))}
    for src in sources:
        out = tmp_path / (os.path.basename(src)[:-5] + ".spv")
        res = subprocess.run([tool, "-V", "--target-env", "vulkan1.1", "-o", str(out), src],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout
        with open(src[:-5] + ".spv", "rb") as f:
            assert out.read_bytes() == f.read(), (f"{src} does not match its committed .spv: run "
                                                  f"shaders/vulkan/compile.sh (pinned: glslang 12.0.0; here {version})")


# -- elementwise ---------------------------------------------------------------------------
UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Abs", "Neg", "Reciprocal", "Softplus",
         "Floor", "Ceil", "SiLU", "HardSwish", "Gelu", "Sin", "Cos", "Softsign", "Sign", "Mish", "Round",
         "LeakyRelu", "Elu", "Celu", "ThresholdedRelu", "HardSigmoid", "Selu"]
UNARY_ATTRS = [("LeakyRelu", {"alpha": 0.2}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
               ("Gelu", {"approximate": "tanh"}), ("Elu", {"alpha": 0.5}), ("Celu", {"alpha": 2.0})]


@pytest.mark.parametrize("op,attrs", [(u, {}) for u in UNARY] + UNARY_ATTRS)
def test_unary(vk, op, attrs):
    x = rand(2, 3, 5, 7)
    if op in ("Log", "Sqrt"):
        x = np.abs(x) + 0.1
    if op == "Reciprocal":
        x = np.sign(x) * (np.abs(x) + 0.5)
    check(op, [("x", x, True)], attrs)


@pytest.mark.parametrize("bounds", [(-0.5, 1.5), (None, 2.0), (0.0, None), (None, None)])
def test_clip(vk, bounds):
    inputs = [("x", rand(3, 1, 11), True)]
    for k, b in enumerate(bounds):
        inputs.append((f"b{k}", np.array(b, np.float32), False) if b is not None else None)
    check("Clip", inputs)


BROADCAST = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 5)), ((1,), (2, 3)), ((4, 1, 6), (1, 5, 1)),
             ((2, 3, 1, 5, 1, 7), (3, 4, 1, 6, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
def test_binary_broadcast(vk, op, shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1])
    if op == "Div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    check(op, [("a", a, True), ("b", b, op != "Mul")])


def test_pow(vk):
    check("Pow", [("a", rand(3, 4, 5, low=0.5, high=2.0), True), ("b", rand(4, 5, low=-2, high=2), True)])
    check("Pow", [("a", rand(3, 4), True), ("b", np.array([2.0, 3.0, -1.0, 0.0], np.float32), False)])


@pytest.mark.parametrize("slope", [(3, 1, 1), (7,), (1,)], ids=str)
def test_prelu(vk, slope):
    check("PRelu", [("x", rand(2, 3, 5, 7), True), ("s", rand(*slope, low=0, high=1), False)])


def test_batchnorm_unfolded(vk):
    c = 5
    params = [("s", rand(c)), ("b", rand(c)), ("m", rand(c)), ("v", rand(c, low=0.5, high=2))]
    check("BatchNormalization", [("x", rand(2, c, 3, 7), True)] + [(n, a, False) for n, a in params],
          {"epsilon": 1e-3})


# -- convolution and matmul ----------------------------------------------------------------
CONVS = [
    dict(x=(1, 3, 9, 11), w=(4, 3, 3, 3), pads=[1, 1, 1, 1]),
    dict(x=(2, 5, 9, 11), w=(7, 5, 3, 2), strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2]),
    dict(x=(1, 6, 8, 7), w=(9, 2, 3, 3), group=3, pads=[1, 1, 1, 1]),
    dict(x=(1, 5, 10, 9), w=(5, 1, 3, 3), group=5, strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(x=(1, 4, 7, 7), w=(8, 1, 3, 3), group=4, pads=[0, 1, 2, 1]),
    dict(x=(2, 13, 6, 5), w=(17, 13, 1, 1)),
    dict(x=(1, 8, 9, 9), w=(5, 8, 1, 1), strides=[2, 2]),
    dict(x=(1, 3, 17), w=(4, 3, 5), pads=[2, 1], strides=[2]),
    dict(x=(1, 3, 10, 10), w=(4, 3, 4, 4), auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(x=(1, 4, 10, 10), w=(6, 4, 3, 3), auto_pad="SAME_LOWER", dilations=[2, 2]),
]


def conv_inputs(case, bias=True, transposed=False):
    """Inputs (x fed, weights and bias constant) and attributes of a Conv/ConvTranspose case."""
    x, w = case["x"], case["w"]
    out_channels = w[1] * case.get("group", 1) if transposed else w[0]
    inputs = [("x", rand(*x), True), ("w", rand(*w, low=-1, high=1), False)]
    if bias:
        inputs.append(("b", rand(out_channels), False))
    return inputs, {k: v for k, v in case.items() if k not in ("x", "w")}


@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"x{c['x']}w{c['w']}")
@pytest.mark.parametrize("bias", [True, False])
def test_conv(vk, case, bias):
    inputs, attrs = conv_inputs(case, bias)
    check("Conv", inputs, attrs)


FUSED = [("Relu", {}), ("Clip", {"act_min": 0.0, "act_max": 6.0}), ("Sigmoid", {}), ("SiLU", {}),
         ("HardSwish", {}), ("LeakyRelu", {"act_alpha": 0.1}), ("HardSigmoid", {"act_alpha": 0.2, "act_beta": 0.5}),
         ("Tanh", {})]


@pytest.mark.parametrize("act,params", FUSED, ids=[f[0] for f in FUSED])
def test_fused_activation(vk, act, params):
    attrs = dict(params, activation=act)
    for case in (CONVS[1], CONVS[3], CONVS[5]):
        inputs, conv_attrs = conv_inputs(case)
        check("Conv", inputs, dict(conv_attrs, **attrs))
    check("MatMul", [("a", rand(2, 5, 7), True), ("b", rand(7, 9), False), ("c", rand(9), False)], attrs)


TRANSPOSED = [
    dict(x=(1, 4, 5, 6), w=(4, 3, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(x=(1, 4, 5, 5), w=(4, 2, 3, 3), group=2, dilations=[2, 1], strides=[1, 2], pads=[0, 1, 2, 0]),
    dict(x=(1, 3, 4, 4), w=(3, 2, 3, 3), strides=[2, 2], output_shape=[8, 8]),
    dict(x=(2, 3, 5, 4), w=(3, 5, 2, 2), strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(x=(1, 3, 7), w=(3, 2, 4), strides=[3], pads=[1, 2]),
]


@pytest.mark.parametrize("case", TRANSPOSED, ids=lambda c: f"x{c['x']}w{c['w']}")
def test_conv_transpose(vk, case):
    inputs, attrs = conv_inputs(case, transposed=True)
    check("ConvTranspose", inputs, attrs)


MATMULS = [((3, 4), (4, 5)), ((2, 3, 17, 19), (19, 23)), ((5,), (5, 3)), ((4, 5), (5,)),
           ((2, 1, 4, 6), (3, 6, 2)), ((7, 1, 3, 8), (1, 5, 8, 4)), ((1, 12, 20), (20, 70))]


@pytest.mark.parametrize("shapes", MATMULS, ids=str)
def test_matmul(vk, shapes):
    check("MatMul", [("a", rand(*shapes[0]), True), ("b", rand(*shapes[1]), True)])


def test_tiled_matmul(vk, monkeypatch):
    """matmul.comp (shared-memory tiles) is what real GPUs get; lavapipe gets matmul_small.comp
    unless told otherwise: run the tiled kernel here too, on sizes that are not tile multiples."""
    from backends.vulkan import ops_conv
    monkeypatch.setattr(ops_conv, "TILED_ON_SOFTWARE", True)
    sess = check("MatMul", [("a", rand(2, 70, 33), True), ("b", rand(33, 90), False), ("c", rand(90), False)],
                 {"activation": "Relu"})
    assert shaders_used(sess) == {"matmul"}
    inputs, attrs = conv_inputs(dict(x=(2, 70, 9, 9), w=(66, 70, 1, 1)))
    assert shaders_used(check("Conv", inputs, attrs)) == {"matmul"}


# -- pooling, reductions, normalization ----------------------------------------------------
POOLS = [
    ("MaxPool", (1, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", (1, 2, 10, 10), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", (2, 3, 9, 8), dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[0, 1, 1, 0])),
    ("AveragePool", (1, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 2, 1])),
    ("AveragePool", (1, 3, 11, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 2, 1],
                                        count_include_pad=1)),
    ("AveragePool", (1, 2, 10, 10), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
                                         count_include_pad=1)),
    ("MaxPool", (1, 3, 13), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
]


@pytest.mark.parametrize("op,shape,attrs", POOLS, ids=[f"{p[0]}{p[1]}" for p in POOLS])
def test_pool(vk, op, shape, attrs):
    check(op, [("x", rand(*shape), True)], attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 40, 40)], ids=str)
def test_global_pool(vk, op, shape):
    check(op, [("x", rand(*shape), True)])


REDUCES = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
AXES = [([1], 1), ([0, 2], 1), ([-1], 0), (None, 1), ([1, 3], 0)]


@pytest.mark.parametrize("op", REDUCES)
def test_reduce(vk, op):
    for axes, keep in AXES:
        x = rand(2, 5, 6, 7, low=0.7, high=1.3)
        inputs = [("x", x, True)] + ([("axes", np.array(axes, np.int64), False)] if axes else [])
        check(op, inputs, {"keepdims": keep})
    check(op, [("x", rand(3, 300, low=0.9, high=1.1), True), ("axes", np.array([1], np.int64), False)])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((2, 5, 7), 1), ((3, 200), -1), ((2, 3, 4, 5), 0), ((4, 7), 1)], ids=str)
def test_softmax(vk, op, shape, axis):
    check(op, [("x", rand(*shape), True)], {"axis": axis})


@pytest.mark.parametrize("shape,axis,scale,bias", [((2, 5, 24), -1, (24,), (24,)), ((2, 3, 4, 5), 1, (3, 4, 5), None),
                                                   ((3, 130), -1, (1, 130), (130,))], ids=str)
def test_layer_norm(vk, shape, axis, scale, bias):
    inputs = [("x", rand(*shape), True), ("s", rand(*scale), False)]
    if bias:
        inputs.append(("b", rand(*bias), False))
    check("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-3})


RESIZES = [
    ("nearest", "asymmetric", "floor", (1, 2, 5, 7), [1, 1, 2, 2], None),
    ("nearest", "half_pixel", "round_prefer_floor", (1, 2, 5, 7), None, [1, 2, 8, 11]),
    ("nearest", "align_corners", "round_prefer_ceil", (2, 1, 6, 6), [1, 1, 1.5, 0.5], None),
    ("linear", "half_pixel", None, (1, 3, 5, 7), [1, 1, 2, 2], None),
    ("linear", "align_corners", None, (1, 2, 5, 7), None, [1, 2, 9, 13]),
    ("linear", "pytorch_half_pixel", None, (1, 2, 5, 7), [1, 1, 0.6, 0.6], None),
    ("linear", "asymmetric", None, (1, 2, 4, 5), [1, 1, 3, 2], None),
]


@pytest.mark.parametrize("mode,ctm,nearest,shape,scales,sizes", RESIZES, ids=[f"{r[0]}-{r[1]}" for r in RESIZES])
def test_resize(vk, mode, ctm, nearest, shape, scales, sizes):
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if nearest:
        attrs["nearest_mode"] = nearest
    inputs = [("x", rand(*shape), True), None,
              ("scales", np.array(scales, np.float32), False) if scales else None]
    if sizes:
        inputs.append(("sizes", np.array(sizes, np.int64), False))
    check("Resize", inputs, attrs)


# -- data movement -------------------------------------------------------------------------
def ints(*v):
    return np.array(v, np.int64)


RASTERS = [
    ("Transpose", [rand(2, 3, 4, 5)], [], {"perm": [0, 2, 3, 1]}, 1),
    ("Transpose", [rand(3, 4, 5)], [], {}, 1),
    ("Slice", [rand(2, 5, 6, 7)], [ints(1, 0), ints(4, 5), ints(1, 3), ints(1, 2)], {}, 1),
    ("Slice", [rand(2, 5, 6, 7)], [ints(-1), ints(-100), ints(2), ints(-2)], {}, 1),
    ("Concat", [rand(2, 3, 4), rand(2, 1, 4), rand(2, 5, 4)], [], {"axis": 1}, 1),
    ("Concat", [rand(2, 3, 4), rand(2, 3, 1)], [], {"axis": -1}, 1),
    ("Split", [rand(2, 5, 3)], [ints(2, 3)], {"axis": 1}, 2),
    ("Pad", [rand(1, 3, 4, 5)], [ints(0, 1, 2, 0, 0, 0, 1, 3), np.array(1.5, np.float32)], {}, 1),
    ("Pad", [rand(1, 3, 6, 5)], [ints(0, 0, -1, 2, 0, 0, -2, 1)], {}, 1),
    ("Tile", [rand(2, 1, 3)], [ints(2, 3, 2)], {}, 1),
    ("Expand", [rand(3, 1, 5)], [ints(2, 3, 4, 5)], {}, 1),
    ("DepthToSpace", [rand(1, 8, 3, 4)], [], {"blocksize": 2, "mode": "DCR"}, 1),
    ("DepthToSpace", [rand(1, 8, 3, 4)], [], {"blocksize": 2, "mode": "CRD"}, 1),
    ("SpaceToDepth", [rand(1, 2, 4, 6)], [], {"blocksize": 2}, 1),
    ("Gather", [rand(2, 5, 3)], [ints(2, -1, 0)], {"axis": 1}, 1),
    ("Gather", [rand(4, 3)], [np.array(2, np.int64)], {"axis": 0}, 1),
    ("Reshape", [rand(2, 3, 4)], [ints(4, -1)], {}, 1),
    ("Flatten", [rand(2, 3, 4)], [], {"axis": 2}, 1),
    ("Squeeze", [rand(2, 1, 4)], [ints(1)], {}, 1),
    ("Unsqueeze", [rand(2, 4)], [ints(0, 3)], {}, 1),
]


@pytest.mark.parametrize("op,data,consts,attrs,n_out", RASTERS, ids=[f"{r[0]}{k}" for k, r in enumerate(RASTERS)])
def test_data_movement(vk, op, data, consts, attrs, n_out):
    inputs = [(f"x{k}", a, True) for k, a in enumerate(data)] + [(f"c{k}", c, False) for k, c in enumerate(consts)]
    check(op, inputs, attrs, n_out)


# -- scheduling, models, memory, cache, profile --------------------------------------------
def test_topk_falls_back_to_cpu_and_matches_onnxruntime(vk):
    w = numpy_helper.from_array(rand(6, 3, 3, 3, low=-1, high=1), "w")
    k = numpy_helper.from_array(ints(5), "k")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("TopK", ["f", "k"], ["values", "indices"])]
    graph = helper.make_graph(nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 3, 8, 8))],
                              [helper.make_tensor_value_info(n, t, None) for n, t in
                               (("values", TensorProto.FLOAT), ("indices", TensorProto.INT64))], [w, k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rand(1, 3, 8, 8)
    sess = engine.InferenceSession(model, backend="vulkan")
    got, ref = sess.run(None, {"x": x}), ort_run(model, {"x": x})
    for g, r in zip(got, ref):
        assert_close(g, r, what="topk model")
    placed = sess.placement().values()
    assert all(p["backend"] == "cpu" and p["reason"].startswith("fallback") for p in placed if p["op"] == "TopK")
    assert all(p["backend"] == "vulkan" for p in placed if p["op"] != "TopK")


def image_like(shape, seed=0):
    return ((np.random.default_rng(seed).random(shape) - 0.5) / 0.25).astype(np.float32)


def run_model(path, shapes):
    """Vulkan vs onnxruntime at each shape in one session; >= 95 % of executed nodes on vulkan."""
    sess = engine.InferenceSession(path, backend="vulkan")
    proto = onnx.load(path)
    name = sess.get_inputs()[0].name
    for shape in shapes:
        feed = {name: image_like(shape)}
        for g, r in zip(sess.run(None, feed), ort_run(proto, feed)):
            assert_close(g, r, what=f"{os.path.basename(path)} {shape}")
        placed = [p["backend"] for p in sess.placement().values() if p["backend"] is not None]
        share = placed.count("vulkan") / len(placed)
        assert share >= 0.95, f"{share:.0%} of nodes on vulkan: {sess.placement()}"
    return sess


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model(vk, name):
    run_model(zoo.path(name), [(1, 3, 64, 64)])


@pytest.mark.parametrize("name,shapes", [("ppocr_det", [(1, 3, 64, 96), (1, 3, 96, 64)]),
                                         ("ppocr_rec", [(1, 3, 48, 96)]), ("ppocr_cls", [(1, 3, 48, 192)])])
def test_real_model(vk, name, shapes):
    sess = run_model(models.find(name), shapes)
    assert sess.replans == len(shapes)


def test_replanning_between_known_shapes_allocates_nothing(vk):
    sess = engine.InferenceSession(models.find("ppocr_det"), backend="vulkan")
    feeds = [{"x": image_like(shape)} for shape in ((1, 3, 32, 64), (1, 3, 64, 32))]
    for feed in feeds:
        sess.run(None, feed)
    allocations = sess.backends["vulkan"].allocations
    for feed in feeds * 2:
        sess.run(None, feed)
    assert sess.backends["vulkan"].allocations == allocations and sess.replans == 6


def test_steady_state_allocates_nothing(vk):
    sess = engine.InferenceSession(zoo.path("mobilenet_v2"), backend="vulkan")
    x = image_like((1, 3, 32, 32))
    first = sess.run(None, {"input": x})[0]
    for _ in range(100):
        out = sess.run(None, {"input": x})[0]
        assert sess.memory()["vulkan"]["allocations_last_run"] == 0
    assert np.array_equal(first, out)
    mem = sess.memory()["vulkan"]
    assert mem["lower_bound_bytes"] <= mem["arena_bytes"] < mem["naive_bytes"]


CACHE_PROBE = """
import sys
sys.path.insert(0, {root!r})
import numpy as np, engine
from backends.vulkan import VulkanBackend
sess = engine.InferenceSession({model!r}, backend="vulkan", cache_dir=sys.argv[1])
sess.run(None, {{"input": np.zeros((1, 3, 32, 32), np.float32)}})
print(VulkanBackend.cache_stats["hits"], VulkanBackend.cache_stats["misses"])
"""


def test_second_process_creates_every_pipeline_from_the_cache(vk, tmp_path):
    code = CACHE_PROBE.format(root=ROOT, model=zoo.path("squeezenet1_1"))
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        runs.append(tuple(int(v) for v in res.stdout.split()[-2:]))
    (hits1, misses1), (hits2, misses2) = runs
    assert misses1 > 0 and hits1 == 0
    assert misses2 == 0 and hits2 == misses1
    assert glob.glob(str(tmp_path / "vulkan-*.bin")) and glob.glob(str(tmp_path / "vulkan-*.keys"))


STAGING_PROBE = """
import sys
sys.path.insert(0, {root!r})
import numpy as np, engine
x = ((np.random.default_rng(0).random((1, 3, 64, 96)) - 0.5) * 4).astype(np.float32)
ref = engine.InferenceSession({model!r}, backend="cpu").run(None, {{"x": x}})[0]
sess = engine.InferenceSession({model!r}, backend="vulkan")
for _ in range(2):
    out = sess.run(None, {{"x": x}})[0]
print(sess.backends["vulkan"].dev.direct, sess.memory()["vulkan"]["allocations_last_run"],
      float(np.abs(out - ref).max()), float(np.abs(ref).max()))
"""


def test_staging_path_for_device_local_memory(vk):
    """Discrete GPUs get a device-local arena with staging copies; force that path here."""
    code = STAGING_PROBE.format(root=ROOT, model=models.find("ppocr_det"))
    env = dict(os.environ, MIXNN_VULKAN_STAGING="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    direct, allocations, diff, peak = res.stdout.split()[-4:]
    assert direct == "False" and allocations == "0"
    assert float(diff) <= 1e-4 * max(1.0, float(peak))


def test_profile_reports_vulkan_node_times(vk, monkeypatch):
    sess = engine.InferenceSession(zoo.path("squeezenet1_1"), backend="vulkan")
    feed = {"input": image_like((1, 3, 32, 32))}
    for timestamps in (True, False):  # device timestamps, else one timed submit per node
        monkeypatch.setattr(sess.backends["vulkan"].dev, "can_time", timestamps)
        prof = sess.profile(feed)
        assert len(prof["nodes"]) == len(sess.placement())
        assert all(n["backend"] == "vulkan" and n["ms"] >= 0 for n in prof["nodes"])
        assert prof["total_ms"] > 0


def test_device_selection_and_errors(vk):
    assert "Vulkan" in engine.available_backends()["vulkan"]
    model, feed = node_model("Relu", [("x", rand(2, 3), True)])
    with pytest.raises(BackendUnavailable, match="no device 7"):
        engine.InferenceSession(model, backend="vulkan:7")
    engine.InferenceSession(model, backend="vulkan:0").run(None, feed)
    from backends.vulkan.pipelines import spirv
    with pytest.raises(KernelCompileError, match="no_such_shader"):
        spirv("no_such_shader")
