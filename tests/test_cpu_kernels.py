"""CPU kernels against onnxruntime: one tiny single-node ONNX model per case, same inputs and
attributes fed to the kernel through a hand-built engine.ir.Node.

Fused ops of ours (SiLU, Conv/MatMul with `activation`, MatMul with bias) are checked against
the ONNX subgraph they replace. Tolerance: 1e-5 relative for floats (plus an absolute 1e-5 of the
output's scale, for values near zero), exact for integers and booleans.
"""
import importlib
import pkgutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import backends.cpu
from backends.cpu.kernels import KERNELS
from engine.ir import Node

for _m in pkgutil.iter_modules(backends.cpu.__path__):
    if _m.name.startswith("kernels_"):
        importlib.import_module(f"backends.cpu.{_m.name}")

OPSET = 21
RNG = np.random.default_rng(0)
F32 = np.float32


def rand(*shape, dtype=F32, lo=-3.0, hi=3.0):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(int(lo), int(hi), size=shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return RNG.random(shape) > 0.5
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def _onnx_attrs(attrs):
    return {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()}


def ort_run(nodes, feeds, outputs, opset=OPSET):
    names = [k for k, v in feeds.items() if v is not None]
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(feeds[k].dtype), feeds[k].shape)
         for k in names],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10 if opset <= 21 else 11
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(outputs, {k: feeds[k] for k in names})


def _frozen(v):
    """A read-only copy: a kernel that writes into its input fails loudly (constants of a loaded
    model are read-only memory maps too)."""
    if v is None:
        return None
    v = np.array(v)
    v.flags.writeable = False
    return v


def run_kernel(op, inputs, attrs, n_out=1):
    names = ["" if v is None else f"i{k}" for k, v in enumerate(inputs)]
    node = Node(op, names, [f"o{k}" for k in range(n_out)], name=f"test_{op}", attrs=dict(attrs))
    out = KERNELS[op](node, *[_frozen(v) for v in inputs])
    return list(out) if isinstance(out, tuple) else [out]


def assert_same(got, ref, rtol=1e-5):
    got = np.asarray(got)
    assert got.shape == ref.shape, f"shape {got.shape} != {ref.shape}"
    assert got.dtype == ref.dtype, f"dtype {got.dtype} != {ref.dtype}"
    if ref.dtype.kind == "f":
        scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0, where=np.isfinite(ref))))
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)
    else:
        np.testing.assert_array_equal(got, ref)


def reference_run(nodes, feeds, outputs, opset=OPSET):
    """The ONNX reference evaluator: the oracle where onnxruntime refuses what the spec allows."""
    from onnx.reference import ReferenceEvaluator
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(
        k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(m).run(outputs, feeds)


def check(op, inputs, attrs=None, n_out=1, opset=OPSET, rtol=1e-5, oracle=ort_run):
    """One ONNX node `op` on `inputs` (None: omitted optional input) vs the kernel."""
    attrs = attrs or {}
    while inputs and inputs[-1] is None:
        inputs = inputs[:-1]
    names = ["" if v is None else f"i{k}" for k, v in enumerate(inputs)]
    outs = [f"o{k}" for k in range(n_out)]
    node = helper.make_node(op, names, outs, **_onnx_attrs(attrs))
    ref = oracle([node], {n: v for n, v in zip(names, inputs) if n}, outs, opset)
    got = run_kernel(op, inputs, attrs, n_out)
    assert len(got) == n_out
    for g, r in zip(got, ref):
        assert_same(g, r, rtol)


# --------------------------------------------------------------------------- unary
def _positive(*s):
    return rand(*s, lo=0.1, hi=4)


UNARY_INPUTS = {
    "Log": _positive, "Sqrt": _positive, "Reciprocal": _positive,
    "Asin": lambda *s: rand(*s, lo=-0.99, hi=0.99), "Acos": lambda *s: rand(*s, lo=-0.99, hi=0.99),
    "Atanh": lambda *s: rand(*s, lo=-0.95, hi=0.95), "Acosh": lambda *s: rand(*s, lo=1.01, hi=5),
    "Tan": lambda *s: rand(*s, lo=-1.3, hi=1.3), "Erf": lambda *s: rand(*s, lo=-5, hi=5),
}
UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf", "Reciprocal",
         "Floor", "Ceil", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
         "Asinh", "Acosh", "Atanh", "Softplus", "Softsign", "Elu", "Selu", "Celu", "LeakyRelu",
         "ThresholdedRelu", "HardSigmoid", "HardSwish", "Mish", "Identity", "Shrink"]


@pytest.mark.parametrize("op", UNARY)
def test_unary(op):
    x = UNARY_INPUTS.get(op, rand)(3, 17, 5)
    check(op, [x])


@pytest.mark.parametrize("op,attrs", [
    ("Elu", {"alpha": 0.5}), ("Selu", {"alpha": 1.5, "gamma": 2.0}), ("Celu", {"alpha": 2.0}),
    ("LeakyRelu", {"alpha": 0.2}), ("ThresholdedRelu", {"alpha": 0.3}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("Shrink", {"bias": 0.5, "lambd": 1.0}),
    ("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("IsInf", {}), ("IsInf", {"detect_negative": 0}),
    ("IsInf", {"detect_positive": 0}), ("IsNaN", {}),
])
def test_unary_attrs(op, attrs):
    x = rand(4, 9)
    x[0, :3] = [np.inf, -np.inf, np.nan]
    if op not in ("IsInf", "IsNaN"):
        x = x[1:]
    check(op, [x], attrs)


def test_erf_accuracy():
    import math
    x = np.concatenate([np.linspace(-6, 6, 4001), np.logspace(-20, 0.6, 300)]).astype(F32)
    ref = np.array([math.erf(float(v)) for v in x], dtype=np.float64)
    got = run_kernel("Erf", [x], {})[0]
    assert got.dtype == F32
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)) < 2e-7


