"""The mixnn command line on each zoo model and on PP-OCRv4 det."""
import subprocess
import sys

import numpy as np
import pytest

from engine import models, zoo
from engine.cli import main

MODELS = list(zoo.NAMES) + ["ppocr_det"]
SHAPE = {"ppocr_det": "x=1x3x64x96"}


def _path(name):
    return zoo.path(name) if name in zoo.NAMES else models.find(name)


def _shape_args(name):
    return ["--shape", SHAPE.get(name, "input=1x3x96x96")]


@pytest.mark.parametrize("name", MODELS)
def test_convert_info_run_check(name, tmp_path, capsys):
    out = tmp_path / f"{name}.mixnn"
    assert main(["convert", _path(name), str(out)]) == 0
    text = capsys.readouterr().out
    assert "fold_batchnorm" in text and f"-> {out}" in text
    assert main(["info", str(out), "--memory"] + _shape_args(name)) == 0
    text = capsys.readouterr().out
    assert "FLOPs at" in text and "ops: Conv" in text and "params:" in text
    assert "memory[cpu]: arena" in text and "naive/arena" in text
    assert "backend support" in text
    assert main(["run", _path(name), "--check"] + _shape_args(name)) == 0
    text = capsys.readouterr().out
    assert "check vs onnxruntime" in text and "DIFFERS" not in text
    npy = tmp_path / "x.npy"
    inp = "x" if name == "ppocr_det" else "input"
    np.save(npy, np.ones((1, 3, 64, 64), np.float32))
    assert main(["run", str(out), "--input", f"{inp}={npy}", "--runs", "2", "--profile",
                 "--output", str(tmp_path / "o.npz")]) == 0
    text = capsys.readouterr().out
    assert "median" in text and "total" in text
    assert np.load(tmp_path / "o.npz")


def test_backends_command_lists_every_backend():
    res = subprocess.run([sys.executable, "-m", "engine.cli", "backends"], capture_output=True, text=True)
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert set(names) >= {"cpu", "opencl", "vulkan", "gl"}


def test_bad_model_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.mixnn"
    bad.write_bytes(b"not a model at all")
    assert main(["info", str(bad)]) == 2
    assert "ModelFormatError" in capsys.readouterr().err
