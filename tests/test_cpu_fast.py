"""The fast CPU executors (conv.py, winograd.py, depthwise.py, gemm.py) against onnxruntime,
run the way a plan runs them: created for the shapes, bound to an output and to a scratch that
starts full of NaN (the arena hands scratch over dirty), run twice. Plus a `mixnn bench` smoke
test. Speed itself is measured by `mixnn bench`, never here."""
import json
import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import backends.cpu
from backends.cpu import conv, depthwise, gemm, jit, parallel, winograd  # noqa: F401  (registers the executors)
from engine.ir import Node
from engine.ops import TensorInfo
from engine.ops.nn import _conv
from conftest import need_numba
from oracle import assert_close, ort_run

F32 = np.float32


def onnx_model(nodes, inputs, output, inits):
    g = helper.make_graph(nodes, "fast", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                                          for k, v in inputs.items()],
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m


# Each fused activation as the ONNX nodes that compute it from "c" into "y", and its IR attrs.
ACTS = {
    "Relu": ([("Relu", ["c"], {})], {}),
    "Clip": ([("Clip", ["c", "lo", "hi"], {})], {"act_min": -0.5, "act_max": 6.0}),
    "Sigmoid": ([("Sigmoid", ["c"], {})], {}),
    "SiLU": ([("Sigmoid", ["c"], {}), ("Mul", ["c", "s"], {})], {}),
    "HardSwish": ([("HardSwish", ["c"], {})], {}),
    "LeakyRelu": ([("LeakyRelu", ["c"], {"alpha": 0.1})], {"act_alpha": 0.1}),
    "HardSigmoid": ([("HardSigmoid", ["c"], {"alpha": 0.3, "beta": 0.4})], {"act_alpha": 0.3, "act_beta": 0.4}),
    "Tanh": ([("Tanh", ["c"], {})], {}),
}


def activation_nodes(act, out="y"):
    """ONNX nodes applying `act` to value "c", writing `out`; and the IR attrs that fuse it."""
    if not act:
        return [helper.make_node("Identity", ["c"], [out])], {}, {}
    steps, attrs = ACTS[act]
    nodes = []
    for k, (op, ins, kw) in enumerate(steps):
        nodes.append(helper.make_node(op, ins, [out if k == len(steps) - 1 else "s"], **kw))
    inits = {"lo": np.array(-0.5, F32), "hi": np.array(6.0, F32)} if act == "Clip" else {}
    return nodes, dict(attrs, activation=act), inits


@pytest.fixture
def numpy_depthwise(monkeypatch):
    monkeypatch.setattr(jit, "available", lambda: False)


def run_executor(node, arrays, infos, out_shape):
    """Create the CPU executor for `node` as the plan would, run it twice on dirty memory."""
    backend = backends.cpu.CpuBackend()
    outs = [TensorInfo(out_shape, np.dtype(F32))]
    assert backend.supports(node, infos, outs) is None
    exe = backend.create(node, infos, outs)
    scratch = np.full(exe.scratch_bytes(), 0xFF, np.uint8)  # NaN floats: nothing may rely on zeros
    y = np.full(out_shape, np.nan, F32)
    exe.bind(arrays, [y], scratch)
    exe.run()
    first = y.copy()
    exe.run()
    np.testing.assert_array_equal(first, y)  # the second run reuses the dirty scratch
    return exe, y


def check_conv(x_shape, w_shape, attrs, expect, act=None, bias=True, scale=1e-4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(F32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(F32)
    b = rng.standard_normal(w_shape[0]).astype(F32) if bias else None
    inits = {"w": w, **({"b": b} if bias else {})}
    act_nodes, act_attrs, act_inits = activation_nodes(act)
    conv_node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["c"], **attrs)
    ref = ort_run(onnx_model([conv_node] + act_nodes, {"x": x}, "y", {**inits, **act_inits}), {"x": x})[0]

    node = Node("Conv", ["x", "w", "b" if bias else ""], ["y"], "conv", {**attrs, **act_attrs})
    infos = [TensorInfo(x.shape, x.dtype), TensorInfo(w.shape, w.dtype, w),
             TensorInfo(b.shape, b.dtype, b) if bias else None]
    out_shape = _conv(node, infos)[0].shape
    exe, y = run_executor(node, [x, w, b], infos, out_shape)
    if expect == "DepthwiseConv":  # the compiled or the numpy executor, whichever is on
        expect = depthwise.DepthwiseConv.__name__
    assert type(exe).__name__ == expect, f"{attrs}: picked {type(exe).__name__}, expected {expect}"
    assert_close(y, ref, scale, what=f"{expect} {x_shape} {w_shape} {attrs} {act}")
    return exe


def random_shape(rng, c_max=24, hw_max=20):
    return int(rng.integers(1, 3)), int(rng.integers(1, c_max)), int(rng.integers(3, hw_max)), \
        int(rng.integers(3, hw_max))


# -- strategy by geometry ------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_pointwise(seed, im2col_gemm):
    rng = np.random.default_rng(seed)
    n, c, h, w = random_shape(rng)
    check_conv((n, c, h, w), (int(rng.integers(1, 40)), c, 1, 1), {}, "PointwiseConv", seed=seed)


@pytest.mark.parametrize("attrs, w_shape", [
    ({"strides": [2, 2]}, (16, 8, 1, 1)),                                  # strided 1x1
    ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, (16, 8, 3, 3)),            # strided 3x3
    ({"dilations": [2, 3], "pads": [2, 3, 2, 3]}, (12, 8, 3, 3)),          # dilated
    ({"pads": [0, 1, 2, 0]}, (12, 8, 3, 2)),                               # asymmetric pads, 3x2
    ({"group": 2, "pads": [1, 1, 1, 1]}, (12, 4, 3, 3)),                   # grouped
    ({"group": 4, "strides": [1, 2]}, (8, 2, 1, 3)),                       # grouped, 1x3
    ({"strides": [2, 2], "pads": [3, 3, 3, 3]}, (8, 8, 7, 7)),             # stem-like 7x7
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (8, 8, 4, 4)),         # auto pad
])
def test_im2col(attrs, w_shape, im2col_gemm):
    check_conv((2, 8, 13, 11), w_shape, attrs, "Im2colConv")


