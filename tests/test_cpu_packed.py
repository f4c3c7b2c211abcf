"""The packed-GEMM convolution (backends/cpu/packed.py, jit_gemm.py) against onnxruntime: the
geometries im2col takes (strides, dilations, asymmetric pads, 7x7 stems, 1x1 with stride) and
plain 1x1 convolutions,
sizes that leave partial tiles on both sides (M not a multiple of MR, output columns not a
multiple of NR), a batch, fused activations and residuals, both job modes (B packed by parts
or all first), on one thread and on two with the helper taking part; and the row tiles of 1x1
convolutions on many pixels (RowsConv) likewise."""
import numpy as np
import pytest

import engine
from backends.cpu import jit, packed
from conftest import need_numba
from test_cpu_fast import check_conv
from test_cpu_fusion import residual_model, run_both
from test_cpu_pool import helper_takes_part

ACTS = [None, "Relu", "Clip", "SiLU", "HardSwish", "LeakyRelu"]

# (x shape, w shape, attrs)
GEOMETRIES = [
    ((2, 3, 37, 41), (40, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 5, 30, 33), (36, 5, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((2, 4, 31, 27), (33, 4, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 0]}),
    ((1, 3, 45, 47), (40, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # stem-like
    ((1, 4, 23, 50), (35, 4, 3, 5), {"strides": [2, 3]}),
    ((1, 9, 13, 11), (33, 9, 1, 1), {"strides": [2, 2]}),                       # strided 1x1
    ((1, 1, 5, 4), (32, 1, 2, 2), {}),                                          # K = 4, 12 columns
    ((1, 70, 7, 7), (70, 70, 3, 3), {"pads": [1, 1, 1, 1], "dilations": [1, 1], "strides": [1, 1]}),
    ((2, 24, 9, 13), (40, 24, 1, 1), {}),                                       # 1x1: B panels are runs
    ((1, 5, 19, 21), (33, 5, 1, 1), {}),                                        # 1x1, one row in A's last panel
    ((1, 64, 12, 12), (96, 64, 1, 1), {}),                                      # 1x1, whole tiles
]


@pytest.fixture
def packed_on(monkeypatch):
    need_numba()
    # 7x7 maps of 70 channels would go to Winograd: force im2col's place for every geometry.
    from backends.cpu import winograd
    monkeypatch.setattr(winograd, "best_unit", lambda g: 1)


@pytest.mark.parametrize("x_shape, w_shape, attrs", GEOMETRIES)
@pytest.mark.parametrize("act", ACTS)
def test_packed_conv(packed_on, x_shape, w_shape, attrs, act):
    exe = check_conv(x_shape, w_shape, attrs, "PackedConv", act=act, bias=act != "Clip")
    assert len(exe.jobs) == x_shape[0]


@pytest.mark.parametrize("shared", [True, False])
def test_both_modes(packed_on, monkeypatch, shared):
    """B packed all at once then shared, or by parts into each thread's own buffer (parts of
    one panel: many parts, the last one short)."""
    monkeypatch.setattr(packed, "PART_BYTES", 1)
    monkeypatch.setattr(packed, "shared_mode", lambda *args: shared)
    exe = check_conv((2, 6, 19, 23), (37, 6, 3, 3), {"strides": [1, 2], "pads": [1, 1, 1, 1]}, "PackedConv",
                     act="Relu")
    assert exe.shared == shared and exe.panels > 8


@pytest.mark.parametrize("shared", [True, False])
def test_helper_takes_part(two_threads, packed_on, monkeypatch, shared):
    """On two threads both take parts of the same job (the helper's part really ran) and the
    result does not depend on who took which."""
    monkeypatch.setattr(packed, "shared_mode", lambda *args: shared)
    monkeypatch.setattr(packed, "PART_BYTES", 1 << 12)
    exe = check_conv((1, 16, 29, 31), (40, 16, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "PackedConv",
                     act="Clip", bias=False)
    assert exe.workers == 2 and exe.shared == shared
    helper_takes_part(two_threads, exe)


@pytest.mark.parametrize("act", [None, "Relu", "SiLU"])
@pytest.mark.parametrize("big", [False, True])
def test_residual_in_the_tiles(packed_on, monkeypatch, act, big):
    """Conv + Add(residual) [+ activation]: the residual is added as the tiles are stored,
    before the activation; `big` has whole tiles (the kernel's own stores) besides partial ones."""
    import test_cpu_fusion
    shape = ((1, 8, 15, 27), (40, 8, 3, 3)) if big else ((2, 6, 9, 9), (33, 6, 3, 3))  # 5x5 out: partial tiles
    monkeypatch.setitem(test_cpu_fusion.STRATEGIES, "im2col", shape + ({"pads": [1, 1, 1, 1], "strides": [2, 2]},))
    model, x = residual_model("im2col", act)
    ops = run_both(model, x)
    assert "Add" not in ops, ops
    sess = engine.InferenceSession(model, backend="cpu")
    sess.run(None, {"x": x})
    kinds = [type(e).__name__ for e in sess._plan.executors.values()]
    assert "PackedConv" in kinds, kinds


def test_nan_and_inf_propagate(packed_on):
    """A NaN or an infinity in the image reaches the outputs whose windows hold it, through Relu's
    clamp too (comparisons keep NaN), as in onnxruntime."""
    from onnx import helper
    from oracle import ort_run
    from test_cpu_fast import onnx_model
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 11, 13)).astype(np.float32)
    x[0, 1, 3, 4], x[0, 2, 8, 9] = np.nan, np.inf
    w = rng.standard_normal((36, 4, 3, 3)).astype(np.float32)
    model = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])], {"x": x}, "y", {"w": w})
    got = engine.InferenceSession(model, backend="cpu").run(None, {"x": x})[0]
    ref = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-4, atol=1e-4)


