"""One epoch of training or validation, on cached features or on images.

Each function returns sums for this process — (loss sum, correct, images) — which the loop
all-reduces over processes before dividing.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from .datasets import sample_seed, unwrap_worker_error
from .distributed import DistInfo
from .errors import DatasetError


def epoch_on_features(step: Callable, feats: torch.Tensor, labels: torch.Tensor, sampler, batch_size: int,
                       seed: int, epoch: int, dev: torch.device, advance: Callable[[int], None]) -> tuple[float, int, int]:
    """One head epoch on cached features (V, N, D): this process's shuffled share, one random view
    per image (drawn from (seed, epoch)). Returns (loss sum, correct, images) of this process."""
    sampler.set_epoch(epoch)
    order = torch.tensor(list(sampler), dtype=torch.long)
    views = torch.randint(feats.shape[0], (feats.shape[1],),
                          generator=torch.Generator().manual_seed(sample_seed(seed, epoch, -1)))
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = feats[views[idx].to(dev), idx.to(dev)]  # (B, D)
        l, c = step(x, labels[idx].to(dev))
        loss_sum, correct, seen = loss_sum + l, correct + c, seen + len(idx)
        advance(len(idx))
    return loss_sum, correct, seen


def epoch_on_images(step: Callable, loader, dev: torch.device, channels_last: bool,
                     advance: Callable[[int], None]) -> tuple[float, int, int]:
    """One epoch decoding, augmenting and running the whole model. Returns (loss sum, correct, images)."""
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for x, y, _ in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)  # (B, 3, H, W), (B,)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            l, c = step(x, y)
            loss_sum, correct, seen = loss_sum + l, correct + c, seen + y.shape[0]
            advance(y.shape[0])
    except DatasetError as err:
        raise unwrap_worker_error(err) from err
    return loss_sum, correct, seen


@torch.no_grad()
def validate_features(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, info: DistInfo,
                       dev: torch.device, amp_dtype, criterion) -> tuple[float, int, int]:
    """(loss sum, correct, count) of this process's share (rows rank, rank+W, …) of cached val features."""
    head.eval()
    idx = torch.arange(info.rank, feats.shape[0], info.world_size, device=dev)
    loss_sum, correct = 0.0, 0
    for start in range(0, len(idx), 1024):
        b = idx[start:start + 1024]
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = head(feats[b]).float()
        loss_sum += float(criterion(logits, labels[b])) * len(b)
        correct += int((logits.argmax(1) == labels[b]).sum())
    return loss_sum, correct, len(idx)


@torch.no_grad()
def validate_images(model: nn.Module, loader: Iterable, dev: torch.device, amp_dtype, channels_last: bool,
                     criterion) -> tuple[float, int, int]:
    """(loss sum, correct, count) of this process's share of the val images (eval transform)."""
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for x, y, _ in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x).float()
            loss_sum += float(criterion(logits, y)) * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
    except DatasetError as err:
        raise unwrap_worker_error(err) from err
    return loss_sum, correct, seen