def test_round_half_to_even():
    check("Round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.49, -3.51], F32)])


@pytest.mark.parametrize("op,dtype", [("Relu", np.int32), ("Abs", np.int64), ("Neg", np.int8),
                                      ("Sign", np.int32), ("Not", np.bool_), ("BitwiseNot", np.uint8),
                                      ("BitwiseNot", np.int32), ("Abs", np.float64)])
def test_unary_types(op, dtype):
    check(op, [rand(5, 6, dtype=dtype, lo=-50, hi=50)])


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (None, 0.5), (-0.5, None), (None, None), (1.0, -1.0)])
def test_clip(lo, hi):
    arr = lambda v: None if v is None else np.array(v, F32)  # noqa: E731
    check("Clip", [rand(4, 7), arr(lo), arr(hi)])


def test_clip_int():
    check("Clip", [rand(4, 7, dtype=np.int32, lo=-9, hi=9), np.array(-3, np.int32), np.array(4, np.int32)])


def test_dropout():
    check("Dropout", [rand(3, 4)], n_out=2)
    check("Dropout", [rand(3, 4), np.array(0.3, F32)], n_out=1)


@pytest.mark.parametrize("src,to", [(F32, np.int32), (F32, np.int64), (F32, np.bool_), (F32, np.float16),
                                    (np.int64, F32), (np.bool_, F32), (np.int32, np.uint8),
                                    (np.float16, F32), (F32, np.float64), (np.int32, np.int8)])
def test_cast(src, to):
    x = rand(5, 7, lo=-20, hi=20).astype(src)
    if np.dtype(src).kind == "f" and np.dtype(to).kind == "iu":
        x = np.trunc(x).astype(src) + np.array(0.25, src)
    if np.dtype(src).kind in "iu" and np.dtype(to).kind == "u":
        x = np.abs(x)
    check("Cast", [x], {"to": helper.np_dtype_to_tensor_dtype(np.dtype(to))})
    check("CastLike", [x, np.zeros(1, to)])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_softmax_family(op, axis):
    x = rand(3, 5, 7, lo=-8, hi=8)
    if op == "Hardmax":
        x = np.round(x)  # ties: the first index wins
    check(op, [x], {"axis": axis})


def test_softmax_default_axis():
    check("Softmax", [rand(2, 3, 6)])


def test_silu_matches_subgraph():
    x = rand(4, 33, lo=-10, hi=10)
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    assert_same(run_kernel("SiLU", [x], {})[0], ort_run(nodes, {"x": x}, ["y"])[0])


# --------------------------------------------------------------------------- binary
SHAPE_PAIRS = [((3, 4, 5), (3, 4, 5)), ((3, 1, 5), (4, 5)), ((), (2, 3)), ((2, 1, 1, 7), (1, 6, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", SHAPE_PAIRS)
def test_arith(op, shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1])
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, F32(0.5), b)
    check(op, [a, b])


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_arith_int(op, dtype):
    signed = np.dtype(dtype).kind == "i"
    a = rand(6, 7, dtype=dtype, lo=-40 if signed else 0, hi=40)
    b = rand(7, dtype=dtype, lo=-7 if signed else 1, hi=8)
    if op == "Div":
        b[b == 0] = 3
    check(op, [a, b])


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(op):
    check(op, [rand(3, 1, 4), rand(5, 1), rand(4)])
    check(op, [rand(2, 3)])


@pytest.mark.parametrize("fmod,dtype", [(0, np.int32), (1, np.int32), (1, F32), (0, np.int64), (1, np.float64)])
def test_mod(fmod, dtype):
    a = rand(5, 8, dtype=dtype, lo=-30, hi=30)
    b = rand(8, dtype=dtype, lo=-6, hi=7)
    b[b == 0] = 4
    check("Mod", [a, b], {"fmod": fmod})


@pytest.mark.parametrize("base,exp", [(F32, F32), (F32, np.int64), (np.int32, np.int32),
                                      (np.int64, np.int64), (np.int32, F32)])
def test_pow(base, exp):
    a = rand(4, 6, lo=0.1, hi=3).astype(base) if np.dtype(base).kind == "f" else rand(4, 6, dtype=base, lo=-4, hi=5)
    b = rand(6, lo=-2, hi=3).astype(exp) if np.dtype(exp).kind == "f" else rand(6, dtype=exp, lo=0, hi=4)
    if np.dtype(exp).kind == "f" and np.dtype(base).kind == "i":
        a = np.abs(a)
    check("Pow", [a, b])


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [F32, np.int64])
def test_compare(op, dtype):
    check(op, [np.round(rand(3, 1, 5, lo=-3, hi=3)).astype(dtype), np.round(rand(4, 5, lo=-3, hi=3)).astype(dtype)])


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    check(op, [rand(3, 4, dtype=np.bool_), rand(4, dtype=np.bool_)])


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
def test_bitwise(op, dtype):
    check(op, [rand(3, 4, dtype=dtype, lo=0, hi=200), rand(4, dtype=dtype, lo=0, hi=200)])


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_bitshift(direction, dtype):
    check("BitShift", [rand(3, 5, dtype=dtype, lo=0, hi=250), rand(5, dtype=dtype, lo=0, hi=8)],
          {"direction": direction})


def test_where():
    check("Where", [rand(3, 1, 5, dtype=np.bool_), rand(4, 5), rand(3, 4, 1)])
    check("Where", [rand(6, dtype=np.bool_), rand(6, dtype=np.int64, lo=0, hi=9), np.array(7, np.int64)])


@pytest.mark.parametrize("slope_shape", [(1,), (4, 1, 1), (6,), ()])
def test_prelu(slope_shape):
    check("PRelu", [rand(2, 4, 5, 6), rand(*slope_shape, lo=0, hi=1)])


