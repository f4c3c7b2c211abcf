"""The depthwise executors (depthwise.py; compiled kernel jit_depthwise.py, numba is a test
dependency) against onnxruntime, on every path of the compiled kernel -- same_width (stride 1,
OW == W), phased (the rest) and channel blocks (blocked, each geometry with one output channel
per input channel forced through it) -- and on the numpy path a machine without numba runs: small
maps whose channels share one block, maps cut into several row blocks, strides, dilations,
asymmetric pads, channel multipliers, kernels wider than the image, and NaN/Inf inputs."""
import numpy as np
import pytest
from onnx import helper

from backends.cpu import depthwise
from conftest import need_numba
from oracle import assert_close, ort_run
from test_cpu_fast import F32, activation_nodes, check_conv, onnx_model, run_executor
from engine.ir import Node
from engine.ops import TensorInfo
from engine.ops.nn import _conv

# (x shape, kernel (kh, kw), multiplier, attrs)
GEOMETRIES = [
    ((1, 50, 7, 7), (3, 3), 1, {"pads": [1, 1, 1, 1]}),                     # same_width, 2 channel groups
    ((2, 24, 14, 14), (3, 3), 1, {"pads": [1, 1, 1, 1]}),
    ((1, 3, 70, 61), (3, 3), 1, {"pads": [1, 1, 1, 1]}),                    # several row blocks
    ((1, 2, 3, 2100), (3, 3), 1, {"pads": [1, 1, 1, 1]}),                   # one row per block
    ((1, 8, 20, 20), (5, 5), 1, {"pads": [2, 2, 2, 2]}),                    # PP-OCR's 5x5
    ((1, 6, 15, 13), (3, 3), 1, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    ((1, 6, 11, 9), (3, 3), 1, {"pads": [0, 0, 2, 2]}),                     # taps right only
    ((1, 6, 11, 9), (3, 3), 1, {"pads": [2, 2, 0, 0]}),                     # taps left only
    ((1, 6, 9, 10), (3, 3), 1, {"pads": [2, 1, 2, 1]}),                     # OH > H: no row covers all
    ((1, 6, 12, 10), (3, 3), 1, {"pads": [0, 1, 0, 1]}),                    # OH < H
    ((1, 4, 1, 2), (5, 5), 1, {"pads": [2, 2, 2, 2]}),                      # columns wholly in padding
    ((1, 4, 7, 7), (3, 3), 2, {"pads": [1, 1, 1, 1]}),                      # multiplier: one channel a block
    ((1, 3, 40, 40), (3, 3), 3, {"pads": [1, 1, 1, 1]}),
    ((1, 16, 14, 14), (3, 3), 1, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),  # phased from here on
    ((1, 16, 7, 7), (3, 3), 1, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((1, 6, 15, 13), (3, 3), 1, {"pads": [0, 1, 1, 0], "strides": [2, 2]}),
    ((1, 6, 15, 13), (3, 3), 1, {"pads": [1, 1, 1, 1], "strides": [1, 2]}),
    ((1, 6, 15, 13), (3, 3), 1, {}),                                          # valid: OW != W
    ((1, 6, 15, 13), (3, 3), 1, {"pads": [1, 0, 1, 3]}),                     # OW != W
    ((1, 6, 20, 20), (5, 5), 2, {"pads": [2, 2, 2, 2], "strides": [2, 2]}),
    ((1, 6, 17, 17), (3, 3), 1, {"pads": [2, 2, 2, 2], "dilations": [2, 2], "strides": [2, 2]}),
]
ACTS = [None, "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "SiLU", "Tanh"]


@pytest.fixture(params=["flat", "blocks", "numpy"])
def path(request, monkeypatch):
    """The compiled kernel's flat paths (same_width, phased), its channel blocks wherever they
    apply (m == c), or the numpy executor (numba patched off)."""
    from backends.cpu import jit
    if request.param == "numpy":
        monkeypatch.setattr(jit, "available", lambda: False)
        return request.param
    need_numba()
    monkeypatch.setattr(depthwise, "BLOCKED", request.param == "blocks")
    monkeypatch.setattr(depthwise, "BLOCKED_BYTES", 1 << 40)
    return request.param


def picked(exe, path, g_m, g_c):
    """The executor took the path asked for (blocks only where one channel maps to one)."""
    if path != "numpy":
        assert exe.by_blocks == (path == "blocks" and g_m == g_c)


@pytest.mark.parametrize("x_shape, k, mult, attrs", GEOMETRIES)
def test_geometries(x_shape, k, mult, attrs, path):
    c = x_shape[1]
    exe = check_conv(x_shape, (c * mult, 1) + k, {**attrs, "group": c}, "DepthwiseConv", act="Relu")
    picked(exe, path, c * mult, c)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
def test_activations(act, bias, stride, path):
    exe = check_conv((1, 45, 7, 7), (45, 1, 3, 3), {"group": 45, "pads": [1, 1, 1, 1], "strides": [stride] * 2},
                     "DepthwiseConv", act=act, bias=bias)
    picked(exe, path, 45, 45)


def test_channel_ranges_cross_groups(two_threads, monkeypatch):
    """Ranges of the executor's threads that start and end inside a block of channels (the
    flat path's groups of small maps)."""
    monkeypatch.setattr(depthwise, "JIT_SPLIT_MIN", 0)
    monkeypatch.setattr(depthwise, "BLOCKED", False)
    exe = check_conv((1, 101, 7, 7), (101, 1, 3, 3), {"group": 101, "pads": [1, 1, 1, 1]},
                     "CompiledDepthwise", act="Clip")
    assert any(a % 41 for a, _ in exe.ranges)  # 41 channels of 7x7 share a 2048-float block


@pytest.mark.parametrize("x_shape, k, attrs", [
    ((1, 20, 7, 7), 3, {"pads": [1, 1, 1, 1]}),
    ((1, 3, 70, 30), 3, {"pads": [1, 1, 1, 1]}),
    ((1, 4, 12, 12), 5, {"pads": [2, 2, 2, 2]}),
    ((1, 4, 14, 14), 3, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
])
def test_nan_and_inf(x_shape, k, attrs, path):
    """NaN and +-Inf where onnxruntime has them (edges and corners included: the shifted reads
    there must see padding, not a neighbouring row), finite values close; a fused ReLU keeps NaN."""
    c = x_shape[1]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(F32)
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, size=max(6, flat.size // 40), replace=False)
    flat[spots[0::3]] = np.nan
    flat[spots[1::3]] = np.inf
    flat[spots[2::3]] = -np.inf
    x[0, 0, 0, 0], x[0, 0, -1, -1], x[0, -1, 0, -1] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((c, 1, k, k)).astype(F32)
    b = rng.standard_normal(c).astype(F32)
    attrs = {**attrs, "group": c}
    nodes, _, _ = activation_nodes(None)
    model = onnx_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)] + nodes,
                       {"x": x}, "y", {"w": w, "b": b})
    ref = ort_run(model, {"x": x})[0]
    infos = [TensorInfo(x.shape, x.dtype), TensorInfo(w.shape, w.dtype, w), TensorInfo(b.shape, b.dtype, b)]
    for act_attrs in [{}, {"activation": "Relu"}]:
        node = Node("Conv", ["x", "w", "b"], ["y"], "conv", {**attrs, **act_attrs})
        _, y = run_executor(node, [x, w, b], infos, _conv(node, infos)[0].shape)
        want = ref if not act_attrs else np.where(ref > 0, ref, np.where(np.isnan(ref), ref, 0))
        assert np.isnan(ref).any() and np.isinf(ref).any()
        for mask in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(mask(y), mask(want), err_msg=f"{mask.__name__} {act_attrs}")
        finite = np.isfinite(want)
        assert_close(y[finite], want[finite], what=f"finite outputs {act_attrs}")
