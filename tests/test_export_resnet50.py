"""A random-init ResNet50 at its real input size (224 px, ImageNet normalisation) exports and passes."""

from __future__ import annotations

import json

import pytest

from _export_data import make_checkpoint, make_split

from edgeclf.runtime.preprocess import PreprocessConfig


@pytest.mark.slow
def test_resnet50_exports_and_passes_the_gate(tmp_path):
    from edgeclf.export import export_checkpoint

    split = make_split(tmp_path / "split.json", n_train=1, n_test=2)
    ckpt = make_checkpoint(tmp_path / "best.pt", split, arch="resnet50", preprocess=PreprocessConfig())
    desc = export_checkpoint(ckpt, tmp_path / "artifact", max_parity_images=6)
    report = json.loads((tmp_path / "artifact" / "parity.json").read_text())
    assert report["passed"] and report["images"]["count"] == 6
    for name in ("torchscript", "torchscript+optimize_for_inference", "onnx", "onnx+ort_optimizations_disabled"):
        row = report["formats"][name]
        assert row["max_abs_prob_diff"] < 1e-4 and row["top1_agreement"] == 1.0, (name, row)
    assert desc["input"]["shape"] == ["N", 3, 224, 224] and desc["arch"] == "resnet50"
    assert desc["formats"]["onnx"]["size_bytes"] > 90 * 2**20  # ~ 25.6 M + 4.2 M head parameters in fp32
