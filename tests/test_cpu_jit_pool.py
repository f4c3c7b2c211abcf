"""MaxPoolCPU, compiled (by channel blocks, jit_depthwise.blocked; by planes, jit_pool.py) and
numpy, against onnxruntime over many geometries, and
against an independent numpy reference where onnxruntime is not one: NaN (onnxruntime keeps a
NaN only when it is the first element of a window, np.maximum always) and windows that lie
wholly in the pads."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import backends.cpu
from backends.cpu import fast_ops  # noqa: F401  (registers MaxPoolCPU)
from engine.ir import Node
from engine.ops import TensorInfo
from conftest import need_numba
from oracle import ort_run


@pytest.fixture(params=["blocks", "planes", "numpy"])
def jit_on(request, monkeypatch):
    """The compiled pool by channel blocks or by planes (fast_ops.POOL_BLOCKS), or numpy's
    (numba patched off); truthy when compiled."""
    from backends.cpu import jit
    if request.param == "numpy":
        monkeypatch.setattr(jit, "available", lambda: False)
        return ""
    need_numba()
    monkeypatch.setattr(fast_ops, "POOL_BLOCKS", request.param == "blocks")
    monkeypatch.setattr(fast_ops, "POOL_BLOCK_BYTES", 1 << 40)
    return request.param


def onnx_pool(x, attrs):
    g = helper.make_graph([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], "pool",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return ort_run(m, {"x": x})[0]


def numpy_pool(x, attrs, out_hw):
    """Every tap's strided view of a -inf padded copy, folded with np.maximum."""
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    oh, ow = out_hw
    n, c, h, w = x.shape
    hp = max(pt + h + pb, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(pl + w + pr, (ow - 1) * sw + (kw - 1) * dw + 1)
    xp = np.full((n, c, hp, wp), -np.inf, x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    y = np.full((n, c, oh, ow), -np.inf, x.dtype)
    for i in range(kh):
        for j in range(kw):
            np.maximum(y, xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw], out=y)
    return y


def run_pool(x, attrs, out_shape, compiled):
    """MaxPoolCPU on a dirty scratch and output, run twice."""
    backend = backends.cpu.CpuBackend()
    node = Node("MaxPool", ["x"], ["y"], "pool", dict(attrs))
    exe = backend.create(node, [TensorInfo(x.shape, x.dtype)], [TensorInfo(out_shape, x.dtype)])
    assert type(exe).__name__ == "MaxPoolCPU"
    assert exe.compiled == (bool(compiled) and x.dtype == np.float32)
    assert exe.blocks == (compiled == "blocks" and x.dtype == np.float32)
    scratch = np.full(exe.scratch_bytes(), 0xFF, np.uint8)  # NaN floats: the pads must not read them
    y = np.full(out_shape, np.nan, x.dtype)
    exe.bind([x], [y], scratch)
    exe.run()
    first = y.copy()
    exe.run()
    np.testing.assert_array_equal(first, y)
    return y


GEOMETRIES = [
    ((1, 3, 9, 9), {"kernel_shape": [3, 3]}),
    ((2, 4, 12, 13), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((1, 2, 15, 15), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 14, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 3, 12, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
    ((2, 3, 27, 27), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 10, 10), {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}),
    ((1, 2, 16, 17), {"kernel_shape": [5, 5], "strides": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 2, 13, 12), {"kernel_shape": [4, 4], "strides": [3, 3], "pads": [1, 2, 2, 1]}),
    ((1, 2, 10, 10), {"kernel_shape": [2, 2], "strides": [3, 3], "ceil_mode": 1}),
    ((1, 2, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 3]}),
    ((1, 2, 9, 10), {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]}),
    ((1, 2, 20, 21), {"kernel_shape": [3, 3], "strides": [1, 2], "pads": [1, 0, 1, 1]}),
    ((1, 2, 8, 10), {"kernel_shape": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 11, 12), {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 2]}),
    ((1, 2, 13, 13), {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 2, 12, 14), {"kernel_shape": [3, 2], "strides": [2, 2], "dilations": [1, 3], "pads": [0, 1, 1, 0]}),
    ((1, 2, 7, 7), {"kernel_shape": [1, 1], "strides": [2, 2]}),
    ((1, 2, 7, 8), {"kernel_shape": [1, 1]}),
    ((1, 2, 12, 12), {"kernel_shape": [1, 5], "strides": [3, 1]}),
    ((1, 2, 8, 8), {"kernel_shape": [5, 5], "pads": [3, 3, 3, 3]}),
    ((1, 2, 11, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 10, 11), {"kernel_shape": [4, 4], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 3, 1, 1), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ((1, 3, 2, 2), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
    ((1, 2, 3, 1), {"kernel_shape": [3, 1], "strides": [2, 1], "pads": [1, 0, 1, 0]}),
    ((1, 2, 2, 5), {"kernel_shape": [2, 3], "strides": [2, 2]}),
    ((3, 2, 5, 130), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 8, 112, 112), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
]


@pytest.mark.parametrize("shape, attrs", GEOMETRIES)
def test_max_pool_matches_onnxruntime(shape, attrs, jit_on):
    x = np.asarray(np.random.default_rng(sum(shape)).standard_normal(shape) * 3, np.float32)
    x[..., 0, 0] = -1e30  # below anything but -inf: no pad may leak into a window
    ref = onnx_pool(x, attrs)
    np.testing.assert_array_equal(run_pool(x, attrs, ref.shape, jit_on), ref)


@pytest.mark.parametrize("shape, attrs", [
    ((2, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 3, 11, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 10, 10), {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}),
    ((1, 2, 9, 10), {"kernel_shape": [2, 3], "strides": [3, 1], "dilations": [2, 1], "pads": [1, 0, 0, 2]}),
])
def test_max_pool_nan_and_infinities(shape, attrs, jit_on):
    """NaN anywhere in a window gives NaN (np.maximum's rule), whatever its place in the
    window; -inf and inf are ordinary values. onnxruntime keeps only a window's leading NaN."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, size=3 * max(1, flat.size // 40), replace=False)
    flat[spots[0::3]], flat[spots[1::3]], flat[spots[2::3]] = np.nan, -np.inf, np.inf
    x[0, 0] = -np.inf  # a plane of -inf: windows of -inf only
    x[-1, -1, :, -1] = np.nan  # NaN in the last column: the last tap of windows
    y = run_pool(x, attrs, onnx_pool(np.zeros_like(x), attrs).shape, jit_on)
    np.testing.assert_array_equal(y, numpy_pool(x, attrs, y.shape[2:]))
    assert np.isnan(y).any() and np.isneginf(y).any()


@pytest.mark.parametrize("shape, attrs, out", [
    ((1, 2, 1, 1), {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]}, (1, 1)),
    ((1, 2, 1, 6), {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "pads": [1, 1, 1, 1]}, (1, 3)),
])
def test_max_pool_window_wholly_in_pads(shape, attrs, out, jit_on):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    y = run_pool(x, attrs, shape[:2] + out, jit_on)
    np.testing.assert_array_equal(y, numpy_pool(x, attrs, out))
    assert np.isneginf(y).any()


def test_max_pool_float64_stays_numpy(jit_on):
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 9))
    y = run_pool(x, attrs, (1, 3, 5, 5), jit_on)
    np.testing.assert_array_equal(y, numpy_pool(x, attrs, (5, 5)))