def test_tables_cover_every_column():
    """jit_gemm.tables: each output column's window origin and each tap's offset, against the
    index arithmetic written out; runs only where a panel's columns are consecutive."""
    need_numba()
    from backends.cpu import jit_gemm as jg
    c, hp, wp, kh, kw, sh, sw, dh, dw = 3, 11, 14, 3, 2, 2, 1, 2, 3
    oh, ow = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
    col, row, run = jg.tables(c, hp, wp, kh, kw, sh, sw, dh, dw, oh, ow)
    for n in range(oh * ow):
        assert col[n] == (n // ow) * sh * wp + (n % ow) * sw
    taps = [(ci * hp + i * dh) * wp + j * dw for ci in range(c) for i in range(kh) for j in range(kw)]
    assert row.tolist() == taps
    for p in range(run.size):
        cols = col[p * jg.NR:(p + 1) * jg.NR].astype(np.int64)
        steps = set(np.diff(cols).tolist())
        assert run[p] == (steps.pop() if len(steps) == 1 and steps <= {1, 2} else 0)
    for step in (1, 2):  # rows of 3 panels: runs of consecutive / every other column
        wide = 3 * jg.NR
        _, _, runs = jg.tables(c, hp, step * wide + 2, 3, 3, step, step, 1, 1, 2, wide)
        assert runs.tolist() == [step] * runs.size


def test_off_without_numba(monkeypatch):
    monkeypatch.setattr(jit, "available", lambda: False)
    check_conv((1, 3, 9, 9), (40, 3, 3, 3), {"strides": [2, 2]}, "Im2colConv")
    check_conv((1, 3, 9, 9), (40, 3, 1, 1), {}, "PointwiseConv")


def test_few_output_channels_stay_with_numpy(packed_on):
    """Fewer output channels than a tile has rows: numpy's GEMM (packed.applies)."""
    from backends.cpu import jit_gemm
    check_conv((1, 3, 33, 35), (jit_gemm.MR - 1, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "Im2colConv")
    check_conv((1, 40, 9, 9), (jit_gemm.MR - 8, 40, 1, 1), {}, "PointwiseConv")


def test_scratch_stays_bounded_on_large_layers(packed_on):
    """A deep layer on a large image (512 channels, 3x3, 112x112: 231 MB of packed columns)
    packs B by parts: the scratch is a few parts' worth, not all of B."""
    import backends.cpu
    from engine.ir import Node
    from engine.ops import TensorInfo
    w = np.zeros((512, 512, 3, 3), np.float32)
    node = Node("Conv", ["x", "w"], ["y"], "conv", {"pads": [1, 1, 1, 1]})
    infos = [TensorInfo((1, 512, 112, 112), np.dtype(np.float32)), TensorInfo(w.shape, w.dtype, w)]
    exe = backends.cpu.CpuBackend().create(node, infos, [TensorInfo((1, 512, 112, 112), np.dtype(np.float32))])
    assert type(exe).__name__ == "PackedConv" and not exe.shared
    assert exe.scratch_bytes() < 4 * 512 * 114 * 114 + (8 << 20)  # the padded image and small buffers


# -- row tiles (RowsConv: 1x1 on many pixels) ---------------------------------------------------
# (x shape, output channels): pixels not a multiple of the NV*LANES column tile, output
# channels not a multiple of RM, K = 1, one output channel, a batch.
ROWS_GEOMETRIES = [
    ((1, 16, 40, 52), 24),  # 2080 pixels
    ((2, 3, 23, 23), 9),    # 529 pixels, few channels, batch 2
    ((1, 1, 24, 25), 5),    # K = 1
    ((1, 40, 17, 31), 1),   # one output channel
    ((1, 33, 48, 48), 70),  # many pixels: row tiles whatever the channels
]


@pytest.mark.parametrize("x_shape, m", ROWS_GEOMETRIES)
@pytest.mark.parametrize("act", ACTS)
def test_row_tiles(packed_on, x_shape, m, act):
    exe = check_conv(x_shape, (m, x_shape[1], 1, 1), {}, "RowsConv", act=act, bias=act != "Clip")
    assert len(exe.jobs) == x_shape[0]


def test_row_tiles_where(packed_on):
    """Few pixels keep the packed tiles (many channels) or numpy's GEMM (fewer than MR)."""
    from backends.cpu import jit_gemm
    check_conv((1, 16, 20, 20), (2 * jit_gemm.MR, 16, 1, 1), {}, "PackedConv")
    check_conv((1, 16, 20, 20), (jit_gemm.MR - 1, 16, 1, 1), {}, "PointwiseConv")
    check_conv((1, 16, 30, 30), (2 * jit_gemm.MR, 16, 1, 1), {}, "PackedConv")
    check_conv((1, 16, 30, 30), (2 * jit_gemm.MR - 1, 16, 1, 1), {}, "RowsConv")


def test_row_tiles_helper_takes_part(two_threads, packed_on):
    exe = check_conv((1, 24, 40, 52), (40, 24, 1, 1), {}, "RowsConv", act="Clip")
    assert exe.workers == 2
    helper_takes_part(two_threads, exe)


@pytest.mark.parametrize("act", [None, "Relu", "SiLU"])
def test_row_tiles_residual(packed_on, monkeypatch, act):
    """Conv 1x1 + Add(residual) [+ activation] with the residual added at the row tiles' stores."""
    import test_cpu_fusion
    monkeypatch.setitem(test_cpu_fusion.STRATEGIES, "pointwise", ((1, 8, 30, 41), (24, 8, 1, 1), {}))
    model, x = residual_model("pointwise", act)
    ops = run_both(model, x)
    assert "Add" not in ops, ops
    sess = engine.InferenceSession(model, backend="cpu")
    sess.run(None, {"x": x})
    exes = [e for e in sess._plan.executors.values() if type(e).__name__ == "RowsConv"]
    assert any(e.residual for e in exes), [type(e).__name__ for e in sess._plan.executors.values()]


def test_row_tiles_nan_and_inf(packed_on):
    """A NaN or an infinity in the image reaches its pixel's outputs, through Relu's clamp too."""
    from onnx import helper
    from oracle import ort_run
    from test_cpu_fast import onnx_model
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 4, 30, 31)).astype(np.float32)
    x[0, 1, 3, 4], x[0, 2, 28, 30] = np.nan, np.inf
    w = rng.standard_normal((9, 4, 1, 1)).astype(np.float32)
    model = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
                       {"x": x}, "y", {"w": w})
    sess = engine.InferenceSession(model, backend="cpu")
    got = sess.run(None, {"x": x})[0]
    assert "RowsConv" in [type(e).__name__ for e in sess._plan.executors.values()]
    ref = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-4, atol=1e-4)