def test_im2col_bands(monkeypatch, im2col_gemm):
    """Columns larger than the budget are built and multiplied a band of output rows at a time."""
    monkeypatch.setattr(conv, "COLS_BUDGET", 4096)
    exe = check_conv((1, 8, 17, 9), (6, 8, 3, 3), {"strides": [2, 1], "pads": [1, 1, 1, 1]}, "Im2colConv")
    assert exe.band < exe.g.oh


@pytest.mark.parametrize("attrs, mult, k", [
    ({"pads": [1, 1, 1, 1]}, 1, 3),
    ({"pads": [1, 1, 1, 1], "strides": [2, 2]}, 1, 3),
    ({"pads": [0, 1, 1, 0], "strides": [2, 2]}, 2, 3),                    # multiplier 2, asymmetric
    ({"pads": [2, 2, 2, 2], "dilations": [2, 1], "strides": [1, 2]}, 1, 5),
    ({"pads": [2, 2, 2, 2]}, 3, 5),
    ({}, 1, 3),
])
def test_depthwise(attrs, mult, k, jit_on):
    c = 6
    check_conv((2, c, 15, 13), (c * mult, 1, k, k), {**attrs, "group": c}, "DepthwiseConv")


@pytest.mark.parametrize("x_shape, attrs", [
    ((1, 6, 2, 19), {"pads": [2, 2, 2, 2]}),
    ((2, 6, 3, 17), {"pads": [2, 1, 2, 3], "strides": [2, 1]}),
])
def test_depthwise_short_images(x_shape, attrs, jit_on):
    """A 5x5 kernel over 2-3 rows: only the output rows are computed (PP-OCR's feature maps)."""
    exe = check_conv(x_shape, (6, 1, 5, 5), {**attrs, "group": 6}, "DepthwiseConv", act="HardSwish")
    if not jit_on:
        assert exe.out_rows == exe.g.oh < exe.hq


@pytest.mark.parametrize("act", ["Relu", "Clip", "SiLU", "HardSwish", "LeakyRelu", "HardSigmoid"])
def test_compiled_depthwise_two_threads(two_threads, monkeypatch, act):
    """Channel halves on two threads give the same result, with every fused activation."""
    monkeypatch.setattr(depthwise, "JIT_SPLIT_MIN", 0)
    exe = check_conv((2, 7, 15, 13), (14, 1, 3, 3), {"group": 7, "pads": [1, 1, 1, 1], "strides": [2, 1]},
                     "CompiledDepthwise", act=act)
    assert len(exe.ranges) == 2 * depthwise.JIT_PARTS_PER_THREAD and len(exe.jobs) == 2


@pytest.mark.parametrize("by_blocks", [0, 1])
def test_compiled_depthwise_propagates_nan(by_blocks):
    """NaN in, NaN out at the same places, through the clamp of a fused ReLU6, on the flat path
    and by channel blocks."""
    need_numba()
    from backends.cpu.jit_depthwise import depthwise as kernel
    x = np.ones((2, 5, 5), F32)
    x[1, 2, 2] = np.nan
    y = np.zeros((2, 5, 5), F32)
    kernel(x, np.ones((2, 9), F32), np.zeros(2, F32), y, 0, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0.0, 6.0, 0.0, 0.0, by_blocks)
    assert np.isnan(y[1, 1:4, 1:4]).all() and not np.isnan(y[0]).any() and np.isnan(y).sum() == 9


