"""Small real inputs for export tests: a split manifest over SAMPLE_DATA and random-init checkpoints."""

from __future__ import annotations

from pathlib import Path

from conftest import SAMPLE_DATA

from edgeclf.runtime.manifest import ManifestEntry, SplitManifest, file_sha256, write_manifest
from edgeclf.runtime.preprocess import PreprocessConfig

CLASSES = ["Leopards", "airplanes", "butterfly"]
#: A small input keeps random-init EfficientNet-Lite0 exports and gates fast (the model is size-agnostic).
SMALL = PreprocessConfig(crop_size=64, resize_size=73, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def make_split(path: Path, classes=CLASSES, data_root: Path = SAMPLE_DATA, n_train: int = 6, n_test: int = 4) -> Path:
    """Write a split manifest over real JPEGs: per class the first ``n_train`` files go to train,
    the last ``n_test`` to test (val stays empty). Returns ``path``."""
    splits = {"train": [], "val": [], "test": []}
    for label, name in enumerate(classes):
        files = sorted(p for p in (data_root / name).iterdir() if p.suffix.lower() == ".jpg")
        for subset, chosen in (("train", files[:n_train]), ("test", files[-n_test:])):
            splits[subset] += [ManifestEntry(f"{name}/{p.name}", label, file_sha256(p)) for p in chosen]
    for subset in splits:
        splits[subset].sort(key=lambda e: e.path)
    manifest = SplitManifest(data_root=Path(data_root), classes=list(classes), seed=0,
                             ratios={"train": 0.6, "val": 0.0, "test": 0.4}, splits=splits)
    write_manifest(manifest, path)
    return path


def make_checkpoint(path: Path, split_path: Path, arch: str = "efficientnet_lite0", classes=CLASSES,
                    preprocess: PreprocessConfig = SMALL, seed: int = 0) -> Path:
    """Save an edgeclf checkpoint of a random-init ``arch`` classifier recording ``split_path``."""
    import torch

    from edgeclf.train.checkpoint import save_checkpoint
    from edgeclf.train.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, len(classes), weights="none").eval()
    save_checkpoint({
        "edgeclf_version": "0.1.0", "arch": arch, "weights": "none",
        "num_classes": len(classes), "class_names": list(classes),
        "preprocess": preprocess.to_dict(), "model_args": {},
        "model_state": model.state_dict(), "split_sha256": file_sha256(split_path),
        "epoch": 1, "epochs": 1, "train_args": {"split": str(split_path)},
    }, path)
    return path
