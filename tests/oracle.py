"""Test helpers: independent references (onnxruntime, the CPU backend) and the tolerance rule."""
import numpy as np


def tolerance(ref, scale=1e-4):
    """DESIGN §8: max abs diff <= 1e-4 * max(1, max|ref|)."""
    ref = np.asarray(ref)
    peak = float(np.max(np.abs(ref))) if ref.size and ref.dtype.kind == "f" else 0.0
    return scale * max(1.0, peak)


def assert_close(got, ref, scale=1e-4, what=""):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if ref.dtype.kind in "biu":
        assert np.array_equal(got, ref), f"{what}: integer/bool results differ"
        return
    diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
    assert diff <= tolerance(ref, scale), f"{what}: max abs diff {diff:.3g} > {tolerance(ref, scale):.3g}"


def ort_run(model, feed):
    import onnxruntime as ort
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def single_node_model(op, inputs, outputs=("y",), attrs=None, consts=None, opset=18):
    """An ONNX model of one node. inputs: {name: array} fed at run; consts: {name: array}
    become initializers; the node reads inputs then consts in the given `order` of dict keys."""
    from onnx import helper, numpy_helper, TensorProto
    from engine.onnx_types import onnx_code
    consts = consts or {}
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, list(outputs), **(attrs or {}))
    graph = helper.make_graph(
        [node], f"single_{op}",
        [helper.make_tensor_value_info(k, onnx_code(v.dtype), v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


class Feed:
    """An input fed at run time (a bare array given to one_node is a constant of the graph)."""

    def __init__(self, array):
        self.array = np.asarray(array)


def rand(*shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def one_node(op, ins, attrs=None, n_out=1):
    """A one-node model named "node": ins are Feed (graph inputs), arrays (constants) or None."""
    from engine.ir import Graph, Node, Value
    from engine.model import Model
    g = Graph(f"one_{op}")
    names, feed = [], {}
    for k, v in enumerate(ins):
        if v is None:
            names.append("")
        elif isinstance(v, Feed):
            names.append(f"in{k}")
            g.inputs.append(f"in{k}")
            g.values[f"in{k}"] = Value(f"in{k}", v.array.dtype, v.array.shape)
            feed[f"in{k}"] = v.array
        else:
            names.append(g.add_constant(f"const{k}", np.asarray(v)))
    g.outputs = [f"out{k}" for k in range(n_out)]
    g.nodes = [Node(op, names, list(g.outputs), "node", dict(attrs or {}))]
    return Model(g), feed


def check_against_cpu(backend, op, ins, attrs=None, n_out=1, scale=1e-4):
    """Run one node on `backend` and on the CPU backend; it must have run on `backend`."""
    import engine
    model, feed = one_node(op, ins, attrs, n_out)
    sess = engine.InferenceSession(model, backend=backend)
    got = sess.run(None, feed)
    assert sess.placement()["node"]["backend"] == backend, sess.placement()["node"]
    ref = engine.InferenceSession(model, backend="cpu").run(None, feed)
    for a, b in zip(got, ref):
        assert_close(a, b, scale, what=f"{op} {attrs}")
    return sess