# --------------------------------------------------------------------------- conv / matmul
CONV_CASES = [  # x shape, w shape, attrs
    ((1, 3, 9, 11), (4, 3, 3, 3), {}),
    ((2, 4, 10, 7), (6, 2, 3, 2), {"group": 2, "strides": [2, 1], "pads": [1, 0, 2, 1]}),
    ((1, 3, 12, 12), (5, 3, 3, 3), {"dilations": [2, 3], "pads": [2, 3, 2, 3]}),
    ((1, 6, 8, 9), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    ((2, 4, 9, 8), (8, 1, 3, 3), {"group": 4, "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 3, 9, 8), (4, 3, 4, 4), {"strides": [3, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 3, 9, 8), (4, 3, 3, 2), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 8, 5, 6), (4, 8, 1, 1), {}),
    ((2, 6, 5, 4), (9, 2, 1, 1), {"group": 3}),
    ((1, 6, 7, 8), (4, 6, 1, 1), {"strides": [2, 3]}),
    ((2, 3, 17), (5, 3, 4), {"strides": [2], "pads": [3, 1], "dilations": [2]}),
    ((1, 4, 13), (4, 1, 5), {"group": 4, "pads": [2, 2]}),
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 2]}),
    ((1, 6, 7, 7), (6, 1, 3, 3), {"group": 6, "dilations": [2, 2], "strides": [2, 2]}),
]


@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv(xs, ws, attrs, bias):
    b = rand(ws[0]) if bias else None
    check("Conv", [rand(*xs), rand(*ws), b], attrs, rtol=2e-5)


def test_conv_banded(monkeypatch):
    import backends.cpu.kernels_conv as kc
    monkeypatch.setattr(kc, "_COLS_BUDGET", 2000)  # force several bands of output rows
    check("Conv", [rand(1, 3, 15, 9), rand(4, 3, 3, 3), rand(4)], {"pads": [1, 1, 1, 1]})


ACTIVATIONS = [  # fused attrs, the ONNX nodes that compute the same from "y"
    ({"activation": "Relu"}, lambda: [helper.make_node("Relu", ["y"], ["z"])]),
    ({"activation": "Clip", "act_min": 0.0, "act_max": 6.0},
     lambda: [helper.make_node("Clip", ["y", "lo", "hi"], ["z"])]),
    ({"activation": "Sigmoid"}, lambda: [helper.make_node("Sigmoid", ["y"], ["z"])]),
    ({"activation": "SiLU"}, lambda: [helper.make_node("Sigmoid", ["y"], ["s"]),
                                      helper.make_node("Mul", ["y", "s"], ["z"])]),
    ({"activation": "HardSwish"}, lambda: [helper.make_node("HardSwish", ["y"], ["z"])]),
    ({"activation": "LeakyRelu", "act_alpha": 0.1},
     lambda: [helper.make_node("LeakyRelu", ["y"], ["z"], alpha=0.1)]),
    ({"activation": "HardSigmoid", "act_alpha": 0.25, "act_beta": 0.4},
     lambda: [helper.make_node("HardSigmoid", ["y"], ["z"], alpha=0.25, beta=0.4)]),
    ({"activation": "Tanh"}, lambda: [helper.make_node("Tanh", ["y"], ["z"])]),
]
CLIP_FEEDS = {"lo": np.array(0, F32), "hi": np.array(6, F32)}


@pytest.mark.parametrize("act,tail", ACTIVATIONS)
def test_conv_fused_activation(act, tail):
    x, w, b = rand(1, 4, 7, 6), rand(6, 2, 3, 3), rand(6)
    attrs = {"group": 2, "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)] + tail()
    feeds = {"x": x, "w": w, "b": b, **(CLIP_FEEDS if act["activation"] == "Clip" else {})}
    assert_same(run_kernel("Conv", [x, w, b], {**attrs, **act})[0], ort_run(nodes, feeds, ["z"])[0])


@pytest.mark.parametrize("act,tail", ACTIVATIONS[:4])
def test_matmul_bias_fused(act, tail):
    a, b, c = rand(2, 5, 7), rand(7, 3), rand(3)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"])] + tail()
    feeds = {"a": a, "b": b, "c": c, **(CLIP_FEEDS if act["activation"] == "Clip" else {})}
    assert_same(run_kernel("MatMul", [a, b, c], act)[0], ort_run(nodes, feeds, ["z"])[0])


CONVT_CASES = [
    ((1, 3, 5, 4), (3, 2, 3, 3), {}),
    ((2, 4, 5, 6), (4, 3, 3, 2), {"strides": [2, 3], "pads": [1, 0, 0, 1], "group": 2}),
    ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2], "output_padding": [1, 1], "dilations": [1, 2]}),
    ((1, 2, 4, 5), (2, 3, 4, 3), {"strides": [2, 2], "output_shape": [9, 10]}),
    ((1, 3, 4, 4), (3, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 3, 4, 4), (3, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 3, 4, 4), (3, 2, 2, 2), {"strides": [2, 2], "auto_pad": "VALID"}),
    ((2, 3, 7), (3, 2, 4), {"strides": [3], "pads": [2, 1]}),
    ((1, 4, 5, 5), (4, 1, 3, 3), {"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize("xs,ws,attrs", CONVT_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose(xs, ws, attrs, bias):
    b = rand(ws[1] * attrs.get("group", 1)) if bias else None
    check("ConvTranspose", [rand(*xs), rand(*ws), b], attrs, rtol=2e-5)


@pytest.mark.parametrize("sa,sb", [((7,), (7,)), ((3, 7), (7,)), ((7,), (7, 4)), ((3, 7), (7, 4)),
                                   ((2, 3, 7), (7, 5)), ((5,), (2, 5, 3)), ((2, 1, 3, 4), (3, 4, 6)),
                                   ((0, 4), (4, 3))])
def test_matmul(sa, sb):
    check("MatMul", [rand(*sa), rand(*sb)])


def test_matmul_int():
    check("MatMul", [rand(3, 4, dtype=np.int32, lo=-9, hi=9), rand(4, 2, dtype=np.int32, lo=-9, hi=9)])


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape,alpha,beta", [(None, 1.0, 1.0), ((), 0.5, 2.0), ((4,), 1.0, 1.0),
                                                ((3, 1), 1.5, 0.5), ((3, 4), 1.0, 0.0)])
