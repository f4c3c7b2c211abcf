"""Read and write .mixnn model files: one Graph as a flatbuffer (schema: engine/schema/mixnn.fbs).

Loading maps the file and views every weight in place (np.frombuffer, no copy), so opening a
model costs the walk over its graph, whatever the size of its weights. The Python flatbuffers
runtime trusts its input, and a model file may come from anywhere: every table, string and
vector read here is bounds-checked first (_CheckedTable), the total work of reading is bounded by
the size of the file (_Reader.spend), and any failure comes out as a ModelFormatError.
"""
from __future__ import annotations

import math
import mmap
import os
import struct

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from .errors import MixnnError, ModelFormatError
from .ir import Graph, Node, Value
from .onnx_types import onnx_code, onnx_dtype
from .schema import mixnn_generated as fb

FORMAT_VERSION = 1
FILE_IDENTIFIER = b"MXNN"
_ALIGN = 64          # weights start on 64-byte boundaries in the file (and so in the mapping)
_MAX_DEPTH = 64      # subgraph nesting; deeper is a corrupt (or cyclic) file
_STRING = 8          # ONNX element type of string tensors
_T = fb.AttributeType


def save(graph: Graph, path=None) -> bytes:
    """Serialize `graph`; also write it to `path` when one is given."""
    weights = sum(a.nbytes for a in graph.constants.values())
    try:
        b = flatbuffers.Builder(min(weights + (1 << 16), flatbuffers.Builder.MAX_BUFFER_SIZE))
        root = _write_graph(b, graph, 0)
        fb.ModelStart(b)
        fb.ModelAddVersion(b, FORMAT_VERSION)
        fb.ModelAddGraph(b, root)
        b.Finish(fb.ModelEnd(b), FILE_IDENTIFIER)
    except flatbuffers.builder.BuilderSizeError:
        raise ModelFormatError(f"graph '{graph.name}' is too large for a .mixnn file "
                               f"(flatbuffers hold at most 2 GiB; weights: {weights} bytes)") from None
    data = bytes(b.Output())
    if path is not None:
        # Write aside and rename, so that an interrupted save never leaves a truncated model.
        partial = os.fspath(path) + ".partial"
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    return data


def load(path_or_bytes) -> Graph:
    """Read a .mixnn model from a path (memory-mapped) or from bytes. Constants are read-only
    views into the file; they keep the mapping alive."""
    buf, source = _open(path_or_bytes)
    try:
        return _Reader(buf).model()
    except ModelFormatError as e:
        raise ModelFormatError(f"{source}: {e}") from None
    except (struct.error, ValueError, IndexError, TypeError, OverflowError, MemoryError,
            RecursionError, MixnnError) as e:
        raise ModelFormatError(f"{source}: corrupt .mixnn file ({type(e).__name__}: {e})") from None


# -- writing -----------------------------------------------------------------------------------
# Flatbuffers are built bottom-up: every string, vector and child table of an object is written
# before the object is started.

def _table(b, kind, **fields):
    """Write one table of the schema from its fields, all already written (None: left out)."""
    getattr(fb, kind + "Start")(b)
    for field, value in fields.items():
        if value is not None:
            getattr(fb, f"{kind}Add{field}")(b, value)
    return getattr(fb, kind + "End")(b)


def _write_graph(b, g: Graph, depth):
    if depth > _MAX_DEPTH:
        raise ModelFormatError(f"graph '{g.name}': subgraphs nested deeper than {_MAX_DEPTH}")
    opset = [_table(b, "OpsetImport", Domain=b.CreateString(domain), Version=int(version))
             for domain, version in g.opset.items()]
    metadata = [_table(b, "MetadataEntry", Key=b.CreateString(key), Value=b.CreateString(value))
                for key, value in g.metadata.items()]
    return _table(b, "Graph", Name=b.CreateString(g.name), Opset=_offsets(b, opset),
                  Metadata=_offsets(b, metadata), Inputs=_strings(b, g.inputs), Outputs=_strings(b, g.outputs),
                  Values=_offsets(b, [_write_value(b, v) for v in g.values.values()]),
                  Constants=_offsets(b, [_write_constant(b, g, key, a) for key, a in g.constants.items()]),
                  Nodes=_offsets(b, [_write_node(b, g, n, depth) for n in g.nodes]))


