"""Helpers for the training tests: split manifests built directly from small image trees."""

from __future__ import annotations

from pathlib import Path

from edgeclf.runtime.manifest import ManifestEntry, SplitManifest, file_sha256, write_manifest
from edgeclf.runtime.image import is_image_filename


def write_split(data_root: Path, out: Path, n_val: int = 1, n_test: int = 1, seed: int = 0,
                classes: list[str] | None = None, limit: int | None = None) -> Path:
    """A split.json over ``data_root``'s class folders: per class (sorted files, optionally the
    first ``limit``), the last ``n_test`` files → test, the ``n_val`` before → val, rest → train."""
    data_root = Path(data_root)
    classes = classes or sorted(p.name for p in data_root.iterdir() if p.is_dir())
    splits = {"train": [], "val": [], "test": []}
    counts = {}
    for label, name in enumerate(classes):
        files = sorted(f for f in (data_root / name).iterdir() if is_image_filename(f.name))[:limit]
        parts = {"test": files[len(files) - n_test:] if n_test else [],
                 "val": files[len(files) - n_test - n_val:len(files) - n_test],
                 "train": files[:len(files) - n_test - n_val]}
        for subset, chosen in parts.items():
            splits[subset] += [ManifestEntry(f"{name}/{f.name}", label, file_sha256(f)) for f in chosen]
        counts[name] = {k: len(v) for k, v in parts.items()}
    for subset in splits:
        splits[subset].sort(key=lambda e: e.path)
    manifest = SplitManifest(data_root=data_root.resolve(), classes=classes, seed=seed,
                             ratios={"train": 0.5, "val": 0.25, "test": 0.25}, splits=splits, counts=counts)
    write_manifest(manifest, out)
    return out
