"""The inference core (edgeclf.runtime.inference, edgeclf.train.inference): softmax, top-k, the
onnxruntime session factory, fork safety, and the one eager-inference helper."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import SAMPLE_DATA
from edgeclf.runtime import Predictor
from edgeclf.runtime.errors import ArtifactError, ProviderError, UsageError
from edgeclf.runtime.inference import OrtSession, Prediction, softmax, top_k, top_k_predictions

SAMPLE = sorted(SAMPLE_DATA.glob("*/*.jpg"))


def test_softmax_float64_stable_for_huge_logits():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], np.float32))
    assert p.dtype == np.float64 and p.shape == (2, 3)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0], atol=0)
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-15)
    np.testing.assert_allclose(softmax(np.array([1.0, 2.0])), [0.2689414213699951, 0.7310585786300049], rtol=1e-15)


def test_top_k_ties_go_to_the_lower_index_and_k_is_capped():
    scores = np.array([[0.5, 2.0, 2.0, -1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    assert top_k(scores, 3).tolist() == [[1, 2, 0], [0, 1, 2]]
    assert top_k(scores, 10).shape == (2, 4)
    assert top_k(scores[0], 2).tolist() == [1, 2]
    assert top_k(scores, 1).dtype == np.int64
    # the same order on logits and on their probabilities
    assert top_k(softmax(scores), 4).tolist() == top_k(scores, 4).tolist()


def test_top_k_predictions_labels_and_floats():
    probs = softmax(np.array([0.0, 3.0, 3.0]))
    preds = top_k_predictions(probs, 2, ("a", "b", "c"))
    assert preds == [Prediction("b", 1, float(probs[1])), Prediction("c", 2, float(probs[2]))]
    assert all(type(p.probability) is float and type(p.index) is int for p in preds)


def test_session_factory_options_and_output(tiny_artifact):
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)
    on = OrtSession(tiny_artifact.onnx_path, intra_op_threads=1, inter_op_threads=1)
    off = OrtSession(tiny_artifact.onnx_path, graph_optimization="off", log_severity=4)
    assert on.providers == ["CPUExecutionProvider"] and on.device == "cpu" and on.device_note is None
    assert (on.input_name, on.output_name, on.input_dtype, on.fixed_batch) == ("input", "logits", np.float32, None)
    got = on.run(x)
    assert got.dtype == np.float32 and got.shape == (3, 9)
    np.testing.assert_allclose(got, off.run(x), atol=1e-5)
    expected = tiny_artifact.torch_probs(x)
    np.testing.assert_allclose(softmax(got), expected, atol=1e-6)
    assert on.run(x[:0]).shape == (0, 9)
    assert on.metadata["arch"] == tiny_artifact.info.arch


@pytest.mark.parametrize("kwargs, match", [
    ({"graph_optimization": "max"}, "graph_optimization='max': use one of off, basic, extended, all"),
    ({"intra_op_threads": 0}, "intra_op_threads=0"),
    ({"inter_op_threads": 1.5}, "inter_op_threads=1.5"),
    ({"log_severity": 7}, "log_severity=7"),
    ({"device": "tpu"}, "device='tpu'"),
])
def test_session_factory_rejects_bad_settings(tiny_artifact, kwargs, match):
    with pytest.raises(UsageError, match=match):
        OrtSession(tiny_artifact.onnx_path, **kwargs)


def test_session_factory_names_the_file_it_cannot_load(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match=r"broken\.onnx: onnxruntime cannot load it") as err:
        OrtSession(bad)
    assert "\n" not in str(err.value)


def test_session_factory_refuses_a_provider_the_build_lacks(tiny_artifact):
    with pytest.raises(ProviderError, match="NoSuchExecutionProvider"):
        OrtSession(tiny_artifact.onnx_path, providers=["NoSuchExecutionProvider"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_predictor_made_before_fork_predicts_in_the_child(tiny_artifact):
    predictor = Predictor(tiny_artifact.dir, device="cpu")
    expected = [(p.label, p.index, round(p.probability, 6)) for p in predictor.predict(SAMPLE[0])]
    parent_session = predictor.session
    pid = os.fork()
    if pid == 0:  # child: its own session, the same answers; exit without running pytest's teardown
        code = 1
        try:
            got = [(p.label, p.index, round(p.probability, 6)) for p in predictor.predict(SAMPLE[0])]
            code = 0 if got == expected and predictor.session is not parent_session else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish predicting within 60 s")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert predictor.session is parent_session  # the parent keeps its session
    assert [(p.label, p.index, round(p.probability, 6)) for p in predictor.predict(SAMPLE[0])] == expected


def test_eager_logits_array_batches_and_loader_tuples_agree(tiny_artifact):
    import torch

    from edgeclf.train.inference import eager_logits

    x = np.random.default_rng(1).standard_normal((5, 3, 224, 224), dtype=np.float32)
    whole = eager_logits(tiny_artifact.model, x)
    assert whole.dtype == np.float32 and whole.shape == (5, 9)
    np.testing.assert_allclose(softmax(whole), tiny_artifact.torch_probs(x), atol=1e-6)
    np.testing.assert_allclose(eager_logits(tiny_artifact.model, x, batch_size=2), whole, atol=1e-5)
    loader = [(torch.from_numpy(x[:3]), torch.zeros(3)), (torch.from_numpy(x[3:]), torch.zeros(2))]
    np.testing.assert_allclose(eager_logits(tiny_artifact.model, loader, "cpu", channels_last=True), whole, atol=1e-5)
    assert eager_logits(tiny_artifact.model, []).shape == (0, 0)
    with pytest.raises(UsageError, match="batch_size=0"):
        eager_logits(tiny_artifact.model, x, batch_size=0)