def test_gemm(ta, tb, c_shape, alpha, beta):
    a = rand(5, 3) if ta else rand(3, 5)
    b = rand(4, 5) if tb else rand(5, 4)
    c = None if c_shape is None else rand(*c_shape)
    check("Gemm", [a, b, c], {"transA": ta, "transB": tb, "alpha": alpha, "beta": beta})


# --------------------------------------------------------------------------- pooling
POOL_CASES = [
    ((1, 3, 9, 11), {"kernel_shape": [3, 3]}),
    ((2, 2, 10, 9), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}),
    ((1, 2, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 11, 10), {"kernel_shape": [2, 3], "strides": [3, 2], "pads": [1, 1, 0, 1], "ceil_mode": 1}),
    ((1, 2, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 8, 9), {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 8, 9), {"kernel_shape": [2, 2], "auto_pad": "VALID", "strides": [2, 2]}),
    ((2, 3, 13), {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
    ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [1, 1, 0, 0, 1, 1]}),
    ((1, 2, 12, 11), {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 1]}),
]


@pytest.mark.parametrize("xs,attrs", POOL_CASES)
def test_max_pool(xs, attrs):
    check("MaxPool", [rand(*xs)], attrs)


@pytest.mark.parametrize("xs,attrs", POOL_CASES)
@pytest.mark.parametrize("order", [0, 1])
def test_max_pool_indices(xs, attrs, order):
    x = rand(*xs)
    check("MaxPool", [x], {**attrs, "storage_order": order}, n_out=2)


def test_max_pool_int():
    check("MaxPool", [rand(1, 2, 7, 7, dtype=np.int8, lo=-100, hi=100)],
          {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})


@pytest.mark.parametrize("xs,attrs", POOL_CASES)
@pytest.mark.parametrize("include", [0, 1])
def test_average_pool(xs, attrs, include):
    check("AveragePool", [rand(*xs)], {**attrs, "count_include_pad": include})


@pytest.mark.parametrize("xs,attrs", POOL_CASES[:4] + POOL_CASES[7:8])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(xs, attrs, p):
    check("LpPool", [rand(*xs)], {**attrs, "p": p})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("xs", [(2, 3, 5, 7), (1, 4, 9), (1, 2, 3, 4, 5)])
def test_global_pool(op, xs):
    check(op, [rand(*xs)])


# --------------------------------------------------------------------------- normalization
def test_batch_norm():
    c = 5
    check("BatchNormalization", [rand(2, c, 4, 3), rand(c), rand(c), rand(c), rand(c, lo=0.1, hi=2)],
          {"epsilon": 1e-3})
    check("BatchNormalization", [rand(3, c), rand(c), rand(c), rand(c), rand(c, lo=0.1, hi=2)])


def test_instance_norm():
    check("InstanceNormalization", [rand(2, 3, 5, 7), rand(3), rand(3)], {"epsilon": 1e-4})
    check("InstanceNormalization", [rand(2, 3, 11), rand(3), rand(3)])


@pytest.mark.parametrize("shape,axis", [((2, 5, 7), -1), ((2, 5, 7), 1), ((3, 4), 0), ((2, 3, 4, 5), -2)])
@pytest.mark.parametrize("n_out,bias", [(1, True), (3, True), (1, False)])
def test_layer_norm(shape, axis, n_out, bias):
    a = axis % len(shape)
    inputs = [rand(*shape), rand(*shape[a:]), rand(*shape[a:]) if bias else None]
    check("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-5}, n_out=n_out)


def test_group_norm():
    check("GroupNormalization", [rand(2, 6, 4, 5), rand(6), rand(6)], {"num_groups": 3, "epsilon": 1e-5})


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size):
    check("LRN", [rand(2, 7, 4, 5)], {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 1.5})


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_size(size):
    # onnxruntime refuses an even size and the reference evaluator sums the wrong channels
    # (it loops over the batch axis), so the spec's formula is written out here channel by channel.
    x = rand(2, 7, 4, 5)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    ref = np.empty_like(x)
    for c in range(7):
        sq = (x[:, max(0, c - lo):c + hi + 1] ** 2).sum(axis=1)
        ref[:, c] = x[:, c] / (1.5 + 0.01 / size * sq) ** 0.6
    got = run_kernel("LRN", [x], {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 1.5})[0]
    assert_same(got, ref)


@pytest.mark.parametrize("p,axis", [(1, -1), (2, -1), (2, 1)])
def test_lp_normalization(p, axis):
    check("LpNormalization", [rand(3, 4, 5)], {"p": p, "axis": axis})


def test_mean_variance_normalization():
    check("MeanVarianceNormalization", [rand(2, 3, 4, 5)])
    check("MeanVarianceNormalization", [rand(2, 3, 4, 5)], {"axes": [1, 3]})


# --------------------------------------------------------------------------- resize
CTMS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
RESIZE_TARGETS = [  # (scales, sizes) on a (2, 3, 5, 7) input
    (np.array([1, 1, 2.0, 1.5], F32), None),
    (np.array([1, 1, 0.6, 0.45], F32), None),
    (np.array([1, 1, 3.0, 0.5], F32), None),
    (None, np.array([2, 3, 8, 4], np.int64)),
    (None, np.array([2, 3, 1, 13], np.int64)),
]


def _resize_inputs(x, scales, sizes):
    return [x, None, scales, sizes]


