"""Evaluation of a checkpoint on a split subset: top-1/top-3, per-class P/R/F1, confusion matrix.

:func:`predict_logits` decodes image files with :func:`runtime.image.load_image` and
:func:`runtime.preprocess.preprocess` and runs the model through :func:`train.inference.eager_logits`
(the eager inference path the export gates and the benchmark use too). :func:`compute_metrics` is
pure numpy, with the runtime's :func:`~edgeclf.runtime.inference.softmax` and
:func:`~edgeclf.runtime.inference.top_k`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.files import atomic_write_text
from edgeclf.runtime.inference import softmax, top_k
from edgeclf.runtime.preprocess import PreprocessConfig

from .errors import CheckpointError, DatasetError, UsageError

#: How many top predictions are listed for each misclassified image.
TOP_K_LISTED = 3


def predict_logits(model, paths: Sequence[str | os.PathLike], preprocess_cfg: PreprocessConfig,
                   batch_size: int = 64, device: str = "auto", workers: int | None = None,
                   sha256s: Sequence[str | None] | None = None,
                   on_batch: Callable[[int], object] | None = None) -> np.ndarray:
    """Logits of an eager model for image files, in the order given.

    Each file is decoded by :func:`runtime.image.load_image` and turned into the model input by
    :func:`runtime.preprocess.preprocess` (the contract the exported models and the runtime use).
    The forward pass runs in fp32 (no autocast) with the model in eval mode.

    Args:
        model: a ``torch.nn.Module`` mapping (B, 3, crop, crop) float32 to (B, C) logits
            (e.g. :class:`train.models.Classifier`); it is moved to ``device``.
        paths: image files.
        preprocess_cfg: the checkpoint's :class:`PreprocessConfig`.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: DataLoader workers (``None``: :func:`train.devices.default_workers`).
        sha256s: expected sha256 (hex) per path, checked on the bytes read (None: no check).
        on_batch: called with the number of images of each batch once it is done (progress).
    Returns:
        float32 array (N, C).
    Raises:
        DatasetError: a file does not decode, or differs from its ``sha256s`` entry (named).
        UsageError: bad ``batch_size`` or ``device``.
    """
    from torch.utils.data import DataLoader

    from . import devices
    from .datasets import ImageListDataset, unwrap_worker_error
    from .inference import eager_logits

    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UsageError(f"--batch-size {batch_size}: need an integer >= 1")
    dev = devices.resolve_device(device)
    n_workers = devices.default_workers(dev.type, devices.available_cpus()) if workers is None else workers
    from edgeclf.runtime.manifest import ManifestFile

    sha = list(sha256s) if sha256s is not None else [None] * len(paths)
    dataset = ImageListDataset([ManifestFile(Path(p), 0, h) for p, h in zip(paths, sha)], preprocess_cfg)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=n_workers,
                        pin_memory=devices.use_pin_memory(dev.type))
    # Only the input goes channels_last (the convolutions follow it; ~3x faster on CPU); the
    # caller's model keeps its memory format.
    try:
        return eager_logits(model, loader, dev, channels_last=devices.use_channels_last(dev.type),
                            on_batch=on_batch)
    except DatasetError as err:
        raise unwrap_worker_error(err) from err


def compute_metrics(logits: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                    paths: Sequence[str] | None = None) -> dict[str, Any]:
    """Classification metrics from logits.

    Args:
        logits: float (N, C); column j is class ``class_names[j]``.
        labels: N true labels in 0..C-1.
        class_names: the C ordered class names.
        paths: N file names for the misclassified list (default: the row index as a string).
    Returns:
        ``{"num_images": N, "top1": float, "top3": float,`` (fractions; top-3 uses k = min(3, C))
        ``"per_class": {name: {"precision", "recall", "f1", "support"}},`` (0.0 where undefined)
        ``"macro_f1": float, "confusion": [[int]*C]*C`` (row = true class, column = predicted),
        ``"class_names": [...], "misclassified": [{"path", "true", "predicted",
        "top3": [{"class", "probability"}, …]}, …]}``.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = logits.shape[0], len(class_names)
    if logits.ndim != 2 or (n and logits.shape[1] != c) or labels.shape != (n,):
        raise UsageError(f"logits {logits.shape} / labels {labels.shape} do not match {c} classes")
    paths = list(paths) if paths is not None else [str(i) for i in range(n)]
    k = min(TOP_K_LISTED, c)
    order = top_k(logits, k) if n else np.zeros((0, k), dtype=np.int64)
    pred = order[:, 0] if n else np.zeros(0, dtype=np.int64)
    probs = softmax(logits) if n else np.zeros((0, c))
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for j, name in enumerate(class_names):
        tp = int(confusion[j, j])
        predicted, support = int(confusion[:, j].sum()), int(confusion[j, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    misclassified = [
        {"path": paths[i], "true": class_names[labels[i]], "predicted": class_names[pred[i]],
         "top3": [{"class": class_names[j], "probability": float(probs[i, j])} for j in order[i]]}
        for i in range(n) if pred[i] != labels[i]
    ]
    return {
        "num_images": int(n),
        "top1": float((pred == labels).mean()) if n else 0.0,
        "top3": float((order == labels[:, None]).any(axis=1).mean()) if n else 0.0,
        "per_class": per_class,
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
        "misclassified": misclassified,
    }


def evaluate_checkpoint(checkpoint: str | os.PathLike, split: str | os.PathLike, subset: str = "test",
                        json_out: str | os.PathLike | None = None, batch_size: int = 64,
                        device: str = "auto", *, data_root: str | os.PathLike | None = None,
                        workers: int | None = None, on_changed: str = "error", progress=None) -> dict[str, Any]:
    """Evaluate a training checkpoint on one subset of a split manifest.

    Args:
        checkpoint: ``RUN_DIR/best.pt`` (or ``last.pt``).
        split: ``split.json``; its class list must equal the checkpoint's (same order).
        subset: ``train``, ``val`` or ``test``.
        json_out: write the report there (atomically) when given; ``edgeclf evaluate`` passes
            ``RUN_DIR/eval_<subset>.json`` by default.
        data_root: the images' folder when it moved since the manifest was written.
        on_changed: a file whose bytes differ from the manifest's sha256: ``"error"`` refuses
            naming it; ``"exclude"`` verifies every file first, scores the others and lists the
            left-out ones in the report's ``excluded``.
        progress: an :class:`edgeclf.progress.Progress` (one stage, images done of the subset).
    Returns:
        :func:`compute_metrics`'s dict (paths relative to the data root) plus ``checkpoint``,
        ``split``, ``subset``, ``arch``, ``epoch`` and ``split_matches_checkpoint`` (whether the
        manifest is the one the model was trained on).
    Raises:
        CheckpointError: unreadable checkpoint, or class names that differ from the manifest's.
        ManifestError, UsageError (empty/unknown subset), DatasetError (an image does not decode
        or changed since the split).
    """
    from edgeclf.runtime.manifest import load_manifest

    from .checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of

    ckpt = load_checkpoint(checkpoint)
    manifest = load_manifest(split, data_root=data_root)
    if list(ckpt["class_names"]) != list(manifest.classes):
        raise CheckpointError(
            f"{checkpoint}: trained on classes {list(ckpt['class_names'])} but --split {split} has"
            f" {list(manifest.classes)}; evaluate with a split of the same classes"
        )
    entries = manifest.entries(subset)
    if not entries:
        raise UsageError(f"--subset {subset}: {split} has no {subset} images")
    from edgeclf.progress import as_progress

    from .datasets import drop_changed

    kept, excluded = drop_changed(manifest.files(subset), on_changed)
    by_path = {manifest.data_root / e.path: e for e in entries}
    entries = [by_path[item[0]] for item in kept]
    if not entries:
        raise DatasetError(f"--subset {subset}: no image left after excluding {len(excluded)} changed file(s);"
                           " re-run `edgeclf split`")
    model = model_from_checkpoint(ckpt)
    with as_progress(progress).stage(f"evaluating {len(entries)} {subset} images", total=len(entries)) as st:
        logits = predict_logits(model, [manifest.data_root / e.path for e in entries], preprocess_of(ckpt),
                                batch_size=batch_size, device=device, workers=workers,
                                sha256s=[e.sha256 for e in entries], on_batch=st.advance)
    report = compute_metrics(logits, [e.label for e in entries], manifest.classes, [e.path for e in entries])
    report = {
        "checkpoint": str(Path(checkpoint).resolve()), "split": str(Path(split).resolve()), "subset": subset,
        "arch": ckpt["arch"], "epoch": ckpt.get("epoch"),
        "split_matches_checkpoint": ckpt["split_sha256"] == manifest.sha256,
        **report,
        "excluded": [{**e, "path": str(Path(e["path"]).relative_to(manifest.data_root))} for e in excluded],
    }
    if json_out is not None:
        write_json(report, json_out)
    return report


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    path = Path(path)
    try:
        atomic_write_text(path, json.dumps(obj, indent=1) + "\n")
    except OSError as err:
        raise UsageError(f"--json {path}: cannot write ({err.strerror or err})") from err
    return path
