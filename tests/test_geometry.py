"""Geometry: data-movement ops lowered to region copies give what the CPU kernels give."""
import numpy as np
import pytest

from backends.cpu import CpuBackend
from engine import geometry
from engine.ir import Node
from engine.ops import TensorInfo, infer, load_all

load_all()
rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
Y = rng.standard_normal((1, 8, 3, 2)).astype(np.float32)
i64 = lambda *v: np.array(v, np.int64)  # noqa: E731

CASES = [
    ("transpose", Node("Transpose", ["x"], ["y"], attrs={"perm": [0, 2, 3, 1]}), [X]),
    ("transpose_default", Node("Transpose", ["x"], ["y"]), [X]),
    ("slice_neg_step", Node("Slice", ["x", "s", "e", "a", "st"], ["y"]),
     [X, i64(1, -1), i64(3, -5), i64(1, 3), i64(1, -2)]),
    ("slice_clamped", Node("Slice", ["x", "s", "e"], ["y"]), [X, i64(0, 1, -100), i64(9, 9, 100)]),
    ("pad_crop", Node("Pad", ["x", "p", "v"], ["y"]),
     [X, i64(0, 1, -1, 2, 0, 0, 2, -1), np.array(1.5, np.float32)]),
    ("tile", Node("Tile", ["x", "r"], ["y"]), [X, i64(1, 2, 1, 3)]),
    ("expand", Node("Expand", ["x", "r"], ["y"]), [X[:, :1].copy(), i64(3, 2, 3, 4, 5)]),
    ("gather", Node("Gather", ["x", "i"], ["y"], attrs={"axis": 2}), [X, i64(3, 0, -1, 1).reshape(2, 2)]),
    ("gather_scalar", Node("Gather", ["x", "i"], ["y"], attrs={"axis": 1}), [X, np.array(-1, np.int64)]),
    ("d2s_dcr", Node("DepthToSpace", ["x"], ["y"], attrs={"blocksize": 2}), [Y]),
    ("d2s_crd", Node("DepthToSpace", ["x"], ["y"], attrs={"blocksize": 2, "mode": "CRD"}), [Y]),
    ("s2d", Node("SpaceToDepth", ["x"], ["y"], attrs={"blocksize": 2}), [X[:, :, :4, :4].copy()]),
    ("concat", Node("Concat", ["a", "b", "c"], ["y"], attrs={"axis": -3}), [X, X[:, :2].copy(), X[:, :0].copy()]),
    ("split", Node("Split", ["x", "s"], ["y", "z"], attrs={"axis": 3}), [X, i64(2, 3)]),
    ("reshape", Node("Reshape", ["x", "s"], ["y"]), [X, i64(6, -1)]),
]


@pytest.mark.parametrize("name,node,arrays", CASES, ids=[c[0] for c in CASES])
def test_raster_matches_cpu_kernel(name, node, arrays):
    ins = [TensorInfo(a.shape, a.dtype, a if k > 0 or node.op == "Concat" else None) for k, a in enumerate(arrays)]
    outs = infer(node, ins)
    raster = geometry.lower(node, ins, outs)
    assert raster is not None
    got = [np.full(o.shape, np.nan, np.float32) for o in outs]
    geometry.apply_numpy(raster, arrays, got)
    ref = CpuBackend.evaluate(node, arrays)
    for g, r in zip(got, ref):
        assert g.shape == r.shape and np.array_equal(g, r)


def test_what_does_not_lower():
    node = Node("Pad", ["x", "p"], ["y"], attrs={"mode": "reflect"})
    ins = [TensorInfo(X.shape, X.dtype), TensorInfo((8,), np.dtype(np.int64), i64(0, 0, 1, 1, 0, 0, 1, 1))]
    assert geometry.lower(node, ins, infer(node, ins)) is None
    many = np.arange(100, dtype=np.int64) % 5
    node = Node("Gather", ["x", "i"], ["y"], attrs={"axis": 3})
    ins = [TensorInfo(X.shape, X.dtype), TensorInfo(many.shape, many.dtype, many)]
    assert geometry.lower(node, ins, infer(node, ins)) is None


def test_space_to_depth_crd_mode():
    node = Node("SpaceToDepth", ["x"], ["y"], attrs={"blocksize": 2, "mode": "CRD"})
    x = X[:, :, :4, :4].copy()
    ins = [TensorInfo(x.shape, x.dtype)]
    got = [np.zeros((2, 12, 2, 2), np.float32)]
    geometry.apply_numpy(geometry.lower(node, ins, infer(node, ins)), [x], got)
    n, c, h, w = x.shape
    ref = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)
    assert np.array_equal(got[0], ref)