@pytest.mark.parametrize("ctm", CTMS + ["tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("target", RESIZE_TARGETS)
def test_resize_nearest(ctm, nearest_mode, target):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nearest_mode}
    check("Resize", _resize_inputs(rand(2, 3, 5, 7), *target), attrs)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("target", RESIZE_TARGETS)
def test_resize_linear(ctm, target):
    attrs = {"mode": "linear", "coordinate_transformation_mode": ctm}
    check("Resize", _resize_inputs(rand(2, 3, 5, 7), *target), attrs)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("target", RESIZE_TARGETS)
@pytest.mark.parametrize("exclude,a", [(0, -0.75), (1, -0.5)])
def test_resize_cubic(ctm, target, exclude, a):
    attrs = {"mode": "cubic", "coordinate_transformation_mode": ctm, "exclude_outside": exclude,
             "cubic_coeff_a": a}
    check("Resize", _resize_inputs(rand(2, 3, 5, 7), *target), attrs)


@pytest.mark.parametrize("n_in,n_out", [(7, 4), (20, 6), (7, 38), (15, 18), (13, 2), (11, 26)])
@pytest.mark.parametrize("ctm", ["asymmetric", "half_pixel", "half_pixel_symmetric"])
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
def test_resize_nearest_ties(n_in, n_out, ctm, nearest_mode):
    # Coordinates that are exact halves (or integers) in real numbers but not in float32.
    attrs = {"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nearest_mode}
    x = rand(1, 2, 3, n_in)
    check("Resize", [x, None, None, np.array([1, 2, 3, n_out], np.int64)], attrs)
    check("Resize", [x, None, np.array([1, 1, 1, F32(n_out) / F32(n_in)], F32)], attrs)


def test_resize_scales_output_size():
    # 20 * 0.45f is 8.99999976 in float64 and 9 in float32: the output has 9 columns.
    check("Resize", [rand(1, 1, 2, 20), None, np.array([1, 1, 1, 0.45], F32)], {"mode": "nearest"})
    # A shape left unchanged by scales != 1 is a copy.
    check("Resize", [rand(1, 1, 3, 3), None, np.array([1, 1, 1.25, 1.25], F32)], {"mode": "linear"})


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("target", RESIZE_TARGETS[1:4])
def test_resize_antialias(mode, exclude, target):
    attrs = {"mode": mode, "antialias": 1, "exclude_outside": exclude}
    check("Resize", _resize_inputs(rand(2, 3, 9, 11), *target), attrs)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize(mode):
    roi = np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3], F32)
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize",
             "extrapolation_value": -7.0}
    check("Resize", [rand(1, 2, 6, 7), roi, None, np.array([1, 2, 5, 9], np.int64)], attrs)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_axes_and_policy(mode, policy):
    # onnxruntime drops a negative axis under not_larger/not_smaller (it resizes only axis 2):
    # negative axes are checked with "stretch" only.
    attrs = {"mode": mode, "axes": [-1, 2] if policy == "stretch" else [3, 2], "keep_aspect_ratio_policy": policy}
    check("Resize", [rand(1, 2, 6, 7), None, None, np.array([10, 9], np.int64)], attrs)
    if policy == "stretch":
        check("Resize", [rand(1, 2, 6, 7), None, np.array([1.5, 2.0], F32), None], {"mode": mode, "axes": [3, 2]})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_other_ranks(mode):
    check("Resize", [rand(3, 7), None, np.array([2.0, 0.7], F32), None], {"mode": mode})
    check("Resize", [rand(1, 2, 3, 4, 5), None, np.array([1, 1, 2.0, 1.5, 0.6], F32), None], {"mode": mode})


def test_resize_uint8():
    check("Resize", [rand(1, 3, 4, 5, dtype=np.uint8, lo=0, hi=255), None, np.array([1, 1, 2.5, 1.7], F32), None],
          {"mode": "nearest"})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(mode):
    x, scales = rand(1, 2, 4, 5), np.array([1, 1, 2.0, 3.0], F32)
    check("Upsample", [x, scales], {"mode": mode}, opset=9)


# --------------------------------------------------------------------------- layout
I64 = np.int64


def ints_(*v):
    return np.array(v, I64)


@pytest.mark.parametrize("shape,allowzero", [((4, 0, -1), 0), ((-1,), 0), ((2, 3, 4, 5), 0),
                                             ((0, 10, 6), 0), ((4, 30), 1)])
def test_reshape(shape, allowzero):
    x = rand(2, 0, 6) if shape == (0, 10, 6) else rand(4, 3, 5, 2)
    if shape == (0, 10, 6):
        shape = (2, 0, 6)
    check("Reshape", [x, ints_(*shape)], {"allowzero": allowzero})


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3, 3])
def test_flatten(axis):
    check("Flatten", [rand(2, 3, 4)], {"axis": axis})


def test_squeeze_unsqueeze():
    x = rand(1, 3, 1, 5, 1)
    check("Squeeze", [x])
    check("Squeeze", [x, ints_(0, -1)])
    check("Unsqueeze", [rand(3, 5), ints_(0, -1, 2)])
    check("Unsqueeze", [np.array(2.0, F32), ints_(0)])


@pytest.mark.parametrize("perm", [None, [0, 2, 1, 3], [3, 1, 0, 2]])
def test_transpose(perm):
    check("Transpose", [rand(2, 3, 4, 5)], {} if perm is None else {"perm": perm})


