"""Where the real pretrained ONNX models used by tests and benchmarks are found, offline.

They ship inside pip wheels: PP-OCRv4 det/rec and the PP-OCR direction classifier in
rapidocr-onnxruntime, a YOLOv8n detector in nudenet, and the "light" classic nets with their
reference outputs in onnx itself. The wheels of the first two are never installed (rapidocr pulls
opencv); tools/fetch_models.sh downloads them and unpacks only their .onnx files into
.cache/models/. A package's own files are found with importlib.util.find_spec, which locates
a package without importing it.
"""

import glob
import importlib.util
import os
from typing import NamedTuple

from engine.errors import MixnnError

_REPO_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           ".cache", "models")


class RealModel(NamedTuple):
    package: str        # the wheel's import package that carries the file
    member: str         # the file inside that package
    input_name: str
    input_shape: tuple  # a typical feed: what the package's own pipeline sends
    about: str


_RAPIDOCR = "rapidocr_onnxruntime"
REAL_MODELS = {
    "ppocr_det": RealModel(_RAPIDOCR, "models/ch_PP-OCRv4_det_infer.onnx", "x", (1, 3, 640, 640),
                           "PP-OCRv4 text detector (DBNet): N,3,H,W with H,W multiples of 32"),
    "ppocr_rec": RealModel(_RAPIDOCR, "models/ch_PP-OCRv4_rec_infer.onnx", "x", (1, 3, 48, 320),
                           "PP-OCRv4 text recogniser (SVTR): N,3,48,W -> N,W/8,6625"),
    "ppocr_cls": RealModel(_RAPIDOCR, "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "x",
                           (1, 3, 48, 192), "PP-OCR text direction classifier: N,3,48,192 -> N,2"),
    "nudenet": RealModel("nudenet", "320n.onnx", "images", (1, 3, 320, 320),
                         "YOLOv8n detector: N,3,320,320 -> N,22,2100"),
}
NAMES = tuple(REAL_MODELS)


class ModelNotFoundError(MixnnError, FileNotFoundError):
    """A real test model is not on this machine."""


class LightModel(NamedTuple):
    name: str
    path: str
    inputs: dict    # input name -> np.ndarray, as onnx's backend test runner builds it
    outputs: list   # the reference outputs shipped beside the model, in graph output order


def find(name):
    """Path of the real model `name` (see NAMES), searched in: the installed package,
    the repository's .cache/models/, then $MIXNN_MODELS_DIR."""
    if name not in REAL_MODELS:
        raise ModelNotFoundError(f"unknown real model {name!r}; known: {', '.join(NAMES)}")
    spec = REAL_MODELS[name]
    candidates = [os.path.join(d, spec.member) for d in _package_dirs(spec.package)]
    file_name = os.path.basename(spec.member)
    candidates.append(os.path.join(_REPO_CACHE, file_name))
    if os.environ.get("MIXNN_MODELS_DIR"):
        candidates.append(os.path.join(os.environ["MIXNN_MODELS_DIR"], file_name))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise ModelNotFoundError(
        f"model {name!r} ({file_name}, from the {spec.package} wheel) not found; looked in: "
        + ", ".join(candidates)
        + ". Run `bash tools/fetch_models.sh` (`make test` runs it) to download it into "
        ".cache/models/, or set MIXNN_MODELS_DIR to a folder that holds it.")


def light_models():
    """The onnx wheel's light_*.onnx nets, with the input its test runner feeds them and the
    output it expects.

    onnx.backend.test.runner (generate_dummy_data, random=False) feeds each non-initializer
    input `arange(n).reshape(shape) / n` as float32, with any unknown dim taken as 1, and
    compares with light_<name>_output_<i>.pb. Their conv and Gemm weights are the constant 0.02
    (ConstantOfShape), so their outputs do not depend on the input: the reference outputs show
    that a graph runs, while numbers are best checked against onnxruntime on a random input.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    light_dir = os.path.join(_package_dirs("onnx")[0], "backend", "test", "data", "light")
    found = []
    for path in sorted(glob.glob(os.path.join(light_dir, "light_*.onnx"))):
        model = onnx.load(path)
        initializers = {t.name for t in model.graph.initializer}
        inputs = {}
        for value in model.graph.input:
            if value.name in initializers:
                continue
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                          for d in value.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            inputs[value.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
        stem = path[:-len(".onnx")]
        outputs = [numpy_helper.to_array(onnx.load_tensor(f"{stem}_output_{i}.pb"))
                   for i in range(len(model.graph.output))]
        name = os.path.basename(stem)[len("light_"):]
        found.append(LightModel(name, path, inputs, outputs))
    return found


def _package_dirs(package):
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    return list(spec.submodule_search_locations or []) if spec else []
