"""bench.train_speed: the report's structure and arithmetic on a tiny model (no speed assertions)."""

from __future__ import annotations

import json

import pytest

from edgeclf.runtime.manifest import load_manifest
from train_support import write_split


def test_measure_train_speed_report(tmp_path, image_tree):
    from edgeclf.bench.train_speed import measure_train_speed, subset_manifest

    root = image_tree({"a": 8, "b": 8}, size=(48, 40))
    split = write_split(root, tmp_path / "split.json", n_val=2, n_test=1)
    sub = load_manifest(subset_manifest(split, tmp_path / "sub.json", per_class=3))
    assert [len(sub.entries(s)) for s in ("train", "val", "test")] == [6, 2, 2]

    r = measure_train_speed(split, arch="tiny_cnn", epochs=4, recompute_epochs=2, limit_per_class=4,
                            batch_size=4, device="cpu", workers=0, work_dir=tmp_path)
    assert r["images"] == {"train": 8, "val": 2} and r["epochs"] == 4
    assert r["recompute"]["epochs_measured"] == 2
    assert r["recompute"]["total_s_extrapolated"] == pytest.approx(
        r["recompute"]["setup_and_checkpoints_s"] + 4 * r["recompute"]["epoch_s_mean"])
    assert r["speedup"] == pytest.approx(r["recompute"]["total_s_extrapolated"] / r["cache"]["total_s"])
    assert r["cache"]["feature_extraction_s"] > 0 and r["environment"]["arch"] == "tiny_cnn"
    json.dumps(r)  # plain JSON
    assert list(tmp_path.glob("tmp*")) == []  # temporary runs cleaned up