BIG = 2 ** 62
SLICES = [
    ([0, 1], [3, -1], None, None),
    ([-1], [-BIG], [1], [-1]),
    ([5, 10], [-7, BIG], [2, 0], [-2, 3]),
    ([1, 0, 2], [100, -100, 4], [-1, 1, 0], [2, -1, 1]),
    ([-2], [-1], [-3], None),
    ([7], [2], [1], [1]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
def test_slice(starts, ends, axes, steps):
    check("Slice", [rand(6, 5, 7), ints_(*starts), ints_(*ends),
                    None if axes is None else ints_(*axes), None if steps is None else ints_(*steps)])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for k, s in enumerate(shapes):
        s[axis] = k + 1
    check("Concat", [rand(*s) for s in shapes], {"axis": axis})
    check("Concat", [rand(*shapes[0])], {"axis": axis})


@pytest.mark.parametrize("split,n,attrs", [(ints_(2, 3, 2), 3, {"axis": 1}), (None, 3, {"axis": -1, "num_outputs": 3}),
                                           (None, 2, {"axis": 0, "num_outputs": 2}),
                                           (ints_(7), 1, {"axis": 1})])
def test_split(split, n, attrs):
    check("Split", [rand(4, 7, 8), split], attrs, n_out=n)


PADS = [ints_(1, 0, 2, 2, 1, 0), ints_(0, 3, 1, 1, 0, 2), ints_(2, 1, 0, 0, 2, 3)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", PADS)
def test_pad(mode, pads):
    x = rand(3, 4, 5)
    value = np.array(1.5, F32) if mode == "constant" else None
    check("Pad", [x, pads, value], {"mode": mode})


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_axes_and_negative(mode):
    check("Pad", [rand(3, 4, 5), ints_(1, 2, 0, 1), None, ints_(-1, 0)], {"mode": mode})
    check("Pad", [rand(3, 4, 5), ints_(-1, 0, 2, 1, 0, -2)], {"mode": mode})
    check("Pad", [rand(3, 4, dtype=np.int32, lo=-9, hi=9), ints_(1, 1, 1, 1), np.array(7, np.int32)], {"mode": mode})


def test_tile_expand():
    check("Tile", [rand(2, 3, 1), ints_(2, 1, 3)])
    check("Expand", [rand(3, 1), ints_(2, 1, 4)])
    check("Expand", [rand(2, 3, 1), ints_(3, 5)])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space(mode):
    check("DepthToSpace", [rand(2, 12, 3, 4)], {"blocksize": 2, "mode": mode})
    check("SpaceToDepth", [rand(2, 3, 6, 9)], {"blocksize": 3})


# --------------------------------------------------------------------------- indexing
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(axis):
    x = rand(4, 5, 6)
    n = x.shape[axis]
    check("Gather", [x, RNG.integers(-n, n, size=(2, 3)).astype(I64)], {"axis": axis})
    check("Gather", [x, np.array(-1, np.int32)], {"axis": axis})


def test_gather_out_of_range_is_input_error():
    from engine.errors import InputError
    with pytest.raises(InputError, match="out of range"):
        run_kernel("Gather", [rand(3, 4), ints_(0, 3)], {})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    x = rand(4, 5, 6)
    shape = [3, 4, 5]
    n = x.shape[axis]
    check("GatherElements", [x, RNG.integers(-n, n, size=shape).astype(I64)], {"axis": axis})


@pytest.mark.parametrize("xs,ish,bd", [((4, 5, 6), (3, 2), 0), ((4, 5, 6), (2, 3, 3), 0), ((4, 5, 6), (7, 1), 0),
                                       ((3, 5, 6), (3, 2, 1), 1), ((2, 3, 5, 6), (2, 3, 4, 1), 2)])
def test_gather_nd(xs, ish, bd):
    x = rand(*xs)
    k = ish[-1]
    idx = np.stack([RNG.integers(-xs[bd + j], xs[bd + j], size=ish[:-1]) for j in range(k)], -1).astype(I64)
    check("GatherND", [x, idx], {"batch_dims": bd})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    x = rand(4, 6)
    n = x.shape[axis]
    # "none" needs unique targets per column/row to be well defined
    if reduction == "none":
        idx = np.argsort(RNG.random((n, 3 if axis == 0 else 4)), axis=0)[:3] if axis == 0 else \
            np.argsort(RNG.random((4, n)), axis=1)[:, :3]
        idx = idx.astype(I64) - (n if axis else 0)
    else:
        idx = RNG.integers(-n, n, size=(3, 4) if axis == 0 else (4, 3)).astype(I64)
    check("ScatterElements", [x, idx, rand(*idx.shape)], {"axis": axis, "reduction": reduction})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction):
    x = rand(4, 5, 6)
    if reduction == "none":
        flat = RNG.permutation(20)[:6]
        idx = np.stack([flat // 5, flat % 5], -1).reshape(2, 3, 2).astype(I64)
    else:
        idx = np.stack([RNG.integers(0, 4, 6), RNG.integers(-5, 5, 6)], -1).reshape(2, 3, 2).astype(I64)
    check("ScatterND", [x, idx, rand(2, 3, 6)], {"reduction": reduction})
    check("ScatterND", [x, ints_(2, 0, 1).reshape(3, 1), rand(3, 5, 6)], {"reduction": reduction})


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis):
    idx = RNG.integers(-6, 9, size=(3, 4)).astype(I64)
    check("OneHot", [idx, np.array(6, I64), np.array([-1, 5], F32)], {"axis": axis})


def test_compress_nonzero():
    cond = np.array([1, 0, 1, 1], np.bool_)
    check("Compress", [rand(3, 4), cond], {"axis": 1})
    check("Compress", [rand(3, 4), cond[:3]], {"axis": -2})
    check("Compress", [rand(3, 4), np.tile(cond, 3)])
    check("NonZero", [np.round(rand(3, 4, 5, lo=-1, hi=1))])
    check("NonZero", [rand(7, dtype=np.int32, lo=0, hi=2)])


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -5])
def test_trilu(upper, k):
    check("Trilu", [rand(2, 4, 6), None if k is None else np.array(k, I64)], {"upper": upper})


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = (5, 4, 3) if batch_axis == 1 else (4, 5, 3)
    check("ReverseSequence", [rand(*shape), ints_(5, 1, 3, 0 + 2)],
          {"batch_axis": batch_axis, "time_axis": time_axis})


# --------------------------------------------------------------------------- misc
def test_shape_size():
    x = rand(2, 3, 4, 5)
    for attrs in ({}, {"start": 1}, {"end": -1}, {"start": -3, "end": 3}, {"start": 10}, {"start": -10, "end": 2}):
        check("Shape", [x], attrs)
    check("Size", [x])


def test_constant_of_shape():
    check("ConstantOfShape", [ints_(2, 3)])
    check("ConstantOfShape", [ints_(4, 1, 2)], {"value": np.array([7], np.int32)})
    check("ConstantOfShape", [ints_(0, 3)], {"value": np.array([1.5], F32)})


@pytest.mark.parametrize("start,limit,delta,dtype", [(0, 10, 3, I64), (10, -4, -3, np.int32), (1.5, 7.2, 0.7, F32),
                                                     (3.0, 1.0, 1.0, F32), (-2.0, 2.0, 0.4, np.float64)])
def test_range(start, limit, delta, dtype):
    check("Range", [np.array(v, dtype) for v in (start, limit, delta)])


def test_eye_like():
    check("EyeLike", [rand(4, 6)])
    check("EyeLike", [rand(5, 3)], {"k": -2, "dtype": onnx.TensorProto.INT32})
    check("EyeLike", [rand(3, 5)], {"k": 2})


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(exclusive, reverse, axis):
    check("CumSum", [rand(4, 5), np.array(axis, I64)], {"exclusive": exclusive, "reverse": reverse})
    check("CumSum", [rand(4, 5, dtype=np.int32, lo=-9, hi=9), np.array(axis, np.int32)],
          {"exclusive": exclusive, "reverse": reverse})


@pytest.mark.parametrize("attrs", [{}, {"sorted": 0}, {"axis": 0}, {"axis": 1, "sorted": 1}])
def test_unique(attrs):
    x = rand(6, 3, dtype=np.int64, lo=0, hi=3)
    x[3] = x[1]
    check("Unique", [x], attrs, n_out=4)


# --------------------------------------------------------------------------- reductions
REDUCES = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op", REDUCES)
@pytest.mark.parametrize("axes,keep", [(None, 1), (None, 0), ([1], 1), ([0, -1], 0), ([-2], 0)])
def test_reduce(op, axes, keep):
    x = rand(3, 4, 5, lo=0.2, hi=1.5) if op in ("ReduceLogSum", "ReduceProd") else rand(3, 4, 5)
    check(op, [x, None if axes is None else ints_(*axes)], {"keepdims": keep})


@pytest.mark.parametrize("op", REDUCES)
def test_reduce_noop_empty_axes(op):
    check(op, [rand(3, 4, lo=0.2, hi=2), ints_()], {"noop_with_empty_axes": 1})
    check(op, [rand(3, 4, lo=0.2, hi=2), ints_()], {"noop_with_empty_axes": 0})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean"])
def test_reduce_int(op):
    check(op, [rand(3, 4, 5, dtype=np.int32, lo=-5, hi=6), ints_(1)], {"keepdims": 0})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [{}, {"axis": -1, "keepdims": 0}, {"axis": 1, "select_last_index": 1},
                                   {"axis": 2, "keepdims": 0, "select_last_index": 1}])