def _write_value(b, v: Value):
    dims = params = None
    if v.shape is not None:
        dims = _numbers(b, [d if isinstance(d, _INT) else -1 for d in v.shape], "<i8")
        if any(isinstance(d, str) for d in v.shape):
            params = _strings(b, [d if isinstance(d, str) else "" for d in v.shape])
    return _table(b, "Value", Name=b.CreateString(v.name),
                  Dtype=0 if v.dtype is None else _code(v.dtype, f"value '{v.name}'"),
                  HasShape=v.shape is not None, Dims=dims, DimParams=params)


def _write_constant(b, g, name, array):
    tensor = _write_tensor(b, array, f"graph '{g.name}': constant '{name}'")
    return _table(b, "Constant", Name=b.CreateString(name), Tensor=tensor)


def _write_tensor(b, array, what):
    array = np.asarray(array)
    code = _code(array.dtype, what)
    data = strings = None
    if code == _STRING:
        items = [s if isinstance(s, bytes) else str(s) for s in array.ravel()]
        strings = _strings(b, items, errors="surrogateescape")
    else:
        data = _aligned_bytes(b, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return _table(b, "Tensor", Dtype=code, Shape=_numbers(b, array.shape, "<i8"), Data=data, Strings=strings)


def _aligned_bytes(b, raw: bytes):
    # flatc's Python code ignores the schema's force_align, so the vector is laid out here.
    b.StartVector(1, len(raw), _ALIGN)
    b.head -= len(raw)
    b.Bytes[b.head:b.head + len(raw)] = raw
    return b.EndVector()


def _write_node(b, g, n: Node, depth):
    where = f"graph '{g.name}': node '{n.name}' ({n.op})"
    attrs = [_write_attr(b, key, value, depth, f"{where} attribute '{key}'") for key, value in n.attrs.items()]
    return _table(b, "Node", Op=b.CreateString(n.op), Domain=b.CreateString(n.domain),
                  Name=b.CreateString(n.name), Inputs=_strings(b, n.inputs), Outputs=_strings(b, n.outputs),
                  Attributes=_offsets(b, attrs))


_INT = (int, np.integer)  # bool is an int
_REAL = (int, float, np.integer, np.floating)


def _write_attr(b, key, value, depth, what):
    try:
        kind, field, payload = _attr_payload(b, value, depth, what)
        return _table(b, "Attribute", Name=b.CreateString(key), Type=kind, **{field: payload})
    except (struct.error, OverflowError, TypeError, UnicodeEncodeError) as e:
        raise ModelFormatError(f"{what}: cannot store {value!r:.80}: {e}") from None


def _attr_payload(b, value, depth, what):
    """(AttributeType, the Attribute field that holds the value, what goes in that field)."""
    if isinstance(value, Graph):
        return _T.Graph, "Graph", _write_graph(b, value, depth + 1)
    if isinstance(value, np.ndarray):
        return _T.Tensor, "Tensor", _write_tensor(b, value, what)
    if isinstance(value, (bytes, bytearray)):
        return _T.Bytes, "Bytes", b.CreateByteVector(bytes(value))
    if isinstance(value, str):
        return _T.String, "S", b.CreateString(value)
    if isinstance(value, _INT):
        return _T.Int, "I", int(value)
    if isinstance(value, (float, np.floating)):
        return _T.Float, "F", float(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(x, _INT) for x in value):
            return _T.Ints, "Ints", _numbers(b, value, "<i8")
        if all(isinstance(x, _REAL) for x in value):
            return _T.Floats, "Floats", _numbers(b, value, "<f8")
        if all(isinstance(x, str) for x in value):
            return _T.Strings, "Strings", _strings(b, value)
    raise ModelFormatError(f"{what}: a .mixnn file cannot store {type(value).__name__} {value!r:.80}")


def _code(dtype, what):
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return _STRING
    try:
        return onnx_code(dtype.newbyteorder("="))
    except MixnnError:
        raise ModelFormatError(f"{what}: a .mixnn file cannot store dtype {dtype}") from None


def _numbers(b, items, dtype):
    return b.CreateNumpyVector(np.asarray(items, dtype=dtype).reshape(-1))


def _strings(b, items, errors="strict"):
    return _offsets(b, [b.CreateString(s, errors=errors) for s in items])


def _offsets(b, offs):
    b.StartVector(4, len(offs), 4)
    for off in reversed(offs):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


# -- reading -----------------------------------------------------------------------------------

def _open(src):
    if isinstance(src, (bytes, bytearray)):
        buf, source = src, "<in-memory model>"
    elif isinstance(src, memoryview):
        buf, source = src.cast("B"), "<in-memory model>"
    else:
        source = os.fspath(src)
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as e:
            raise ModelFormatError(f"{source}: cannot read model file: {e.strerror or e}") from None
    if len(buf) < 16:
        raise ModelFormatError(f"{source}: {len(buf)} bytes is too short for a .mixnn model"
                               + (" (empty file)" if not len(buf) else ""))
    if len(buf) % 4:  # a finished flatbuffer is padded to its largest alignment
        raise ModelFormatError(f"{source}: truncated .mixnn file ({len(buf)} bytes, not a multiple of 4)")
    if not fb.Model.ModelBufferHasIdentifier(buf, 0):
        raise ModelFormatError(f"{source}: not a .mixnn model (file identifier {bytes(buf[4:8])!r}, "
                               f"expected {FILE_IDENTIFIER!r})")
    return buf, source


class _CheckedTable(Table):
    """A flatbuffers Table that refuses to follow any offset out of its buffer (and reads its
    vtable once, not on every field access)."""
    __slots__ = ("vtable", "vsize", "size")

    def __init__(self, buf, pos):
        super().__init__(buf, pos)
        n = len(buf)
        _expect(0 <= pos <= n - 4, "table outside the file")
        self.vtable = pos - self.Get(N.SOffsetTFlags, pos)
        _expect(0 <= self.vtable <= n - 4, "vtable outside the file")
        self.vsize, self.size = _U16X2.unpack_from(buf, self.vtable)
        _expect(self.vsize % 2 == 0 and self.vtable + self.vsize <= n and pos + self.size <= n,
                "bad vtable")

    def Get(self, flags, off):
        return flags.packer_type.unpack_from(self.Bytes, off)[0]

    def Offset(self, slot):
        if slot >= self.vsize:
            return 0
        off = _U16.unpack_from(self.Bytes, self.vtable + slot)[0]
        _expect(off < self.size or off == 0, "field outside its table")
        return off

    def Indirect(self, off):
        target = off + _U32.unpack_from(self.Bytes, off)[0]
        _expect(target < len(self.Bytes), "reference outside the file")
        return target

    def String(self, off):
        start = self.Indirect(off)
        length = _U32.unpack_from(self.Bytes, start)[0]
        _expect(start + 4 + length < len(self.Bytes) and self.Bytes[start + 4 + length] == 0,
                "string runs past the end of the file")
        return bytes(self.Bytes[start + 4:start + 4 + length])

    def Vector(self, off):
        start = self.Indirect(off + self.Pos)
        length = _U32.unpack_from(self.Bytes, start)[0]
        _expect(start + 4 + length <= len(self.Bytes), "vector runs past the end of the file")
        return start + 4

    def VectorLen(self, off):
        return _U32.unpack_from(self.Bytes, self.Vector(off) - 4)[0]


_U16, _U32, _U16X2 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<HH")


def _expect(ok, what):
    if not ok:
        raise ModelFormatError(f"corrupt .mixnn file: {what}")


class _Reader:
    def __init__(self, buf):
        self.buf = buf
        # Every item read costs at least 4 bytes of a well-formed file; a corrupt one that
        # reuses its tables over and over (a DAG of subgraphs) runs out of budget instead of time.
        self.budget = len(buf) // 4 + 16

    def spend(self, n):
        self.budget -= n
        _expect(self.budget >= 0, "more objects than the file can hold (shared or cyclic references)")

    def table(self, obj, what):
        """The generated accessor's object, its table checked."""
        if obj is None:
            raise ModelFormatError(f"{what} is missing")
        self.spend(1)
        obj._tab = _CheckedTable(obj._tab.Bytes, obj._tab.Pos)
        return obj

    def items(self, obj, field):
        get = getattr(obj, field)
        return [self.table(get(j), field) for j in range(getattr(obj, field + "Length")())]

    def text(self, raw, errors="strict"):
        if raw is None:  # an absent string field
            return ""
        self.spend(1 + len(raw) // 4)
        return raw.decode("utf-8", errors)

    def texts(self, obj, field):
        get = getattr(obj, field)
        return [self.text(get(j)) for j in range(getattr(obj, field + "Length")())]

    def numbers(self, array):
        """A numeric vector as a numpy view (the generated code returns 0 when it is absent)."""
        if isinstance(array, int):
            return np.zeros(0, np.uint8)
        self.spend(1 + array.nbytes // 8)
        return array

    def model(self) -> Graph:
        m = self.table(fb.Model.GetRootAs(self.buf, 0), "root table")
        version = m.Version()
        if version != FORMAT_VERSION:
            raise ModelFormatError(f"format version {version} is not supported (this mixnn reads version "
                                   f"{FORMAT_VERSION}{'; upgrade mixnn' if version > FORMAT_VERSION else ''})")
        return self.graph(self.table(m.Graph(), "graph"), 0)

    def graph(self, g, depth) -> Graph:
        name = self.text(g.Name())
        _expect(depth <= _MAX_DEPTH, f"graph '{name}': subgraphs nested deeper than {_MAX_DEPTH}")
        values = {v.name: v for v in map(self.value, self.items(g, "Values"))}
        constants = {}
        for c in self.items(g, "Constants"):
            key = self.text(c.Name())
            _expect(key not in constants, f"graph '{name}': constant '{key}' stored twice")
            constants[key] = self.tensor(self.table(c.Tensor(), f"tensor of constant '{key}'"),
                                         f"graph '{name}': constant '{key}'")
        graph = Graph(name, [self.node(n, name, depth) for n in self.items(g, "Nodes")],
                      self.texts(g, "Inputs"), self.texts(g, "Outputs"), values, constants,
                      {self.text(o.Domain()): o.Version() for o in self.items(g, "Opset")},
                      {self.text(m.Key()): self.text(m.Value()) for m in self.items(g, "Metadata")})
        graph.outer_scope = depth > 0  # a subgraph may read values of the graphs around it
        return graph.toposort()

    def value(self, v) -> Value:
        name = self.text(v.Name())
        code = v.Dtype()
        shape = None
        if v.HasShape():
            shape = [d if d >= 0 else None for d in self.numbers(v.DimsAsNumpy()).tolist()]
            params = self.texts(v, "DimParams")
            _expect(len(params) in (0, len(shape)), f"value '{name}': dim_params do not match dims")
            shape = [p or d for d, p in zip(shape, params)] if params else shape
        return Value(name, self.dtype(code, f"value '{name}'") if code else None, shape)

    def node(self, n, graph_name, depth) -> Node:
        op, name = self.text(n.Op()), self.text(n.Name())
        where = f"graph '{graph_name}': node '{name}' ({op})"
        _expect(op, f"graph '{graph_name}': node '{name}' has no op")
        attrs = {}
        for a in self.items(n, "Attributes"):
            key = self.text(a.Name())
            attrs[key] = self.attr(a, depth, f"{where} attribute '{key}'")
        return Node(op, self.texts(n, "Inputs"), self.texts(n, "Outputs"), name, attrs, self.text(n.Domain()))

    def attr(self, a, depth, what):
        kind = a.Type()
        if kind == _T.Int:
            return a.I()
        if kind == _T.Float:
            return a.F()
        if kind == _T.String:
            return self.text(a.S())
        if kind == _T.Bytes:
            return self.numbers(a.BytesAsNumpy()).tobytes()
        if kind in (_T.Ints, _T.Floats):
            return self.numbers(a.IntsAsNumpy() if kind == _T.Ints else a.FloatsAsNumpy()).tolist()
        if kind == _T.Strings:
            return self.texts(a, "Strings")
        if kind == _T.Tensor:
            return self.tensor(self.table(a.Tensor(), what), what)
        if kind == _T.Graph:
            return self.graph(self.table(a.Graph(), what), depth + 1)
        raise ModelFormatError(f"{what}: unknown attribute type {kind}")

    def tensor(self, t, what) -> np.ndarray:
        code = t.Dtype()
        shape = tuple(self.numbers(t.ShapeAsNumpy()).tolist())
        _expect(all(d >= 0 for d in shape), f"{what}: negative dim in shape {shape}")
        count = math.prod(shape)
        if code == _STRING:
            _expect(t.StringsLength() == count, f"{what}: {t.StringsLength()} strings for shape {shape}")
            items = [self.text(t.Strings(j), "surrogateescape") for j in range(count)]
            return np.array(items, dtype=object).reshape(shape)
        dtype = self.dtype(code, what)
        data = self.numbers(t.DataAsNumpy())
        _expect(data.size == count * dtype.itemsize,
                f"{what}: {data.size} bytes of data for shape {shape} {dtype} "
                f"(needs {count * dtype.itemsize})")
        if dtype == np.bool_ and data.size:
            _expect(data.max() <= 1, f"{what}: bool tensor holds bytes other than 0 and 1")
        return data.view(dtype.newbyteorder("<")).reshape(shape)

    @staticmethod
    def dtype(code, what) -> np.dtype:
        try:
            return onnx_dtype(code)
        except MixnnError:
            raise ModelFormatError(f"{what}: unknown element type {code}") from None