def test_depthwise_two_threads(two_threads, monkeypatch, numpy_depthwise):
    """Halves of the channels on two threads, each with its own tap buffer, give the same result."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    exe = check_conv((2, 7, 15, 13), (14, 1, 3, 3), {"group": 7, "pads": [1, 1, 1, 1], "strides": [2, 1]},
                     "DepthwiseConv", act="SiLU")
    assert len(exe.work) == 2


def test_parallel_split_reraises():
    def boom(k):
        if k == 0:
            raise ValueError("helper failed")
    with pytest.raises(ValueError, match="helper failed"):
        parallel.split(boom, [(0,), (1,)])
    seen = []
    parallel.split(seen.append, [(1,), (2,)])
    assert sorted(seen) == [1, 2]


def test_depthwise_channel_blocks(monkeypatch, numpy_depthwise):
    """Tap copies made for a few channels at a time give the same result."""
    monkeypatch.setattr(depthwise, "TAPS_BUDGET", 4096)
    exe = check_conv((1, 10, 12, 12), (10, 1, 3, 3), {"group": 10, "pads": [1, 1, 1, 1]}, "DepthwiseConv")
    assert exe.block < 10


# Winograd F(m, 3) adds rounding error that grows with the tile: its transforms have entries up
# to 4 (m = 4) and 5.25 (m = 6), and each output sums (m+2)^2 transformed products instead of 9
# direct ones (Lavin & Gray 2016; Barabasz et al. 2020 measure ~1e-6 relative error growing
# about tenfold per step of m). Measured here: max error / max|ref| = 5e-7, 8e-6, 1.5e-5 for
# m = 2, 4, 6 at C = K = 256. The inputs below (C <= 48) stay within 1e-4 * max|ref| (the
# DESIGN default) for m <= 4 with a 10x margin; F(6,3) gets 3e-4: its error is twice F(4,3)'s,
# and random channels counts push it within 2x of the default bound.
WINOGRAD_SCALE = {2: 1e-4, 4: 1e-4, 6: 3e-4}


@pytest.mark.parametrize("unit", winograd.UNITS)
@pytest.mark.parametrize("seed", range(3))
def test_winograd(unit, seed, monkeypatch):
    monkeypatch.setattr(winograd, "best_unit", lambda g: unit if winograd.applies(g) else 1)
    rng = np.random.default_rng(seed)
    n, c, h, w = random_shape(rng, c_max=48, hw_max=30)
    pads = [int(p) for p in rng.integers(0, 2, 4)]
    exe = check_conv((n, c, h, w), (int(rng.integers(1, 40)), c, 3, 3), {"pads": pads}, "WinogradConv",
                     act="Relu", scale=WINOGRAD_SCALE[unit], seed=seed)
    assert exe.unit == unit


@pytest.mark.parametrize("panels", [0.5, 0.75, 1, 3])
def test_winograd_gemm_path_by_output_channels(panels, monkeypatch):
    """The compiled path's a*a GEMMs run jit_gemm's kernel over U packed once where the output
    channels fill its MR-row panels (winograd.PACKED_FILL), OpenBLAS otherwise; both match
    onnxruntime."""
    from backends.cpu import jit, jit_gemm
    if not jit.available():
        pytest.skip("numba is not installed: no compiled Winograd path (the numpy one is tested above)")
    m_out = int(panels * jit_gemm.MR)
    packed = panels >= 1
    assert winograd.packs_well(m_out) == packed
    monkeypatch.setattr(winograd, "best_unit", lambda g: 4 if winograd.applies(g) else 1)
    monkeypatch.setattr(winograd, "compiled_pays", lambda g, m: True)
    exe = check_conv((1, 24, 17, 15), (m_out, 24, 3, 3), {"pads": [1, 1, 1, 1]}, "WinogradConv", act="Relu",
                     scale=WINOGRAD_SCALE[4])
    assert exe.compiled and (exe.packed is not None) == packed and bool(exe.jobs) == packed


def test_winograd_transforms_are_exact():
    """A^T[(G g) * (B^T d)] is the correlation of d with g, in float64, for every unit."""
    rng = np.random.default_rng(0)
    for m in winograd.UNITS:
        at, bt, g = winograd.transforms(m)
        d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
        direct = np.array([d[i:i + 3] @ k for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), direct, atol=1e-12)


def test_winograd_cost_model_prefers_im2col_for_small_images_with_big_weights():
    """The transformed weights are (m+2)^2/9 times larger: on 7x7 images of 512 channels
    reading them costs more than Winograd saves."""
    big = conv.ConvGeometry(1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 7, 7, 1)
    large_image = big._replace(c=64, m=64, h=56, w=56, oh=56, ow=56)
    assert winograd.best_unit(big) == 1
    assert winograd.best_unit(large_image) > 1


@pytest.mark.parametrize("act", sorted(ACTS))
def test_fused_activations(act, jit_on, im2col_gemm):
    check_conv((1, 8, 9, 9), (16, 8, 1, 1), {}, "PointwiseConv", act=act)
    check_conv((1, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}, "DepthwiseConv", act=act)
    check_conv((1, 8, 9, 9), (6, 8, 3, 3), {"strides": [2, 2]}, "Im2colConv", act=act, bias=False)


@pytest.mark.parametrize("act", ["Sigmoid", "SiLU", "Tanh"])
def test_compiled_transcendental_activations(act):
    """jit_epilogue's rational tanh against numpy's float64 functions, over every magnitude
    float32 reaches (the clamp at +-9, subnormals, +-inf, NaN): abs error <= 1e-6, and for the
    SiLU <= 1e-6 relative to |x| (it scales the sigmoid's error)."""
    need_numba()
    from backends.cpu import jit_epilogue
    mags = np.concatenate([np.geomspace(1e-38, 3e38, 4000), np.linspace(0, 20, 40001)])
    x = np.concatenate([mags, -mags, [np.inf, -np.inf, np.nan, 1e-45]]).astype(F32)
    y = x.copy()
    act_code = jit_epilogue.ACT_CODES[act]
    jit_epilogue.bias_act(y.reshape(1, -1), np.zeros(0, F32), act_code, -np.inf, np.inf, 0.0, 0.0)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        ref = {"Tanh": np.tanh(x64), "Sigmoid": 1 / (1 + np.exp(-x64)), "SiLU": x64 / (1 + np.exp(-x64))}[act]
    assert np.array_equal(np.isnan(y), np.isnan(ref)), act
    ok = ~np.isnan(ref)
    err = np.abs(y[ok] - ref[ok])
    bound = 1e-6 * (np.maximum(1, np.abs(x64[ok])) if act == "SiLU" else 1)
    assert np.all(err <= bound) or np.all(np.isinf(ref[ok][err > bound]) & (y[ok][err > bound] == ref[ok][err > bound])), \
        f"{act}: max error {np.max(err[np.isfinite(err)]):.3g}"


def test_declines_what_it_cannot_prepare():
    backend = backends.cpu.CpuBackend()
    x = TensorInfo((1, 4, 8, 8), np.dtype(F32))
    w = np.ones((4, 4, 3, 3), F32)
    node = Node("Conv", ["x", "w"], ["y"], "c", {})
    assert conv.ConvCPU.supports(backend, node, [x, TensorInfo(w.shape, w.dtype)], []) is not None
    assert conv.ConvCPU.supports(backend, node, [x._replace(dtype=np.dtype(np.float64)),
                                                TensorInfo(w.shape, np.dtype(np.float64), w)], []) is not None
    odd = Node("Conv", ["x", "w"], ["y"], "c", {"activation": "Softplus"})
    assert "Softplus" in conv.ConvCPU.supports(backend, odd, [x, TensorInfo(w.shape, w.dtype, w)], [])


def test_runs_do_not_allocate():
    """After bind, a run allocates nothing of the output's size: it writes into the arena."""
    rng = np.random.default_rng(0)
    for w_shape, attrs in [((32, 16, 1, 1), {}), ((32, 16, 3, 3), {"pads": [1, 1, 1, 1]}),
                           ((16, 1, 3, 3), {"group": 16, "pads": [1, 1, 1, 1]}),
                           ((32, 16, 3, 3), {"strides": [2, 2]})]:
        x = rng.standard_normal((1, 16, 28, 28)).astype(F32)
        w = rng.standard_normal(w_shape).astype(F32)
        b = rng.standard_normal(w_shape[0]).astype(F32)
        node = Node("Conv", ["x", "w", "b"], ["y"], "c", dict(attrs, activation="HardSwish"))
        infos = [TensorInfo(x.shape, x.dtype), TensorInfo(w.shape, w.dtype, w), TensorInfo(b.shape, b.dtype, b)]
        exe, y = run_executor(node, [x, w, b], infos, _conv(node, infos)[0].shape)
        tracemalloc.start()
        exe.run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < y.nbytes // 4, f"{type(exe).__name__} allocated {peak} bytes in a run"





@pytest.mark.parametrize("w_shape, attrs, expect", [
    ((24, 16, 1, 1), {}, "PointwiseConv"),
    ((5, 3, 1, 1), {}, "PointwiseConv"),                       # bias as a weight column
    ((12, 8, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2]}, "Im2colConv"),
    ((16, 16, 3, 3), {"pads": [1, 1, 1, 1]}, "WinogradConv"),
])
def test_gemm_shared_by_two_threads(two_threads, w_shape, attrs, expect, monkeypatch, im2col_gemm):
    """Column chunks, row bands and tile-row blocks claimed by either thread, each with its own
    scratch, give onnxruntime's result (odd sizes: the last chunk is short)."""
    if expect == "WinogradConv":
        monkeypatch.setattr(winograd, "best_unit", lambda g: 2)
    exe = check_conv((1, w_shape[1], 21, 19), w_shape, attrs, expect, act="HardSwish")
    assert exe.workers == 2
    assert len(getattr(exe, "cols", None) or getattr(exe, "bands", None) or exe.blocks) >= 2


