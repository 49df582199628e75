"""Feature cache: run a frozen backbone once per image (and view), then train the head on the result.

With the backbone frozen (its BatchNorm in eval mode, no gradients), ``head(backbone(x))`` only
needs ``backbone(x)`` once per distinct input. :func:`extract_features` computes

* view 0: the eval transform of every train and val image (deterministic), and
* views 1..K (``aug_views=K``): K training-augmented versions of each train image, each under
  its own seed ``sample_seed(run_seed, VIEW_STREAM + v, index)``,

and :func:`save_feature_cache` stores them in ``RUN_DIR/features.pt`` with a key describing
what produced them (arch, weights, split sha256, preprocessing, views, seed), so ``--resume``
reuses them instead of recomputing. Recomputing gives the same numbers anyway (fixed seeds, eval
mode), but costs the extraction time again.

Under ``torchrun`` each process extracts every W-th image and the rows are all-gathered, so all
processes end with the full (N, D) table.
"""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgeclf.runtime.files import temp_sibling

from .datasets import VIEW_STREAM, ImageListDataset, KeyedSampler, unwrap_worker_error
from .distributed import DistInfo, all_agree, gather_rows
from .errors import DatasetError
from .progress import Reporter

FEATURE_CACHE_FILE = "features.pt"
CACHE_FORMAT = "edgeclf.features"


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: ImageListDataset,
    *,
    view: int = 0,
    run_seed: int = 0,
    batch_size: int = 64,
    device: torch.device = torch.device("cpu"),
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    workers: int = 0,
    info: DistInfo = DistInfo(),
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Backbone features of every image of ``dataset`` for one view.

    Args:
        backbone: frozen feature extractor, on ``device``, in eval mode: (B, 3, H, W) → (B, D).
        dataset: the images; view 0 uses the eval transform, view v >= 1 the seeded augmentation
            (the dataset must then be built with ``augment=True``).
        amp_dtype: autocast dtype on CUDA (bf16/fp16) or ``None`` for fp32.
        on_batch: called with the number of images after each batch (progress bars).
    Returns:
        float32 CPU tensor (N, D), row i = image i, identical on every process.
    Raises:
        DatasetError: an image does not decode (the message names the file).
    """
    n = len(dataset)
    mine = list(range(info.rank, n, info.world_size))
    keys: Sequence = mine if view == 0 else KeyedSampler(mine, run_seed, VIEW_STREAM + view)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=keys, num_workers=workers,
                        pin_memory=device.type == "cuda")
    rows: list[torch.Tensor] = []
    backbone.eval()
    try:
        for x, _, _ in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                f = backbone(x)
            rows.append(f.float())
            if on_batch is not None:
                on_batch(x.shape[0] * info.world_size)
    except DatasetError as err:
        raise unwrap_worker_error(err) from err
    local = torch.cat(rows) if rows else torch.zeros((0, 0), device=device)
    if info.distributed:
        if local.numel() == 0:
            raise DatasetError("a process got no images to extract features from; use fewer processes")
        local = gather_rows(local, n, info)
    return local.cpu()


def cache_key(*, arch: str, weights: str, split_sha256: str, preprocess: dict, aug_views: int,
              seed: int, num_train: int, num_val: int) -> dict[str, Any]:
    """What a feature cache depends on; a cache with another key is recomputed, never reused."""
    return {"arch": arch, "weights": weights, "split_sha256": split_sha256, "preprocess": preprocess,
            "aug_views": int(aug_views), "seed": int(seed), "num_train": int(num_train), "num_val": int(num_val)}


def save_feature_cache(path: str | os.PathLike, key: dict, train: torch.Tensor, val: torch.Tensor,
                       extract_time_s: float) -> Path:
    """Write the cache atomically.

    Args:
        train: float32 (V, N_train, D), V = 1 + aug_views views per train image (view 0 = eval).
        val: float32 (N_val, D), eval transform.
        extract_time_s: seconds the extraction took (reported again on resume).
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        torch.save({"format": CACHE_FORMAT, "key": key, "train": train.contiguous(), "val": val.contiguous(),
                    "extract_time_s": float(extract_time_s)}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_feature_cache(path: str | os.PathLike, key: dict) -> dict[str, Any] | None:
    """The cache at ``path`` if it exists, reads cleanly and was made with exactly ``key``; else ``None``.

    A missing, unreadable or stale cache is not an error: the features are recomputed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
        return None  # truncated/foreign file: treated as no cache, recomputed and overwritten
    if not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT or obj.get("key") != key:
        return None
    train, val = obj.get("train"), obj.get("val")
    if not isinstance(train, torch.Tensor) or not isinstance(val, torch.Tensor):
        return None
    if train.shape[:2] != (1 + key["aug_views"], key["num_train"]) or val.shape[0] != key["num_val"]:
        return None
    return obj


class Timer:
    """``with Timer() as t: ...; t.seconds`` — wall time in seconds (``time.perf_counter``)."""

    def __enter__(self) -> "Timer":
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def cached_or_extract(model: nn.Module, recipe: dict, split_sha256: str, cfg, train_items, val_items,
                     out_dir: Path, dev: torch.device, info: DistInfo, amp_dtype, channels_last: bool,
                     n_workers: int, reporter: Reporter) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Train features (V, N, D), V = 1 + aug_views, and val features (N_val, D), float32 on CPU:
    from ``RUN_DIR/features.pt`` when its key matches on every process, else extracted with
    ``model.backbone`` (and saved by rank 0). Returns them with the extraction time in seconds
    (0.0 when loaded)."""
    key = cache_key(arch=recipe["arch"], weights=recipe["weights"], split_sha256=split_sha256,
                    preprocess=cfg.to_dict(), aug_views=recipe["aug_views"], seed=recipe["seed"],
                    num_train=len(train_items), num_val=len(val_items))
    path = out_dir / FEATURE_CACHE_FILE
    cached = load_feature_cache(path, key)
    if all_agree(cached is not None, info, dev):
        reporter.info(f"features: reusing {path} (extracted in {cached['extract_time_s']:.1f} s)")
        return cached["train"], cached["val"], 0.0
    views = 1 + int(recipe["aug_views"])
    train_ds = ImageListDataset(train_items, cfg, augment=views > 1)
    val_ds = ImageListDataset(val_items, cfg)
    common = dict(batch_size=64 if dev.type == "cpu" else 256, device=dev, amp_dtype=amp_dtype,
                  channels_last=channels_last, workers=n_workers, info=info, run_seed=int(recipe["seed"]))
    with Timer() as timer, reporter.task("features", views * len(train_ds) + len(val_ds)) as advance:
        train = torch.stack([extract_features(model.backbone, train_ds, view=v, on_batch=advance, **common)
                             for v in range(views)])
        val = extract_features(model.backbone, val_ds, view=0, on_batch=advance, **common)
    n_images = views * len(train_ds) + len(val_ds)
    reporter.info(f"features: {n_images} images in {timer.seconds:.1f} s ({n_images / timer.seconds:.1f} img/s)"
                  f" → (views {views}, train {len(train_ds)}, val {len(val_ds)}, dim {train.shape[-1]})")
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_feature_cache(path, key, train, val, timer.seconds)
    return train, val, timer.seconds
