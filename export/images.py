"""Real images for the gates: which files of a split manifest, decoded and preprocessed torch-free.

Every image goes through :func:`runtime.image.load_image` and :func:`runtime.preprocess.preprocess`,
the same two functions the runtime uses in production, so the gates measure the artifact on exactly
the tensors an application will feed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeclf.runtime.errors import ManifestError, UsageError
from edgeclf.runtime.manifest import SplitManifest, file_sha256, load_manifest
from edgeclf.runtime.preprocess import PreprocessConfig


@dataclass
class ImageSet:
    """Preprocessed images of one subset of a split.

    Attributes:
        paths: image paths relative to the manifest's data root, in row order.
        labels: int64 array of shape (N,), indices into the class list.
        inputs: float32 array of shape (N, 3, crop_size, crop_size), NCHW, normalised.
    """

    paths: list[str]
    labels: np.ndarray
    inputs: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def evenly_spaced(n: int, k: int) -> list[int]:
    """``min(n, k)`` distinct indices spread evenly over ``range(n)`` (first and last included).

    Manifest entries are sorted by path, i.e. grouped by class folder, so an even spread covers
    every class in proportion instead of only the first ones.
    """
    if k >= n:
        return list(range(n))
    if k <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def resolve_split(ckpt: dict, checkpoint_path: Path,
                  split: str | os.PathLike | None) -> tuple[SplitManifest, Path, bool]:
    """The split manifest whose images feed the gates, and whether it is the one the model trained on.

    Args:
        ckpt: the loaded checkpoint dict.
        checkpoint_path: its file (for messages).
        split: ``--split`` if given; otherwise the path recorded in the checkpoint
            (``split_path``, or ``train_args["split"]``) is used and must still have the recorded
            ``split_sha256``.
    Returns:
        ``(manifest, manifest_path, matches_checkpoint)``: ``matches_checkpoint`` is True when the
        manifest's sha256 equals the checkpoint's ``split_sha256``.
    Raises:
        UsageError: no ``--split`` and the checkpoint records no manifest path.
        ManifestError: unreadable manifest, a recorded manifest that changed since training, or
            class names that differ from the checkpoint's.
    """
    if split is None:
        recorded = ckpt.get("split_path") or (ckpt.get("train_args") or {}).get("split")
        if not recorded:
            raise UsageError(
                f"{checkpoint_path}: the checkpoint does not record its split manifest; pass --split SPLIT.json"
            )
        path = Path(recorded)
        if not path.is_file():
            raise ManifestError(
                f"{path}: split manifest recorded in {checkpoint_path} not found; pass --split SPLIT.json"
            )
        if file_sha256(path) != ckpt["split_sha256"]:
            raise ManifestError(
                f"{path}: split manifest changed since {checkpoint_path} was trained (sha256 differs);"
                " pass --split SPLIT.json to use it anyway"
            )
    else:
        path = Path(split)
    manifest = load_manifest(path)
    if list(manifest.classes) != list(ckpt["class_names"]):
        raise ManifestError(
            f"{path}: the split manifest's classes {manifest.classes} differ from the checkpoint's"
            f" {list(ckpt['class_names'])}"
        )
    return manifest, path, manifest.sha256 == ckpt["split_sha256"]


def load_subset(manifest: SplitManifest, subset: str, cfg: PreprocessConfig, max_images: int | None = None,
                source: str = "split manifest") -> ImageSet:
    """Decode and preprocess up to ``max_images`` images of ``subset`` (evenly spread; all if None).

    ``source`` (the manifest's path) is named in error messages.

    Raises:
        ManifestError: the subset is empty.
        InvalidImageError: an image cannot be decoded (names the file).
        DatasetError: an image is missing or changed since the split (names the file).
    """
    from edgeclf.train.datasets import read_verified
    from edgeclf.runtime.image import load_image
    from edgeclf.runtime.preprocess import decode_size, preprocess

    entries = manifest.entries(subset)
    if not entries:
        raise ManifestError(f"{source}: its {subset!r} subset is empty; use a split with {subset} images")
    if max_images is not None:
        entries = [entries[i] for i in evenly_spaced(len(entries), max_images)]
    # Each file is verified against its recorded sha256 on the bytes that are decoded.
    inputs = np.stack([preprocess(load_image(read_verified(manifest.data_root / e.path, e.sha256),
                                             name=str(manifest.data_root / e.path), draft_to=decode_size(cfg)), cfg)
                       for e in entries])
    return ImageSet(paths=[e.path for e in entries], labels=np.array([e.label for e in entries], dtype=np.int64),
                    inputs=inputs)