def test_argmax(op, attrs):
    check(op, [np.round(rand(3, 4, 5, lo=-2, hi=2))], attrs)  # small ints: many ties


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis,k", [(-1, 3), (0, 2), (1, 4), (-1, 0)])
def test_topk(largest, axis, k):
    x = np.round(rand(4, 6, 7, lo=-3, hi=3))  # ties: the lower index must come first
    check("TopK", [x, ints_(k)], {"largest": largest, "axis": axis, "sorted": 1}, n_out=2)
    check("TopK", [x.astype(np.int64), ints_(k)], {"largest": largest, "axis": axis}, n_out=2)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
    ("ij->ji", [(3, 4)]), ("i,i", [(5,), (5,)]), ("...ij,...jk", [(2, 3, 4), (2, 4, 2)]),
    ("bhid, bhjd -> bhij", [(1, 2, 3, 4), (1, 2, 5, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("abc->", [(2, 3, 4)]),
])
def test_einsum(eq, shapes):
    check("Einsum", [rand(*s) for s in shapes], {"equation": eq})


# --------------------------------------------------------------------------- detection
@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("max_out,iou,score", [(3, 0.5, None), (10, 0.3, 0.2), (0, 0.5, None), (2, 0.0, 0.5),
                                               (None, None, None)])
def test_nms(center, max_out, iou, score):
    b, c, n = 2, 3, 12
    xy = RNG.uniform(0, 10, size=(b, n, 2))
    wh = RNG.uniform(1, 5, size=(b, n, 2))
    boxes = np.concatenate([xy, wh], -1) if center else np.concatenate([xy[..., ::-1], (xy + wh)[..., ::-1]], -1)
    if not center:
        boxes[0, :3] = boxes[0, :3, [2, 3, 0, 1]].T  # flipped corners are allowed
    scores = RNG.random((b, c, n)).astype(F32)
    scores[0, 0, 4] = scores[0, 0, 5]  # a tie
    opt = lambda v, dt: None if v is None else np.array([v], dt)  # noqa: E731
    check("NonMaxSuppression", [boxes.astype(F32), scores, opt(max_out, I64), opt(iou, F32), opt(score, F32)],
          {"center_point_box": center})


# --------------------------------------------------------------------------- float16 and errors
F16_CASES = [
    ("Relu", lambda: [rand(3, 8)], {}), ("Sigmoid", lambda: [rand(3, 8)], {}),
    ("Erf", lambda: [rand(3, 8)], {}), ("Gelu", lambda: [rand(3, 8)], {}),
    ("Softmax", lambda: [rand(3, 8)], {"axis": 1}), ("Add", lambda: [rand(3, 8), rand(8)], {}),
    ("LayerNormalization", lambda: [rand(3, 8), rand(8), rand(8)], {}),
    ("Conv", lambda: [rand(1, 3, 6, 6), rand(4, 3, 3, 3), rand(4)], {"pads": [1, 1, 1, 1]}),
    ("MatMul", lambda: [rand(3, 8), rand(8, 5)], {}),
    ("Resize", lambda: [rand(1, 2, 3, 4), None, np.array([1, 1, 2, 1.5], F32)], {"mode": "linear"}),
    ("MaxPool", lambda: [rand(1, 2, 5, 5)], {"kernel_shape": [3, 3]}),
    ("AveragePool", lambda: [rand(1, 2, 5, 5)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("ReduceMean", lambda: [rand(3, 8), ints_(1)], {}),
    ("GlobalAveragePool", lambda: [rand(1, 3, 5, 5)], {}),
]


@pytest.mark.parametrize("op,make,attrs", F16_CASES)
def test_float16_stays_float16(op, make, attrs):
    """Half inputs give half outputs, close to the float32 result of onnxruntime."""
    # float tensors become half; Resize's scales and integer inputs stay as they are
    inputs = [v.astype(np.float16) if v is not None and v.dtype == F32 and not (op == "Resize" and k == 2)
              else v for k, v in enumerate(make())]
    got = run_kernel(op, inputs, attrs)[0]
    assert got.dtype == np.float16
    names = ["" if v is None else f"i{k}" for k, v in enumerate(inputs)]
    wide = {n: v.astype(F32) if v.dtype == np.float16 else v for n, v in zip(names, inputs) if n}
    ref = ort_run([helper.make_node(op, names, ["o"], **attrs)], wide, ["o"])[0]
    np.testing.assert_allclose(got.astype(F32), ref, rtol=1e-2, atol=1e-2 * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("op,inputs,attrs,error", [
    ("Reshape", lambda: [rand(2, 3), ints_(4, -1)], {}, "ShapeError"),
    ("Gather", lambda: [rand(2, 3), ints_(-3)], {}, "InputError"),
    ("GatherElements", lambda: [rand(2, 3), ints_(0, 3).reshape(1, 2)], {"axis": 1}, "InputError"),
    ("Squeeze", lambda: [rand(2, 3), ints_(0)], {}, "ShapeError"),
    ("Expand", lambda: [rand(2, 3), ints_(4, 3)], {}, "ShapeError"),
    ("TopK", lambda: [rand(2, 3), ints_(4)], {}, "InputError"),
    ("Concat", lambda: [rand(2, 3), rand(2, 3)], {"axis": 2}, "ShapeError"),
    ("Conv", lambda: [rand(1, 4, 5, 5), rand(2, 3, 3, 3)], {}, "ShapeError"),
    ("Conv", lambda: [rand(1, 3, 2, 2), rand(2, 3, 3, 3)], {}, "ShapeError"),
])
def test_errors_name_the_node(op, inputs, attrs, error):
    import engine.errors
    with pytest.raises(getattr(engine.errors, error), match=f"test_{op}"):
        run_kernel(op, inputs(), attrs)


# --------------------------------------------------------------------------- quantization
U8, I8 = np.uint8, np.int8


@pytest.mark.parametrize("dtype", [U8, I8, np.int16, np.uint16])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_dequantize(dtype, per_axis):
    x = rand(2, 3, 4, 5, lo=-30, hi=30)
    x[0, 0, 0, :3] = [0.5, 1.5, -2.5]  # halves round to even
    scale = rand(3, lo=0.1, hi=0.5) if per_axis else np.array(0.25, F32)
    zero = rand(3, dtype=dtype, lo=0, hi=5) if per_axis else np.array(3, dtype)
    check("QuantizeLinear", [x, scale, zero], {"axis": 1})
    q = rand(2, 3, 4, 5, dtype=dtype, lo=0, hi=100)
    check("DequantizeLinear", [q, scale, zero], {"axis": 1})


def test_quantize_blocked_and_defaults():
    x = rand(4, 6, lo=-10, hi=10)
    scale = rand(4, 2, lo=0.05, hi=0.3)
    check("QuantizeLinear", [x, scale, np.zeros((4, 2), I8)], {"axis": 1, "block_size": 3})
    check("DequantizeLinear", [rand(4, 6, dtype=I8, lo=-50, hi=50), scale], {"axis": 1, "block_size": 3})
    check("QuantizeLinear", [x, np.array(0.1, F32)])  # no zero point: uint8
    check("DequantizeLinear", [rand(7, dtype=np.int32, lo=-900, hi=900), np.array(0.01, F32)])


def test_dynamic_quantize_linear():
    check("DynamicQuantizeLinear", [rand(5, 7, lo=-3, hi=6)], n_out=3)
    check("DynamicQuantizeLinear", [rand(5, 7, lo=0.5, hi=6)], n_out=3)


def test_integer_matmul_and_conv():
    a, b = rand(3, 5, 8, dtype=U8, lo=0, hi=255), rand(8, 6, dtype=U8, lo=0, hi=255)
    check("MatMulInteger", [a, b, np.array(12, U8), np.array(130, U8)])
    # onnxruntime refuses a per-row zero point of A, which the spec allows: B's per column only
    check("MatMulInteger", [a[0], b, np.array(9, U8), rand(6, dtype=U8, lo=0, hi=200)])
    x, w = rand(1, 4, 7, 6, dtype=U8, lo=0, hi=255), rand(6, 2, 3, 3, dtype=U8, lo=0, hi=255)
    check("ConvInteger", [x, w, np.array(7, U8), np.array(128, U8)], {"group": 2, "pads": [1, 1, 1, 1]})


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_matmul_conv(per_channel):
    a, b = rand(3, 8, dtype=U8, lo=0, hi=255), rand(8, 6, dtype=I8, lo=-127, hi=127)
    bs = rand(6, lo=0.01, hi=0.05) if per_channel else np.array(0.02, F32)
    bz = np.zeros(6 if per_channel else (), I8)
    check("QLinearMatMul", [a, np.array(0.05, F32), np.array(120, U8), b, bs, bz,
                            np.array(0.7, F32), np.array(100, U8)])
    x, w = rand(1, 4, 7, 6, dtype=U8, lo=0, hi=255), rand(6, 4, 3, 3, dtype=I8, lo=-127, hi=127)
    ws = rand(6, lo=0.005, hi=0.02) if per_channel else np.array(0.01, F32)
    check("QLinearConv", [x, np.array(0.03, F32), np.array(128, U8), w, ws, np.zeros(ws.shape, I8),
                          np.array(0.4, F32), np.array(90, U8), rand(6, dtype=np.int32, lo=-500, hi=500)],
          {"pads": [1, 1, 1, 1], "strides": [2, 1]})