@pytest.mark.parametrize("a_shape, b_shape, bias", [((2, 7, 16), (16, 9), (9,)), ((9, 16), (2, 16, 5), None)])
def test_matmul_shared_by_two_threads(two_threads, a_shape, b_shape, bias):
    test_matmul(a_shape, b_shape, bias, "SiLU")


def test_parallel_chunks_run_every_item_once(two_threads):
    seen = []
    parallel.chunks(lambda worker, k: seen.append((worker in (0, 1), k)), [(k,) for k in range(9)])
    assert sorted(seen) == [(True, k) for k in range(9)]


def test_serial_blas_only_when_asked(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"]
    with threadpool_limits(2, user_api="blas"):
        parallel.serial_blas()  # by default BLAS follows the session's `threads`
        assert all(n == 2 for n in blas_threads())
        monkeypatch.setattr(parallel, "SERIAL_BLAS", True)  # MIXNN_SERIAL_BLAS=1
        parallel.serial_blas()
        assert all(n == 1 for n in blas_threads())


# -- MatMul ----------------------------------------------------------------------------------
@pytest.mark.parametrize("a_shape, b_shape, bias, act", [
    ((2, 3, 4, 5), (5, 6), (6,), None),
    ((3, 1, 4, 5), (2, 5, 6), None, "Relu"),
    ((7, 16), (16, 9), (7, 9), "HardSwish"),
    ((2, 8, 16), (2, 16, 4), (4,), "SiLU"),
])
def test_matmul(a_shape, b_shape, bias, act):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(a_shape).astype(F32)
    b = rng.standard_normal(b_shape).astype(F32)
    inits = {"b": b}
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"])]
    if bias is not None:
        inits["bias"] = rng.standard_normal(bias).astype(F32)
        nodes.append(helper.make_node("Add", ["m", "bias"], ["c"]))
    else:
        nodes.append(helper.make_node("Identity", ["m"], ["c"]))
    act_nodes, act_attrs, act_inits = activation_nodes(act)
    ref = ort_run(onnx_model(nodes + act_nodes, {"a": a}, "y", {**inits, **act_inits}), {"a": a})[0]
    node = Node("MatMul", ["a", "b"] + (["bias"] if bias is not None else []), ["y"], "mm", act_attrs)
    infos = [TensorInfo(a.shape, a.dtype), TensorInfo(b.shape, b.dtype, b)]
    arrays = [a, b]
    if bias is not None:
        infos.append(TensorInfo(bias, np.dtype(F32), inits["bias"]))
        arrays.append(inits["bias"])
    exe, y = run_executor(node, arrays, infos, ref.shape)
    assert type(exe).__name__ == "MatMulCPU"
    assert_close(y, ref, what=f"MatMul {a_shape} @ {b_shape} + {bias} {act}")


def test_strassen_matches_onnxruntime():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 96)).astype(F32)
    b = rng.standard_normal((96, 48)).astype(F32)
    ref = ort_run(onnx_model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": a}, "y", {"b": b}), {"a": a})[0]
    out = np.full((64, 48), np.nan, F32)
    gemm.strassen_matmul(a, b, out, np.full(gemm.strassen_floats(64, 96, 48), np.nan, F32))
    assert_close(out, ref, what="one level of Strassen")


# -- through a session ------------------------------------------------------------------------
def test_session_uses_fast_executors():
    """A Conv+Relu model through the optimizer and the planner lands on the fast executors."""
    import engine
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 16, 16)).astype(F32)
    w = (rng.standard_normal((16, 8, 3, 3)) / 8).astype(F32)
    b = rng.standard_normal(16).astype(F32)
    model = onnx_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])], {"x": x}, "y", {"w": w, "b": b})
    sess = engine.InferenceSession(model)
    got = sess.run(None, {"x": x})[0]
    assert_close(got, ort_run(model, {"x": x})[0], what="Conv+Relu session")
    exes = [type(e).__name__ for e in sess._plan.executors.values()]
    assert any(name in ("WinogradConv", "Im2colConv") for name in exes), exes
    assert sess.run(None, {"x": x})[0].tobytes() == got.tobytes()
    assert sess.memory()["cpu"]["allocations_last_run"] == 0


