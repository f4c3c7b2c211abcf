"""The built-in zoo (engine/zoo.py) and the locator of real pretrained models (engine/models.py).

Zoo models are checked against onnx's checker, onnxruntime and the parameter counts torchvision
publishes for the same architectures; light models against the reference outputs the onnx wheel
ships. Those outputs do not depend on the input (the light nets' conv and Gemm weights are the
constant 0.02, so all classes tie; measured: any input gives them), so they show that a runtime
executes the graph, not that it computes the right numbers: compare with onnxruntime on a random
input for that.
"""

import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine import models, zoo
from engine.errors import MixnnError

# Trainable parameters (BN running statistics excluded) as torchvision reports them; MobileNetV1,
# absent from torchvision, as in its paper (4.2M) and Keras (4,231,976).
PUBLISHED_PARAMS = {"resnet18": 11_689_512, "mobilenet_v1": 4_231_976,
                    "mobilenet_v2": 3_504_872, "squeezenet1_1": 1_235_496}


def _session(model):
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=zoo.NAMES)
def zoo_model(request):
    return request.param, zoo.build(request.param)


def test_zoo_model_is_valid_and_deterministic(zoo_model):
    name, model = zoo_model
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert model.SerializeToString() == zoo.build(name).SerializeToString()
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert (graph_input.name, dims) == ("input", ["N", 3, "H", "W"])
    assert graph_output.name == "output"
    assert zoo.input_shape(name) == (1, 3, 224, 224)


def test_zoo_model_matches_published_architecture(zoo_model):
    name, model = zoo_model
    trainable = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                    if not t.name.endswith(("running_mean", "running_var")) and t.dims)
    assert trainable == PUBLISHED_PARAMS[name]
    ops = {n.op_type for n in model.graph.node}
    if name != "squeezenet1_1":  # exporter style: bias-free Conv, separate BN, Gemm head
        assert {"BatchNormalization", "Flatten", "Gemm"} <= ops
        assert all(len(n.input) == 2 for n in model.graph.node if n.op_type == "Conv")
    else:
        pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
        assert len(pools) == 3 and all(
            onnx.helper.get_attribute_value(a) == 1 for n in pools for a in n.attribute
            if a.name == "ceil_mode")
    if name == "mobilenet_v2":
        clips = [n for n in model.graph.node if n.op_type == "Clip"]
        assert clips and all(len(n.input) == 3 for n in clips)


def test_zoo_model_runs_with_sane_logits(zoo_model):
    name, model = zoo_model
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (logits,) = _session(model).run(None, {"input": x})
    assert logits.shape == (2, 1000)
    assert np.isfinite(logits).all()
    assert 0.1 < logits.std() < 50, f"{name}: logits std {logits.std()}"
    assert np.abs(logits[0] - logits[1]).max() > 1e-3, f"{name}: output ignores the input"


def test_zoo_path_writes_once_and_rebuilds_a_corrupt_file(tmp_path, monkeypatch):
    path = zoo.path("squeezenet1_1", cache_dir=str(tmp_path))
    assert path == str(tmp_path / "squeezenet1_1.onnx")
    assert open(path, "rb").read() == zoo.build("squeezenet1_1").SerializeToString()
    real_build = zoo.build

    def must_not_build(name):
        raise AssertionError("a valid cached model was rebuilt")

    monkeypatch.setattr(zoo, "build", must_not_build)
    assert zoo.path("squeezenet1_1", cache_dir=str(tmp_path)) == path
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"corrupt")
    monkeypatch.setattr(zoo, "build", real_build)
    zoo.path("squeezenet1_1", cache_dir=str(tmp_path))
    assert open(path, "rb").read() == real_build("squeezenet1_1").SerializeToString()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_zoo_rejects_unknown_name():
    with pytest.raises(MixnnError, match="resnet18"):
        zoo.build("resnet19")


@pytest.mark.parametrize("name", models.NAMES)
def test_real_model_is_found_and_runs(name):
    spec = models.REAL_MODELS[name]
    path = models.find(name)
    session = _session(path)
    assert session.get_inputs()[0].name == spec.input_name
    x = np.random.default_rng(0).random(spec.input_shape, dtype=np.float32)
    outputs = session.run(None, {spec.input_name: x})
    assert all(np.isfinite(o).all() for o in outputs)


def test_find_falls_back_to_models_dir_then_explains(tmp_path, monkeypatch):
    source = models.find("ppocr_cls")
    monkeypatch.setattr(models, "_package_dirs", lambda package: [])
    monkeypatch.setattr(models, "_REPO_CACHE", str(tmp_path / "absent"))
    monkeypatch.delenv("MIXNN_MODELS_DIR", raising=False)
    with pytest.raises(models.ModelNotFoundError, match="fetch_models.sh"):
        models.find("ppocr_cls")
    shutil.copy(source, tmp_path / "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    monkeypatch.setenv("MIXNN_MODELS_DIR", str(tmp_path))
    assert models.find("ppocr_cls") == str(tmp_path / "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    with pytest.raises(models.ModelNotFoundError, match="known: ppocr_det"):
        models.find("yolo")


LIGHT = models.light_models()


@pytest.mark.parametrize("light", LIGHT, ids=[m.name for m in LIGHT])
def test_light_model_reference_outputs_match_onnxruntime(light):
    outputs = _session(light.path).run(None, light.inputs)
    assert len(outputs) == len(light.outputs)
    for got, expected in zip(outputs, light.outputs):
        # onnx's own runner compares these with rtol 1e-3 (2e-3 for densenet121), atol 1e-7.
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-7)


def test_light_models_are_all_there():
    assert {m.name for m in LIGHT} >= {"bvlc_alexnet", "densenet121", "inception_v1",
                                       "inception_v2", "resnet50", "shufflenet", "squeezenet",
                                       "vgg19", "zfnet512"}
