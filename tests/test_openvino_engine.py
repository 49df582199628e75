"""engine="openvino": the same ONNX file through OpenVINO gives the onnxruntime answers within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import SAMPLE_DATA
from edgeclf.runtime import Predictor
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.openvino_engine import openvino_version
from edgeclf.runtime.predictor import softmax

needs_openvino = pytest.mark.skipif(openvino_version() is None,
                                    reason="openvino not installed (pip install 'edgeclf[openvino]')")


@needs_openvino
def test_openvino_matches_onnxruntime_fp32(tiny_artifact):
    ort = Predictor(tiny_artifact.dir, device="cpu")
    ov = Predictor(tiny_artifact.dir, engine="openvino", intra_op_threads=1)
    assert ov.engine == "openvino" and ov.session is None and ov.device == "cpu"
    assert ov.providers[0].startswith("OpenVINO-CPU") and ov.info == ort.info
    paths = sorted(SAMPLE_DATA.rglob("*.jpg"))[::8]
    x = np.stack([ort.prepare(p) for p in paths])  # (27, 3, 224, 224)
    p_ort, p_ov = softmax(ort.logits(x)), softmax(ov.logits(x))
    assert np.abs(p_ort - p_ov).max() <= 1e-4
    assert (p_ort.argmax(1) == p_ov.argmax(1)).all()
    assert np.abs(softmax(ov.logits(x[:1])) - p_ort[:1]).max() <= 1e-4  # another batch size
    a = ov.predict_batch(paths, top_k=3)
    b = ort.predict_batch(paths, top_k=3)
    assert [[q.label for q in r] for r in a] == [[q.label for q in r] for r in b]
    assert max(abs(q.probability - r.probability) for x, y in zip(a, b) for q, r in zip(x, y)) <= 1e-4


@needs_openvino
def test_openvino_is_cpu_only(tiny_artifact):
    with pytest.raises(UsageError, match="engine='openvino' runs on the CPU"):
        Predictor(tiny_artifact.dir, engine="openvino", device="cuda")


def test_unknown_engine(tiny_artifact):
    with pytest.raises(UsageError, match="engine='tensorrt': use one of onnxruntime, openvino"):
        Predictor(tiny_artifact.dir, engine="tensorrt")
