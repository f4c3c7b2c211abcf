"""Whole models on the CPU backend against onnxruntime (DESIGN §8 tolerance), directly from
ONNX and after the .onnx -> .mixnn -> load round trip (bit-identical to the direct path)."""
import numpy as np
import onnx
import pytest

import engine
from engine import models, zoo
from tests.oracle import assert_close, ort_run

REAL_SHAPES = {"ppocr_det": [(1, 3, 96, 128), (1, 3, 64, 96)], "ppocr_rec": [(1, 3, 48, 160)],
               "ppocr_cls": [(1, 3, 48, 192)], "nudenet": [(1, 3, 320, 320)]}


def image_like(shape, seed=0):
    """Normalized-image statistics, so detectors produce non-trivial maps."""
    rng = np.random.default_rng(seed)
    return ((rng.random(shape) - 0.5) / 0.25).astype(np.float32)


def _path(name):
    return zoo.path(name) if name in zoo.NAMES else models.find(name)


def _check(name, tmp_path, shapes):
    path = _path(name)
    direct = engine.InferenceSession(path)
    tmp = tmp_path / f"{name}.mixnn"
    engine.load(path).save(str(tmp))
    loaded = engine.InferenceSession(str(tmp))
    inp = direct.get_inputs()[0].name
    proto = onnx.load(path)
    for shape in shapes:
        feed = {inp: image_like(shape)}
        got = direct.run(None, feed)
        for g, r, o in zip(got, ort_run(proto, feed), direct.graph.outputs):
            assert_close(g, r, what=f"{name} {shape} {o}")
        for a, b in zip(got, loaded.run(None, feed)):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), "round trip is not bit-identical"
    return direct


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_matches_onnxruntime(name, tmp_path):
    _check(name, tmp_path, [(1, 3, 224, 224)])


@pytest.mark.parametrize("name", sorted(REAL_SHAPES))
def test_real_model_matches_onnxruntime(name, tmp_path):
    sess = _check(name, tmp_path, REAL_SHAPES[name])
    if name == "ppocr_det":  # two input sizes in one session
        assert sess.replans == 2


@pytest.mark.parametrize("light", models.light_models(), ids=lambda m: m.name)
def test_light_model(light):
    sess = engine.InferenceSession(light.path)
    got = sess.run(None, light.inputs)
    for g, ref in zip(got, light.outputs):
        assert_close(g, ref, what=f"{light.name} vs shipped output")
    # The shipped reference does not depend on the input (constant weights), so also compare
    # with onnxruntime on a random input.
    feed = {k: np.random.default_rng(1).standard_normal(v.shape).astype(v.dtype) for k, v in light.inputs.items()}
    for g, ref in zip(sess.run(None, feed), ort_run(onnx.load(light.path), feed)):
        assert_close(g, ref, what=f"{light.name} vs onnxruntime")


def test_mixnn_weights_are_views_into_the_file(tmp_path):
    path = tmp_path / "resnet18.mixnn"
    engine.load(zoo.path("resnet18")).save(str(path))
    model = engine.load(str(path))
    big = [a for a in model.graph.constants.values() if a.nbytes >= 1024]
    assert len(big) > 20
    for a in big:
        assert not a.flags.owndata and not a.flags.writeable
        base = a
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        assert not isinstance(base, np.ndarray), "weights were copied out of the file buffer"
        assert a.ctypes.data % 64 == 0, "weights are not 64-byte aligned in the file"
