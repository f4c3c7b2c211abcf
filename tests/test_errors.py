"""Bad input gets its MixnnError subclass with a message naming the tensor/node (DESIGN §2)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import engine
from engine import zoo
from engine.errors import InputError, ModelFormatError, UnsupportedOpError


@pytest.fixture(scope="module")
def squeeze_mixnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "squeezenet.mixnn"
    engine.load(zoo.path("squeezenet1_1")).save(str(path))
    return path


@pytest.fixture(scope="module")
def sess(squeeze_mixnn):
    return engine.InferenceSession(str(squeeze_mixnn))


def test_truncated_mixnn(squeeze_mixnn, tmp_path):
    data = squeeze_mixnn.read_bytes()
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.mixnn"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError):
            engine.InferenceSession(str(bad))


def test_random_bytes(tmp_path):
    bad = tmp_path / "random.mixnn"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFormatError):
        engine.load(str(bad))


def test_future_version(squeeze_mixnn, tmp_path, monkeypatch):
    from engine import modelfile
    graph = engine.load(str(squeeze_mixnn)).graph
    with monkeypatch.context() as m:  # a file written by a future mixnn
        m.setattr(modelfile, "FORMAT_VERSION", modelfile.FORMAT_VERSION + 1)
        data = modelfile.save(graph)
    bad = tmp_path / "future.mixnn"
    bad.write_bytes(data)
    with pytest.raises(ModelFormatError, match="version"):
        engine.load(str(bad))


def test_unknown_onnx_op():
    node = helper.make_node("FancyOp", ["x"], ["y"], name="fancy1")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match=r"node 'fancy1' uses op FancyOp.*opset 17"):
        engine.load(model)


def test_missing_onnx_file():
    with pytest.raises(ModelFormatError, match="does not exist"):
        engine.load("/nonexistent/model.onnx")


x = np.zeros((1, 3, 224, 224), np.float32)


def test_wrong_input_name(sess):
    with pytest.raises(InputError, match=r"unknown input\(s\) \['images'\].*\['input'\]"):
        sess.run(None, {"images": x})


def test_wrong_dtype(sess):
    with pytest.raises(InputError, match="input 'input': dtype float64, expected float32"):
        sess.run(None, {"input": x.astype(np.float64)})


def test_wrong_rank(sess):
    with pytest.raises(InputError, match="input 'input': rank 3"):
        sess.run(None, {"input": x[0]})


def test_wrong_static_dim(sess):
    with pytest.raises(InputError, match=r"input 'input': dim 1 is 4, expected 3"):
        sess.run(None, {"input": np.zeros((1, 4, 224, 224), np.float32)})


def test_nan_passes_through_as_ieee_says(sess):
    y = x.copy()
    y[0, 0, 0, 0] = np.nan
    out = sess.run(None, {"input": y})[0]
    assert np.isnan(out).any()


def test_unknown_output_name(sess):
    with pytest.raises(InputError, match="unknown output"):
        sess.run(["nope"], {"input": x})