# -- mixnn bench -------------------------------------------------------------------------------
def test_bench_smoke(tmp_path, capsys):
    from engine import bench
    out = tmp_path / "bench.json"
    assert bench.main(["squeezenet1_1", "--runs", "2", "--json", str(out), "--no-mnn",
                       "--backends", "cpu,nosuchbackend"]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["threads"] >= 1 and report["machine"]["runs"] == 2
    assert "nosuchbackend" in report["unavailable"]
    (entry,) = report["models"]
    assert entry["model"] == "squeezenet1_1" and list(entry["inputs"].values()) == [[1, 3, 224, 224]]
    cpu = entry["results"]["cpu"]
    for key in ("median_ms", "min_ms", "first_run_ms", "arena_bytes", "runs", "ratio_vs_onnxruntime"):
        assert key in cpu, key
    assert cpu["runs"] == 2 and 0 < cpu["min_ms"] <= cpu["median_ms"] and cpu["arena_bytes"] > 0
    assert entry["results"]["onnxruntime"]["median_ms"] > 0
    assert report["summary"]["cpu"]["models"] == 1
    printed = capsys.readouterr().out
    assert "squeezenet1_1" in printed and "nosuchbackend" in printed


def test_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from engine import bench
    report = {"machine": {"threads": 2, "cores": 2}, "models": [
        {"model": "a", "results": {"cpu": {"median_ms": 3.0}, "onnxruntime": {"median_ms": 1.5}}},
        {"model": "b", "results": {"cpu": {"median_ms": 300.0}, "onnxruntime": {"error": "x"}}}]}
    path = tmp_path / "bench.png"
    bench.plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("w_shape, bias, act", [((6, 4, 2, 2), True, None), ((6, 1, 2, 2), False, "Sigmoid"),
                                                ((3, 5, 3, 2), True, "Relu"), ((4, 3, 2, 3), True, "HardSwish"),
                                                ((5, 2, 2, 2), True, "SiLU"), ((2, 3, 1, 4), False, "Clip")])
def test_conv_transpose(w_shape, bias, act, jit_on):
    """kernel == stride: one GEMM, then kh*kw strided copies or the compiled row pass (DBNet's
    upsampling heads)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, w_shape[0], 7, 5)).astype(F32)
    w = rng.standard_normal(w_shape).astype(F32)
    b = rng.standard_normal(w_shape[1]).astype(F32) if bias else None
    attrs = {"strides": list(w_shape[2:]), "kernel_shape": list(w_shape[2:])}
    inits = {"w": w, **({"b": b} if bias else {})}
    act_nodes, act_attrs, act_inits = activation_nodes(act)
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["c"], **attrs)
    ref = ort_run(onnx_model([node] + act_nodes, {"x": x}, "y", {**inits, **act_inits}), {"x": x})[0]
    ir = Node("ConvTranspose", ["x", "w", "b" if bias else ""], ["y"], "ct", {**attrs, **act_attrs})
    infos = [TensorInfo(x.shape, x.dtype), TensorInfo(w.shape, w.dtype, w),
             TensorInfo(b.shape, b.dtype, b) if bias else None]
    exe, y = run_executor(ir, [x, w, b], infos, ref.shape)
    assert type(exe).__name__ == "ConvTransposeCPU"
    assert_close(y, ref, what=f"ConvTranspose {w_shape} bias={bias} {act}")


def test_conv_transpose_overlapping_kernels_decline():
    w = np.ones((4, 4, 3, 3), F32)
    node = Node("ConvTranspose", ["x", "w"], ["y"], "ct", {"strides": [2, 2]})
    infos = [TensorInfo((1, 4, 5, 5), np.dtype(F32)), TensorInfo(w.shape, w.dtype, w)]
    assert conv.ConvTransposeCPU.supports(backends.cpu.CpuBackend(), node, infos, []) is not None


# -- fast_ops.py: elementwise, Concat, pools computed into the output view ----------------------
def node_model(op, arrays, consts, attrs):
    """One ONNX node over inputs i0, i1... ("" where arrays holds None); consts become initializers."""
    from engine.onnx_types import onnx_code
    names = ["" if a is None else f"i{k}" for k, a in enumerate(arrays)]
    feed = {n: a for k, (n, a) in enumerate(zip(names, arrays)) if n and k not in consts}
    inits = [numpy_helper.from_array(a, n) for k, (n, a) in enumerate(zip(names, arrays)) if n and k in consts]
    code = onnx_code(next(a for a in arrays if a is not None).dtype)
    nodes = [helper.make_node(op, names, ["y"], **attrs)]
    if op == "SiLU":  # not an ONNX op: x * Sigmoid(x)
        nodes = [helper.make_node("Sigmoid", ["i0"], ["s"]), helper.make_node("Mul", ["i0", "s"], ["y"])]
    g = helper.make_graph(nodes, op, [helper.make_tensor_value_info(k, code, v.shape) for k, v in feed.items()],
                          [helper.make_tensor_value_info("y", code, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m, names, feed


def run_fast(op, arrays, attrs=None, consts=(), expect=None):
    """The node through its fast executor (dirty scratch and output, run twice, no allocation in a
    run) against onnxruntime; `consts` are the positions of inputs that are constants."""
    model, names, feed = node_model(op, arrays, consts, attrs or {})
    ref = ort_run(model, feed)[0]
    backend = backends.cpu.CpuBackend()
    node = Node(op, names, ["y"], op.lower(), dict(attrs or {}))
    infos = [None if a is None else TensorInfo(a.shape, a.dtype, a if k in consts else None)
             for k, a in enumerate(arrays)]
    outs = [TensorInfo(ref.shape, ref.dtype)]
    assert backend.supports(node, infos, outs) is None
    exe = backend.create(node, infos, outs)
    assert type(exe).__name__ == (expect or f"{op}CPU"), f"{op} ran on {type(exe).__name__}"
    scratch = np.full(exe.scratch_bytes(), 0xFF, np.uint8)  # NaN floats: nothing may rely on zeros
    y = np.full(ref.shape, np.nan, ref.dtype)
    exe.bind(list(arrays), [y], scratch)
    exe.run()
    first = y.copy()
    exe.run()
    np.testing.assert_array_equal(first, y)
    assert_close(y, ref, 1e-5, what=f"{op} {[None if a is None else a.shape for a in arrays]} {attrs}")
    tracemalloc.start()
    exe.run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # numpy's iterator may take a fixed-size buffer (broadcasts); never an output-sized temporary.
    assert peak < max(64 << 10, y.nbytes // 4), f"{op} allocated {peak} bytes in a run"
    return exe


def rnd(*shape, dtype=F32, seed=0, scale=3.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("a_shape, b_shape", [((2, 5, 7, 3), (2, 5, 7, 3)), ((1, 6, 5, 9), (1, 6, 1, 1)),
                                              ((3, 1, 4), (5, 1)), ((7,), (4, 1, 7)), ((2, 3), ())])
def test_fast_binary(op, a_shape, b_shape):
    a, b = rnd(*a_shape), rnd(*b_shape, seed=1)
    if op == "Div":
        b[np.abs(b) < 0.1] = 0.5
    run_fast(op, [a, b], expect="BinaryCPU")
    run_fast(op, [a, b], consts=(1,), expect="BinaryCPU")


def test_fast_binary_float64_and_declines():
    run_fast("Add", [rnd(3, 4, dtype=np.float64), rnd(4, dtype=np.float64, seed=1)], expect="BinaryCPU")
    backend = backends.cpu.CpuBackend()
    node = Node("Add", ["a", "b"], ["y"], "add", {})
    f32, f64, i64 = (TensorInfo((3, 4), np.dtype(t)) for t in (F32, np.float64, np.int64))
    assert backends.cpu.fast_ops.BinaryCPU.supports(backend, node, [f32, f64], [f64]) is not None
    assert type(backend.create(node, [i64, i64], [i64])).__name__ == "KernelExecutor"


@pytest.mark.parametrize("op, attrs", [("Relu", {}), ("Sigmoid", {}), ("HardSwish", {}), ("SiLU", {}),
                                       ("HardSigmoid", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4})])
@pytest.mark.parametrize("shape", [(1, 7, 5, 3), (2, 3, 11), (13,)])
def test_fast_unary(op, attrs, shape):
    x = rnd(*shape)
    x.flat[:3] = [40.0, -40.0, 0.0]  # saturated tails and zero
    run_fast(op, [x], attrs=attrs)


@pytest.mark.parametrize("lo, hi", [(-0.5, 6.0), (None, 1.0), (-1.0, None), (2.0, -1.0)])
def test_fast_clip(lo, hi):
    bounds = [None if v is None else np.array(v, F32) for v in (lo, hi)]
    if hi is None:
        bounds = bounds[:1]
    run_fast("Clip", [rnd(1, 5, 6, 7)] + bounds, consts=(1, 2))


def test_fast_clip_runtime_bounds_decline():
    backend = backends.cpu.CpuBackend()
    x = TensorInfo((2, 3), np.dtype(F32))
    node = Node("Clip", ["x", "lo", "hi"], ["y"], "clip", {})
    exe = backend.create(node, [x, TensorInfo((), np.dtype(F32)), TensorInfo((), np.dtype(F32))], [x])
    assert type(exe).__name__ == "KernelExecutor"


@pytest.mark.parametrize("shapes, axis", [([(1, 3, 5, 5), (1, 4, 5, 5), (1, 1, 5, 5)], 1),
                                          ([(2, 3, 4), (2, 3, 1)], -1), ([(3, 2), (5, 2)], 0),
                                          ([(1, 7, 3)], 1)])
def test_fast_concat(shapes, axis):
    arrays = [rnd(*s, seed=k) for k, s in enumerate(shapes)]
    run_fast("Concat", arrays, attrs={"axis": axis})
    if len(arrays) > 1:
        run_fast("Concat", arrays, attrs={"axis": axis}, consts=(1,))


@pytest.mark.parametrize("shape", [(1, 13, 7, 7), (2, 5, 9, 11), (1, 3, 1, 1), (2, 4, 17)])
def test_fast_global_average_pool(shape):
    run_fast("GlobalAveragePool", [rnd(*shape)])


@pytest.mark.parametrize("shape, attrs", [
    ((1, 5, 12, 12), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((2, 3, 13, 11), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((1, 4, 15, 15), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 14, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 4, 10, 13), {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
    ((1, 6, 20, 20), {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}),
    ((1, 2, 9, 10), {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]}),
    ((1, 2, 11, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 11, 12), {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 2]}),
    ((1, 3, 6, 6), {"kernel_shape": [1, 1], "strides": [2, 2]}),
])
def test_fast_max_pool(shape, attrs):
    x = rnd(*shape)
    x[..., 0, 0] = -1e6  # a corner below any pad value but -inf: pads must not leak into it
    run_fast("MaxPool", [x], attrs=attrs)


@pytest.mark.parametrize("op, arrays, attrs", [
    ("Add", [rnd(1, 32, 48, 48), rnd(1, 32, 48, 48, seed=1)], {}),
    ("Mul", [rnd(1, 32, 48, 48), rnd(1, 32, 1, 1, seed=1)], {}),
    ("SiLU", [rnd(1, 32, 48, 48)], {}), ("HardSwish", [rnd(1, 32, 48, 48)], {}),
    ("Concat", [rnd(1, 32, 48, 48), rnd(1, 16, 48, 48, seed=1)], {"axis": 1}),
    ("MaxPool", [rnd(1, 32, 97, 97)], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
])
def test_fast_ops_do_not_allocate(op, arrays, attrs):
    run_fast(op, arrays, attrs=attrs, expect="BinaryCPU" if op in ("Add", "Mul") else None)


@pytest.mark.parametrize("attrs, scales, sizes", [
    ({"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 2], None),
    ({"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 4, 8], None),
    ({"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 1, 3], None),
    ({}, [1, 1, 2, 2], None),  # half_pixel + round_prefer_floor at x2 picks i // 2 as well
    ({"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, None, [2, 3, 15, 14]),
])
def test_fast_resize_nearest_repeat(attrs, scales, sizes, jit_on):
    x = rnd(2, 3, 5, 7)
    extra = [np.zeros(0, F32), None if scales is None else np.array(scales, F32)]
    if sizes is not None:
        extra.append(np.array(sizes, np.int64))
    run_fast("Resize", [x] + extra, attrs=dict(attrs, mode="nearest"), consts=(1, 2, 3), expect="NearestRepeatCPU")


@pytest.mark.parametrize("attrs, scales", [({"mode": "linear"}, [1, 1, 2, 2]),
                                           ({"mode": "nearest"}, [1, 1, 1.5, 2]),
                                           ({"mode": "nearest"}, [1, 2, 2, 2]),
                                           ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                             "nearest_mode": "ceil"}, [1, 1, 2, 2])])
def test_fast_resize_declines_other_resamplings(attrs, scales):
    backend = backends.cpu.CpuBackend()
    x = TensorInfo((1, 2, 4, 6), np.dtype(F32))
    s = np.array(scales, F32)
    node = Node("Resize", ["x", "", "s"], ["y"], "r", attrs)
    out = TensorInfo(tuple(int(a * b) for a, b in zip(x.shape, scales)), np.dtype(F32))
    exe = backend.create(node, [x, None, TensorInfo(s.shape, s.dtype, s)], [out])
    assert type(exe).__name__ == "KernelExecutor"


def test_fast_max_pool_with_indices_declines():
    backend = backends.cpu.CpuBackend()
    x = TensorInfo((1, 2, 8, 8), np.dtype(F32))
    node = Node("MaxPool", ["x"], ["y", "idx"], "mp", {"kernel_shape": [2, 2], "strides": [2, 2]})
    outs = [TensorInfo((1, 2, 4, 4), np.dtype(F32)), TensorInfo((1, 2, 4, 4), np.dtype(np.int64))]
    assert type(backend.create(node, [x], outs)).__name__ == "KernelExecutor"


def test_fast_ops_fall_back_when_an_output_overlaps_an_input():
    backend = backends.cpu.CpuBackend()
    x = rnd(2, 3, 4)
    info = TensorInfo(x.shape, np.dtype(F32))
    exe = backend.create(Node("Concat", ["a", "b"], ["y"], "c", {"axis": 0}), [info, info],
                         [TensorInfo((4, 3, 4), np.dtype(F32))])
    buf = np.zeros((4, 3, 4), F32)
    buf[:2] = x
    exe.bind([buf[:2], x], [buf], None)  # input 0 lives in the output's first half
    exe.run()
    np.testing.assert_array_equal(buf, np.concatenate([x, x]))


@pytest.mark.parametrize("shape, axis, split, n_out, dtype", [
    ((1, 64, 20, 20), 1, [32, 32], 2, F32),          # YOLOv8n's C2f split
    ((2, 9, 5, 7), -1, [2, 4, 1], 3, F32),
    ((3, 10), 0, None, 3, np.int64),                  # num_outputs, uneven last part
    ((4, 6, 8), 1, [0, 6], 2, F32),                   # an empty part
])
def test_fast_split(shape, axis, split, n_out, dtype):
    """Split through SplitCPU in a session against onnxruntime (several outputs, so not run_fast)."""
    import engine
    x = (np.random.default_rng(7).standard_normal(shape) * 10).astype(dtype)
    outs = [f"y{k}" for k in range(n_out)]
    ins, inits, attrs = ["x"], [], {"axis": axis}
    if split is None:
        attrs["num_outputs"] = n_out
    else:
        ins.append("s")
        inits.append(numpy_helper.from_array(np.array(split, np.int64), "s"))
    code = TensorProto.FLOAT if dtype == F32 else TensorProto.INT64
    g = helper.make_graph([helper.make_node("Split", ins, outs, **attrs)], "split",
                          [helper.make_tensor_value_info("x", code, shape)],
                          [helper.make_tensor_value_info(o, code, None) for o in outs], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    sess = engine.InferenceSession(model, backend="cpu")
    got = sess.run(None, {"x": x})
    for a, b in zip(got, ort_run(model, {"x": x})):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    kinds = [type(e).__name__ for kind, p in sess._plan.steps if kind == "subgraph" for e in p[1]]
    assert kinds == ["SplitCPU"], kinds


@pytest.mark.parametrize("shape, axis", [((1, 8, 400), -1), ((2, 3, 5, 7), 1), ((4, 33), 0), ((1, 64, 4, 2100), 1)])
def test_fast_softmax(shape, axis):
    x = rnd(*shape) * 8
    x.reshape(-1)[::97] = -np.inf  # masked positions, as attention masks write them
    run_fast("Softmax", [x], attrs={"axis": axis})
