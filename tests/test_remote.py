"""RemotePredictor against a real `edgeclf serve`: same Predictions as the local Predictor."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _serve_server import tiny_server  # noqa: F401
from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import NINE_CLASSES, SAMPLE_DATA

from edgeclf.runtime import InvalidImageError, Predictor, RemoteError, RemotePredictor

IMAGES = [SAMPLE_DATA / c / "image_0001.jpg" for c in NINE_CLASSES]


@pytest.fixture(scope="module")
def local(tiny_artifact):  # noqa: F811
    return Predictor(tiny_artifact.dir, device="cpu", intra_op_threads=1)


def assert_equal_predictions(got, expected):
    assert [(p.label, p.index) for p in got] == [(p.label, p.index) for p in expected]
    np.testing.assert_allclose([p.probability for p in got], [p.probability for p in expected], atol=1e-6, rtol=0)


@pytest.mark.parametrize("scheme", ["", "http://", "grpc://"])
def test_remote_predictor_equals_local_over_http_and_grpc(tiny_server, local, scheme):  # noqa: F811
    address = tiny_server.grpc_address if scheme == "grpc://" else tiny_server.http_address
    remote = RemotePredictor(scheme + address)
    assert remote.mode == "image"
    if scheme != "grpc://":
        assert remote.class_names == tuple(NINE_CLASSES)
    assert_equal_predictions(remote.predict(IMAGES[0]), local.predict(IMAGES[0]))
    for got, exp in zip(remote.predict_batch(IMAGES, top_k=4, batch_size=4), local.predict_batch(IMAGES, top_k=4)):
        assert_equal_predictions(got, exp)
    # bytes, a file object and a PIL image are accepted like the local Predictor accepts them
    data = IMAGES[1].read_bytes()
    assert_equal_predictions(remote.predict(data), local.predict(data))
    assert_equal_predictions(remote.predict(io.BytesIO(data)), local.predict(data))
    pil = Image.open(IMAGES[2]).convert("RGB")
    assert_equal_predictions(remote.predict(pil), local.predict(pil))


def test_remote_bad_inputs_are_per_image_errors(tiny_server, local, tmp_path):  # noqa: F811
    remote = RemotePredictor(tiny_server.http_address)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    out = remote.predict_batch([IMAGES[0], text, b"GIF89a broken", IMAGES[3]], on_error="return")
    assert_equal_predictions(out[0], local.predict(IMAGES[0]))
    assert_equal_predictions(out[3], local.predict(IMAGES[3]))
    assert isinstance(out[1], InvalidImageError) and "not an image" in str(out[1])
    assert isinstance(out[2], InvalidImageError) and "images[2]" in str(out[2])
    with pytest.raises(InvalidImageError, match="images\\[1\\]"):
        remote.predict_batch([IMAGES[0], b"junk"])


def test_tensor_mode_as_used_against_triton(tiny_server, local):  # noqa: F811
    # Against Triton the client preprocesses and sends "input" FP32; our server accepts it too
    # (one image per request: 0.6 MB, under the 1 MiB limit of the test server).
    remote = RemotePredictor(tiny_server.http_address)
    remote.mode, remote.preprocess_config = "tensor", local.preprocess_config
    for got, exp in zip(remote.predict_batch(IMAGES[:4], top_k=3, batch_size=1), local.predict_batch(IMAGES[:4], top_k=3)):
        assert_equal_predictions(got, exp)


def test_unknown_model_and_unreachable_server(tiny_server):  # noqa: F811
    with pytest.raises(RemoteError, match="nope"):
        RemotePredictor(tiny_server.http_address, model_name="nope")
    with pytest.raises(RemoteError):
        RemotePredictor("127.0.0.1:9", timeout_s=2)
    from edgeclf.runtime import UsageError

    with pytest.raises(UsageError, match="url="):
        RemotePredictor("ftp://host:1")


def test_without_tritonclient_a_one_line_usage_error(monkeypatch):
    import sys

    from edgeclf.runtime import RemotePredictor
    from edgeclf.runtime.errors import UsageError

    monkeypatch.setitem(sys.modules, "tritonclient.utils", None)  # as on a base install
    with pytest.raises(UsageError, match=r"^RemotePredictor needs tritonclient: pip install 'edgeclf\[client\]'$"):
        RemotePredictor("127.0.0.1:9")
