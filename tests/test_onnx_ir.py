"""ONNX IR versions: exported files load in the oldest onnxruntime the package declares (1.17, IR <= 9),
and a file that onnxruntime refuses gets an error naming its IR version, opset and the installed
onnxruntime."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _tiny_artifact import CLASS_NAMES, build_model, write_onnx
from conftest import REPO_ROOT, SAMPLE_DATA
from edgeclf.runtime.artifact import ModelInfo
from edgeclf.runtime.errors import ArtifactError
from edgeclf.runtime.preprocess import PreprocessConfig

INFO = ModelInfo(class_names=CLASS_NAMES, preprocess=PreprocessConfig(crop_size=32, resize_size=36),
                 arch="tiny-test", source_checkpoint_sha256="0" * 64)
IMAGES = [SAMPLE_DATA / "camera" / "image_0001.jpg", SAMPLE_DATA / "watch" / "image_0001.jpg"]


def _relu_model(opset: int, ir_version: int):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


@pytest.mark.parametrize("opset, expected", [(17, 8), (18, 8), (19, 9), (20, 9), (21, 10)])
def test_save_stamps_the_lowest_ir_version_the_opset_needs(tmp_path, opset, expected):
    import onnx

    from edgeclf.export.onnx import save

    path = save(_relu_model(opset, onnx.IR_VERSION), tmp_path / "m.onnx")
    assert onnx.load(str(path)).ir_version == expected


def test_load_error_names_ir_opset_and_onnxruntime_version(tmp_path):
    import onnxruntime as ort

    from edgeclf.runtime import Predictor

    proto = _relu_model(17, 99)
    path = write_onnx(tmp_path / "model.onnx", proto.SerializeToString(), INFO.to_metadata())
    with pytest.raises(ArtifactError) as info:
        Predictor(path, device="cpu")
    text = str(info.value)
    assert text.startswith(f"{path}: onnxruntime cannot load it (") and "\n" not in text
    assert text.endswith(f"; model: ONNX IR version 99, opset 17, onnxruntime {ort.__version__} installed)")


OLD_ORT = "1.17.*"


def _declared_minimum() -> str:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    return re.search(r'"onnxruntime(?:-gpu)?>=([\d.]+);', text).group(1)


@pytest.mark.slow
def test_exported_artifact_predicts_in_the_oldest_declared_onnxruntime(tmp_path):
    """A throwaway venv with onnxruntime 1.17 (the declared minimum), numpy<2 and edgeclf without
    its dependencies: it predicts with a freshly exported artifact exactly as the current runtime
    does; the same file stamped IR 10 (what onnx >= 1.16 writes) is refused there with a message
    naming IR 10, opset 18 and onnxruntime 1.17."""
    import torch

    from edgeclf.export.onnx import export_onnx
    from edgeclf.runtime import Predictor

    assert _declared_minimum() == "1.17"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = subprocess.run(pip + [f"onnxruntime=={OLD_ORT}", "numpy<2", "pillow", "requests"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot install onnxruntime=={OLD_ORT} from the package index: {r.stderr.strip()[-300:]}")
    r = subprocess.run(pip + ["--no-deps", "--no-build-isolation", str(REPO_ROOT)], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:  # no setuptools in the venv: build with isolation instead
        r = subprocess.run(pip + ["--no-deps", str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]

    model = build_model(len(CLASS_NAMES)).eval()
    example = torch.zeros(2, 3, 32, 32)
    art = export_onnx(model, example, tmp_path / "model.onnx", 18, INFO.to_metadata(), len(CLASS_NAMES), 32)
    stale = tmp_path / "stale" / "model.onnx"
    import onnx

    proto = onnx.load(str(art))
    assert proto.ir_version == 8
    proto.ir_version = 10
    stale.parent.mkdir()
    onnx.save(proto, str(stale))

    here = Predictor(art, device="cpu").predict_batch([str(p) for p in IMAGES], top_k=3)
    code = (
        "import json, sys, onnxruntime\n"
        "from edgeclf.runtime import Predictor\n"
        "from edgeclf.runtime.errors import ArtifactError\n"
        "p = Predictor(sys.argv[1], device='cpu')\n"
        "out = [[q.to_dict() for q in r] for r in p.predict_batch(sys.argv[3:], top_k=3)]\n"
        "try:\n"
        "    Predictor(sys.argv[2], device='cpu')\n"
        "    err = None\n"
        "except ArtifactError as e:\n"
        "    err = str(e)\n"
        "print(json.dumps({'ort': onnxruntime.__version__, 'predictions': out, 'error': err}))\n"
    )
    r = subprocess.run([str(py), "-c", code, str(art), str(stale), *map(str, IMAGES)], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got["ort"].startswith("1.17.")
    assert [[q["label"] for q in row] for row in got["predictions"]] == [[q.label for q in row] for row in here]
    assert np.allclose([[q["probability"] for q in row] for row in got["predictions"]],
                       [[q.probability for q in row] for row in here], atol=1e-5)
    assert "Unsupported model IR version: 10" in got["error"]
    assert got["error"].endswith(f"model: ONNX IR version 10, opset 18, onnxruntime {got['ort']} installed)")
