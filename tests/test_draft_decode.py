"""decode="draft": JPEG DCT downscaling, carried checkpoint → artifact → runtime, refused when mismatched."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from _tiny_artifact import build_tiny_artifact
from conftest import SAMPLE_DATA, make_image
from edgeclf.runtime import Predictor
from edgeclf.runtime.artifact import ModelInfo
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, decode_size, preprocess

DRAFT = PreprocessConfig(decode="draft")


def _big_jpeg(size=(2000, 1500)) -> bytes:
    """A real sample photo upscaled to ``size``, as JPEG bytes."""
    img = load_image(sorted(SAMPLE_DATA.rglob("*.jpg"))[0]).resize(size, Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_draft_decodes_at_the_smallest_scale_covering_the_resize():
    data = _big_jpeg()
    assert load_image(data).size == (2000, 1500)
    # 1500 // 256 = 5 → libjpeg scale 1/4 (1/8 would give 188 < 256)
    assert load_image(data, draft_to=256).size == (500, 375)
    assert load_image(data, draft_to=200).size == (500, 375)  # 1500 // 200 = 7 → 1/4; 1/8: 188 < 200
    assert load_image(data, draft_to=180).size == (250, 188)  # 1500 // 180 = 8 → 1/8
    assert load_image(data, draft_to=1000).size == (2000, 1500)  # less than 2x: full decode
    assert decode_size(DRAFT) == 256 and decode_size(PreprocessConfig()) is None


def test_draft_leaves_other_formats_alone(tmp_path):
    png = make_image(tmp_path / "a.png", seed=1, size=(900, 700), fmt="PNG")
    assert load_image(png, draft_to=256).size == (900, 700)


def test_draft_input_is_close_to_exact_and_exact_is_unchanged():
    data = _big_jpeg()
    exact = preprocess(load_image(data), PreprocessConfig())
    draft = preprocess(load_image(data, draft_to=256), DRAFT)
    assert exact.shape == draft.shape == (3, 224, 224)
    assert 0 < np.abs(exact - draft).mean() < 0.05  # different pixels, same picture


def test_decode_travels_in_config_and_metadata():
    assert PreprocessConfig.from_dict(DRAFT.to_dict()) == DRAFT
    old = {k: v for k, v in PreprocessConfig().to_dict().items() if k != "decode"}
    assert PreprocessConfig.from_dict(old).decode == "exact"  # files written before the option
    with pytest.raises(UsageError, match="decode='fast'"):
        PreprocessConfig(decode="fast")
    info = ModelInfo(class_names=("a", "b"), preprocess=DRAFT, arch="x", source_checkpoint_sha256="0" * 64)
    meta = info.to_metadata()
    assert meta["decode"] == "draft" and ModelInfo.from_metadata(meta, "m").preprocess == DRAFT
    del meta["decode"]
    assert ModelInfo.from_metadata(meta, "m").preprocess.decode == "exact"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("draft")
    return (build_tiny_artifact(root / "exact"), build_tiny_artifact(root / "draft", preprocess=DRAFT))


def test_runtime_uses_the_models_decode_and_refuses_a_mismatch(artifacts):
    exact_art, draft_art = artifacts
    data = _big_jpeg()
    p = Predictor(draft_art.dir, device="cpu")
    assert p.preprocess_config.decode == "draft" and not p.decode_overridden
    expected = draft_art.torch_probs(preprocess(load_image(data, draft_to=256), DRAFT)[None])[0]
    got = p.predict(data, top_k=9)
    assert np.allclose([g.probability for g in sorted(got, key=lambda g: g.index)], expected, atol=1e-5)

    for art, other in ((exact_art, "draft"), (draft_art, "exact")):
        with pytest.raises(UsageError, match=f"decode='{other}'.*allow_decode_override=True"):
            Predictor(art.dir, device="cpu", decode=other)
    forced = Predictor(exact_art.dir, device="cpu", decode="draft", allow_decode_override=True)
    assert forced.decode_overridden and forced.preprocess_config.decode == "draft"
    assert forced.info.preprocess.decode == "exact"  # the model's own contract is unchanged
    assert forced.predict(data, top_k=9) != Predictor(exact_art.dir, device="cpu").predict(data, top_k=9)
    assert Predictor(exact_art.dir, device="cpu", decode="exact").decode_overridden is False


@pytest.mark.slow
def test_train_draft_is_carried_to_the_artifact_and_the_runtime(tmp_path, image_tree):
    """edgeclf train --decode draft → checkpoint → edgeclf export → artifact.json / ONNX → Predictor."""
    from train_support import write_split

    from edgeclf.export import export_checkpoint
    from edgeclf.train.checkpoint import load_checkpoint
    from edgeclf.train.loop import train_model

    root = image_tree({"cat": 4, "dog": 4}, size=(48, 40))
    split = write_split(root, tmp_path / "split.json", n_val=1, n_test=1)
    fast = dict(arch="tiny_cnn", batch_size=4, device="cpu", progress=False, workers=0, epochs=1)
    result = train_model(split, tmp_path / "run", decode="draft", **fast)
    assert load_checkpoint(result.best_checkpoint)["preprocess"]["decode"] == "draft"
    with pytest.raises(UsageError, match="decode='exact' \\(checkpoint: 'draft'\\)"):
        train_model(split, tmp_path / "run", resume=result.last_checkpoint, decode="exact", **fast)

    desc = export_checkpoint(result.best_checkpoint, tmp_path / "art", formats="onnx", max_parity_images=2)
    assert desc["preprocess"]["decode"] == "draft" and desc["metadata"]["decode"] == "draft"
    assert json.loads((tmp_path / "art" / "artifact.json").read_text())["preprocess"]["decode"] == "draft"
    p = Predictor(tmp_path / "art", device="cpu")
    assert p.preprocess_config.decode == "draft"
    with pytest.raises(UsageError, match="trained and gated with decode='draft'"):
        Predictor(tmp_path / "art", device="cpu", decode="exact")
