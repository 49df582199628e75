"""train.evaluate: metrics on hand-made logits, and a checkpoint whose predictions are known exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgeclf.train.errors import CheckpointError
from edgeclf.runtime.manifest import ManifestEntry, SplitManifest, file_sha256, write_manifest
from edgeclf.runtime.preprocess import PreprocessConfig
from edgeclf.train.checkpoint import save_checkpoint
from edgeclf.train.evaluate import compute_metrics, evaluate_checkpoint, predict_logits
from edgeclf.train.models import BACKBONES, BackboneSpec, Classifier


def test_compute_metrics_hand_made_case():
    names = ["a", "b", "c", "d"]
    logits = np.array([
        [5, 1, 0, 0],   # a → a
        [0, 1, 5, 2],   # a → c (top-3 c, d, b: a missed)
        [1, 5, 0, 0],   # b → b
        [4, 3, 0, 0],   # b → a (top-3 a, b, c: hit)
        [0, 0, 5, 0],   # c → c
    ], dtype=np.float32)
    labels = [0, 0, 1, 1, 2]
    r = compute_metrics(logits, labels, names, paths=[f"img{i}.jpg" for i in range(5)])
    assert r["num_images"] == 5 and r["top1"] == pytest.approx(3 / 5) and r["top3"] == pytest.approx(4 / 5)
    assert r["confusion"] == [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert r["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3 + 0) / 4)
    wrong = r["misclassified"]
    assert [(w["path"], w["true"], w["predicted"]) for w in wrong] == [("img1.jpg", "a", "c"), ("img3.jpg", "b", "a")]
    assert [t["class"] for t in wrong[0]["top3"]] == ["c", "d", "b"]
    z = math.exp(0) + math.exp(1) + math.exp(5) + math.exp(2)
    assert wrong[0]["top3"][0]["probability"] == pytest.approx(math.exp(5) / z)


# A backbone whose features are the mean R, G, B of the normalised image: predictions are known.
NAMES = ["blue", "green", "red", "zgray"]
COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture
def mean_rgb_arch(monkeypatch):
    spec = BackboneSpec(
        name="test_mean_rgb", feature_dim=3,
        preprocess=PreprocessConfig(crop_size=8, resize_size=8, mean=(0.5,) * 3, std=(0.5,) * 3),
        build=lambda weights: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        default_weights="none", weight_choices=(),
    )
    monkeypatch.setitem(BACKBONES, spec.name, spec)
    return spec


def _known_model(spec) -> Classifier:
    """logits = (2B, 2G, 2R, 1) for features (R, G, B) in [-1, 1] (ReLU keeps the positive part)."""
    model = Classifier(spec.build("none"), 3, 4, hidden_dim=3, dropout=0.0)
    with torch.no_grad():
        model.head[0].weight.copy_(torch.eye(3))
        model.head[0].bias.zero_()
        model.head[3].weight.copy_(torch.tensor([[0, 0, 2], [0, 2, 0], [2, 0, 0], [0, 0, 0]], dtype=torch.float32))
        model.head[3].bias.copy_(torch.tensor([0, 0, 0, 1.0]))
    return model.eval()


@pytest.fixture
def known_case(tmp_path, mean_rgb_arch):
    """Six PNGs, one of them mislabelled (blue pixels in the green folder), a split and a checkpoint."""
    root = tmp_path / "data"
    files = [("red", "r1", "red"), ("red", "r2", "red"), ("green", "g1", "green"), ("green", "g2", "blue"),
             ("blue", "b1", "blue"), ("blue", "b2", "blue")]
    entries = []
    for folder, stem, color in files:
        path = root / folder / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 8), COLORS[color]).save(path)
        entries.append(ManifestEntry(f"{folder}/{stem}.png", NAMES.index(folder), file_sha256(path)))
    entries.sort(key=lambda e: e.path)
    manifest = SplitManifest(data_root=root, classes=NAMES, seed=0, ratios={"train": 0.0, "val": 0.0, "test": 1.0},
                             splits={"train": entries[:1], "val": entries[:1], "test": entries})
    split = tmp_path / "split.json"
    sha = write_manifest(manifest, split)
    model = _known_model(mean_rgb_arch)
    run = tmp_path / "run"
    run.mkdir()
    ckpt = save_checkpoint({
        "arch": mean_rgb_arch.name, "weights": "none", "num_classes": 4, "class_names": NAMES,
        "preprocess": mean_rgb_arch.preprocess.to_dict(), "model_args": {"hidden_dim": 3, "dropout": 0.0},
        "model_state": model.state_dict(), "split_sha256": sha, "epoch": 1,
    }, run / "best.pt")
    return ckpt, split, model


def test_predict_logits_known_values(known_case, mean_rgb_arch):
    _, split, model = known_case
    from edgeclf.runtime.manifest import load_manifest

    paths = [p for p, _ in load_manifest(split).files("test")]  # b1 b2 g1 g2 r1 r2
    logits = predict_logits(model, paths, mean_rgb_arch.preprocess, batch_size=4, device="cpu", workers=0)
    assert logits.dtype == np.float32 and logits.shape == (6, 4)
    expected = np.array([[2, 0, 0, 1], [2, 0, 0, 1], [0, 2, 0, 1], [2, 0, 0, 1], [0, 0, 2, 1], [0, 0, 2, 1]])
    assert np.abs(logits - expected).max() < 1e-6


def test_evaluate_checkpoint_report(known_case, tmp_path):
    ckpt, split, _ = known_case
    out = tmp_path / "report.json"
    report = evaluate_checkpoint(ckpt, split, subset="test", json_out=out, device="cpu", workers=0)
    assert json.loads(out.read_text()) == report
    assert report["num_images"] == 6 and report["class_names"] == NAMES
    assert report["top1"] == pytest.approx(5 / 6) and report["top3"] == 1.0
    assert report["confusion"] == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert report["per_class"]["blue"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert report["per_class"]["green"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert report["split_matches_checkpoint"] is True and report["subset"] == "test"
    [wrong] = report["misclassified"]
    assert (wrong["path"], wrong["true"], wrong["predicted"]) == ("green/g2.png", "green", "blue")
    z = 2 * math.exp(0) + math.exp(2) + math.exp(1)
    assert [t["class"] for t in wrong["top3"]] == ["blue", "zgray", "green"]
    assert [t["probability"] for t in wrong["top3"]] == pytest.approx([math.exp(2) / z, math.exp(1) / z, 1 / z])


def test_evaluate_cli_default_json_and_tables(known_case, capsys):
    from edgeclf.cli import main

    ckpt, split, _ = known_case
    assert main(["evaluate", str(ckpt), "--split", str(split), "--device", "cpu"]) == 0
    report = json.loads((ckpt.parent / "eval_test.json").read_text())
    assert report["top1"] == pytest.approx(5 / 6)
    shown = capsys.readouterr().out
    assert "top-1 83.33%" in shown and "green/g2.png" in shown and "blue 0.610" in shown


def test_class_mismatch_is_refused(known_case, tmp_path):
    ckpt, split, _ = known_case
    data = json.loads(split.read_text())
    data["classes"] = ["blue", "green", "red", "other"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="classes"):
        evaluate_checkpoint(ckpt, other, device="cpu")
