"""The Winograd and im2col convolutions against onnxruntime on both of their paths: the compiled
kernels (jit_winograd.py, jit_im2col.py; numba is a test dependency) and the numpy ones a
machine without numba runs. Odd image sizes, so that tiles and phase planes cross the image's
edge; blocks, channel passes and bands cut small, so that their seams are crossed too."""
import numpy as np
import pytest

from backends.cpu import conv, jit, winograd
from conftest import need_numba
from test_cpu_fast import WINOGRAD_SCALE, check_conv

ACTS = [None, "Relu", "Clip", "SiLU", "HardSwish"]


def force_unit(monkeypatch, unit):
    """Winograd F(unit, 3) (im2col for unit 1), on the compiled path whenever numba is on."""
    monkeypatch.setattr(winograd, "best_unit", lambda g: unit if winograd.applies(g) else 1)
    monkeypatch.setattr(winograd, "compiled_pays", lambda g, m: jit.available())


@pytest.mark.parametrize("unit", winograd.UNITS)
@pytest.mark.parametrize("act", ACTS)
def test_winograd(unit, act, jit_on, monkeypatch):
    force_unit(monkeypatch, unit)
    rng = np.random.default_rng(unit * 10 + ACTS.index(act))
    n, c, k = int(rng.integers(1, 3)), int(rng.choice([1, 3, 16, 33])), int(rng.choice([1, 8, 40]))
    h, w = int(rng.integers(3, 30)), int(rng.integers(3, 30))
    pads = [int(p) for p in rng.integers(0, 3, 4)]
    exe = check_conv((n, c, h, w), (k, c, 3, 3), {"pads": pads}, "WinogradConv", act=act,
                     bias=bool(rng.integers(0, 2)), scale=WINOGRAD_SCALE[unit], seed=unit)
    assert (exe.unit, exe.compiled) == (unit, jit_on)


@pytest.mark.parametrize("unit", winograd.UNITS)
def test_winograd_seams(unit, jit_on, monkeypatch):
    """Several blocks of tile rows and, compiled, several passes of channels per block."""
    force_unit(monkeypatch, unit)
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(winograd, "JIT_BLOCK_BYTES", 1 << 15)
    monkeypatch.setattr(winograd, "PASS_BYTES", 1 << 12)
    exe = check_conv((2, 12, 37, 23), (10, 12, 3, 3), {"pads": [1, 0, 2, 1]}, "WinogradConv",
                     act="Relu", scale=WINOGRAD_SCALE[unit])
    assert len(exe.blocks) > 2
    if jit_on:
        assert exe.per_c < 12 and exe.per_k < 10


def test_winograd_blocks_shared_by_two_threads(two_threads, monkeypatch):
    """The compiled blocks claimed by either thread, each with its own scratch."""
    force_unit(monkeypatch, 4)
    exe = check_conv((1, 9, 27, 19), (11, 9, 3, 3), {"pads": [1, 1, 1, 1]}, "WinogradConv", act="SiLU")
    assert exe.compiled and exe.workers == 2 and len(exe.blocks) >= 2


# (x shape, w shape, attrs): strided, dilated, grouped, asymmetric pads, stem-like 7x7/2, no pad.
IM2COL = [
    ((2, 3, 37, 41), (8, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 5, 30, 33), (6, 5, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 6, 29, 35), (8, 3, 3, 3), {"group": 2, "pads": [1, 1, 1, 1], "strides": [1, 2]}),
    ((2, 4, 31, 27), (5, 4, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 0]}),
    ((1, 3, 45, 47), (8, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 4, 23, 50), (3, 4, 3, 5), {"strides": [2, 3]}),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", IM2COL)
@pytest.mark.parametrize("act", ACTS)
def test_im2col(x_shape, w_shape, attrs, act, jit_on, im2col_gemm):
    exe = check_conv(x_shape, w_shape, attrs, "Im2colConv", act=act, bias=act != "Clip")
    assert exe.phased == jit_on


def test_im2col_phased_bands(jit_on, monkeypatch, im2col_gemm):
    """Bands of a few output rows: each band's phase planes start at its own image row."""
    monkeypatch.setattr(conv, "COLS_BUDGET", 1 << 12)  # both paths' bands
    exe = check_conv((2, 4, 33, 29), (6, 4, 3, 3), {"strides": [2, 2], "pads": [1, 2, 1, 0]}, "Im2colConv",
                     act="Relu")
    assert len(exe.bands) > 3 and exe.phased == jit_on


def test_im2col_stays_with_numpy_where_the_waste_is_large(monkeypatch, im2col_gemm):
    """7x7 maps: wq = OW + 2 would add 29% to the GEMM, 64 multiply-adds per output each."""
    need_numba()
    force_unit(monkeypatch, 1)
    exe = check_conv((1, 16, 7, 7), (64, 16, 3, 3), {"strides": [1, 1], "pads": [1, 1, 1, 1]}, "Im2colConv")
    assert not exe.phased
