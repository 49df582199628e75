"""The fine-tuning loop: :func:`train_model` (what ``edgeclf train`` runs).

Recipe (the reference one with its defects fixed):

* Backbone frozen by default: ``requires_grad`` off and its BatchNorm kept in eval mode, so its
  parameters and running statistics never change. ``unfreeze=True`` trains everything, the
  backbone at ``lr * backbone_lr_mult`` (Adam parameter groups), BatchNorm in train mode.
* Head ``Linear(D, D) → ReLU → Dropout → Linear(D, C)`` with C = the split's class count,
  trained with Adam and a cosine learning-rate schedule over ``epochs`` (stepped per epoch),
  cross-entropy on logits.
* Feature cache (frozen backbone, on by default): the backbone runs once per image (plus
  ``aug_views`` augmented views per train image), then every epoch trains the head on the cached
  (N, D) features, one view per image per epoch. Without it, every epoch decodes, augments and
  runs the backbone again (the reference behaviour, >10x slower on CPU — see
  ``bench/train_speed.py``).
* Every epoch: train/val loss and top-1, images/s, wall time, appended to ``history.csv``/
  ``.json``; ``last.pt`` every epoch and ``best.pt`` whenever validation accuracy improves (ties
  broken by lower validation loss), both written atomically.
* Reproducible and resumable: the global RNG is reseeded at each epoch from (seed, epoch, rank),
  augmentation is seeded per (seed, epoch, image), the shuffling order per (seed, epoch); the
  checkpoint holds model, optimizer, scheduler, grad-scaler and RNG states, so ``resume=last.pt``
  ends with the same history (timing columns aside) as an uninterrupted run.
* CUDA: autocast (bf16 where supported, else fp16 with a ``GradScaler``), channels_last,
  pinned memory, DataLoader workers. CPU: fp32, thread and worker counts from
  :mod:`train.devices`.
* ``torchrun --nproc-per-node N``: DistributedDataParallel over the trainable module with a
  ``DistributedSampler`` (``--batch-size`` is per process); only rank 0 prints and writes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import torch
from torch import nn

from edgeclf.runtime.manifest import load_manifest
from edgeclf.runtime.preprocess import DECODE_MODES, PreprocessConfig

from . import devices
from .checkpoint import load_checkpoint, save_checkpoint
from .datasets import ImageListDataset, KeyedSampler, sample_seed
from .distributed import DistInfo, all_reduce_sum, barrier, env_world, init_distributed
from .epochs import epoch_on_features, epoch_on_images, validate_features, validate_images
from .errors import CheckpointError, DatasetError, UsageError
from .features import cached_or_extract
from .history import write_history
from .models import Classifier, build_model, get_backbone
from .progress import Reporter
from .recipe import RECIPE_DEFAULTS
from .state import checkpoint_state, seed_all, set_rng_state

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"

@dataclass
class TrainResult:
    """What :func:`train_model` returns (on every process).

    Attributes:
        run_dir: the output folder.
        best_checkpoint, last_checkpoint: ``RUN_DIR/best.pt`` / ``RUN_DIR/last.pt``.
        history: all epoch rows so far (see :mod:`train.history`), resumed ones included.
        best_val_acc: validation top-1 (fraction) of ``best.pt``; best_epoch its epoch.
        epochs: planned epoch count (the run ends after this many).
        wall_time_s: wall time of this call, seconds.
        feature_time_s: seconds spent extracting backbone features in this call (0.0 when they
            came from ``RUN_DIR/features.pt`` or the cache is off).
        train_time_s: seconds spent in the epochs of this call (training + validation).
        device: e.g. ``"cpu"``, ``"cuda:0"``; amp: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        world_size: processes (1 without ``torchrun``).
        start_epoch: epochs already done when this call started (0 for a fresh run).
    """

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict]
    best_val_acc: float
    best_epoch: int
    epochs: int
    wall_time_s: float
    feature_time_s: float = 0.0
    train_time_s: float = 0.0
    device: str = "cpu"
    amp: str = "fp32"
    world_size: int = 1
    start_epoch: int = 0


def set_train_mode(model: Classifier, frozen: bool) -> None:
    """``model.train()``, but a frozen backbone stays in eval mode (BatchNorm statistics fixed)."""
    model.train()
    if frozen:
        model.backbone.eval()


def freeze_backbone(model: Classifier) -> None:
    """Turn off gradients of every backbone parameter and put the backbone in eval mode."""
    model.backbone.requires_grad_(False)
    model.backbone.eval()


def param_groups(model: Classifier, lr: float, unfreeze: bool, backbone_lr_mult: float) -> list[dict]:
    """Adam parameter groups: the head at ``lr``; when unfrozen, the backbone at ``lr * backbone_lr_mult``."""
    groups = [{"params": list(model.head.parameters()), "lr": lr}]
    if unfreeze:
        groups.insert(0, {"params": [p for p in model.backbone.parameters() if p.requires_grad],
                          "lr": lr * backbone_lr_mult})
    return groups


def _validate_args(epochs: int, batch_size: int, lr: float, aug_views: int, workers: int | None,
                   weight_decay: float, dropout: float, backbone_lr_mult: float) -> None:
    problems = []
    if not (isinstance(epochs, int) and epochs >= 1):
        problems.append(f"--epochs {epochs}: need an integer >= 1")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        problems.append(f"--batch-size {batch_size}: need an integer >= 1")
    if not (lr > 0 and math.isfinite(lr)):
        problems.append(f"--lr {lr}: need a positive number")
    if not (isinstance(aug_views, int) and aug_views >= 0):
        problems.append(f"--aug-views {aug_views}: need an integer >= 0")
    if workers is not None and not (isinstance(workers, int) and workers >= 0):
        problems.append(f"--workers {workers}: need an integer >= 0")
    if not weight_decay >= 0:
        problems.append(f"--weight-decay {weight_decay}: need >= 0")
    if not 0 <= dropout < 1:
        problems.append(f"--dropout {dropout}: need 0 <= p < 1")
    if not backbone_lr_mult > 0:
        problems.append(f"backbone_lr_mult {backbone_lr_mult}: need > 0")
    if problems:
        raise UsageError("; ".join(problems))


def _preprocess_for(default, decode: str | None, ckpt: dict[str, Any] | None, resume) -> PreprocessConfig:
    """The backbone's preprocessing with the run's decode mode: ``decode`` (default ``"exact"``), or
    on resume the checkpoint's (an explicitly different ``decode`` is refused)."""
    if decode is not None and decode not in DECODE_MODES:
        raise UsageError(f"--decode {decode}: choose from {', '.join(DECODE_MODES)}")
    if ckpt is not None:
        saved = PreprocessConfig.from_dict(ckpt["preprocess"]).decode
        if decode is not None and decode != saved:
            raise UsageError(f"--resume {resume}: decode={decode!r} (checkpoint: {saved!r}); a resumed run"
                             " keeps its preprocessing — drop --decode, or start a new run with another --out")
        decode = saved
    return dataclasses.replace(default, decode=decode or "exact")


def _recipe_for_resume(given: dict[str, Any], ckpt: dict[str, Any], resume: Path) -> dict[str, Any]:
    """The checkpoint's recipe; an explicitly different (non-default) argument is a conflict."""
    saved = ckpt.get("train_args")
    if not isinstance(saved, dict) or any(k not in saved for k in RECIPE_DEFAULTS):
        raise CheckpointError(f"{resume}: checkpoint has no complete train_args; it cannot be resumed")
    conflicts = [f"{k}={given[k]!r} (checkpoint: {saved[k]!r})" for k in RECIPE_DEFAULTS
                 if given[k] != RECIPE_DEFAULTS[k] and given[k] != saved[k]]
    if conflicts:
        raise UsageError(
            f"--resume {resume}: {', '.join(conflicts)}; a resumed run keeps its recipe — drop these"
            " options to continue it, or start a new run with another --out"
        )
    return {k: saved[k] for k in RECIPE_DEFAULTS}


def train_model(
    split: str | os.PathLike,
    out_dir: str | os.PathLike,
    arch: str = "resnet50",
    weights: str | None = None,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    device: str = "auto",
    seed: int = 0,
    resume: str | os.PathLike | None = None,
    unfreeze: bool = False,
    feature_cache: bool = True,
    aug_views: int = 0,
    workers: int | None = None,
    progress: bool = True,
    *,
    weight_decay: float = RECIPE_DEFAULTS["weight_decay"],
    dropout: float = RECIPE_DEFAULTS["dropout"],
    backbone_lr_mult: float = RECIPE_DEFAULTS["backbone_lr_mult"],
    data_root: str | os.PathLike | None = None,
    decode: str | None = None,
) -> TrainResult:
    """Fine-tune ``arch`` on the train subset of the split manifest, choosing the best epoch on val.

    Args:
        split: ``split.json`` (schema ``edgeclf.split`` v1); its class list sets the head width.
        out_dir: RUN_DIR for ``last.pt``, ``best.pt``, ``history.csv``/``.json``, ``features.pt``.
            Refused if it already holds checkpoints and ``resume`` is not given.
        arch: a registered backbone (``resnet50``, ``efficientnet_lite0``, ``tiny_cnn``).
        weights: backbone weights: ``None`` (the arch's default), a named set, ``"none"`` or a
            state dict path (see :func:`train.models.build_model`).
        epochs: total epochs (a resumed run stops at the same count).
        batch_size: images (or cached feature rows) per optimisation step, per process.
        lr: Adam learning rate of the head (peak of the cosine schedule).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds head initialisation, shuffling, dropout and augmentation.
        resume: a ``last.pt`` to continue from; the recipe (arch, weights, epochs, lr, …) is the
            checkpoint's, and an explicitly different value is refused.
        unfreeze: fine-tune the backbone too (at ``lr * backbone_lr_mult``); disables the cache.
        feature_cache: with a frozen backbone, compute backbone features once (default).
        aug_views: with the cache, also cache this many augmented views per train image.
        workers: DataLoader worker processes (``None``: :func:`train.devices.default_workers`).
        progress: rich progress bars and a line per epoch on stderr (rank 0 only).
        weight_decay: Adam L2 penalty. dropout: head dropout. backbone_lr_mult: see ``unfreeze``.
        data_root: the images' folder when it moved since the manifest was written.
        decode: ``"exact"`` (default) or ``"draft"``: how JPEGs are decoded
            (:class:`runtime.preprocess.PreprocessConfig` ``decode``), stored in the checkpoint's
            preprocessing and so used by the export gates and the runtime too. A resumed run keeps
            its checkpoint's; a different explicit value is refused.
    Returns:
        :class:`TrainResult`.
    Raises:
        ManifestError: unreadable split manifest. UsageError: bad argument values, an empty
        train/val subset, an occupied ``out_dir``. WeightsError: weights unavailable.
        CheckpointError: unreadable ``resume`` checkpoint or one from another split.
        DatasetError: an image that does not decode (named).
    """
    t_start = time.perf_counter()
    _rank, local_rank, _world = env_world()
    dev = devices.resolve_device(device, local_rank)
    import torch.distributed as dist

    preinitialised = dist.is_available() and dist.is_initialized()
    info = init_distributed(dev.type)
    ok, threads_before = False, torch.get_num_threads()
    try:
        result = _train(split, out_dir, dev, info, t_start,
                        given={"arch": arch, "weights": weights, "epochs": epochs, "batch_size": batch_size,
                               "lr": lr, "weight_decay": weight_decay, "dropout": dropout,
                               "backbone_lr_mult": backbone_lr_mult, "seed": seed, "unfreeze": unfreeze,
                               "feature_cache": feature_cache, "aug_views": aug_views},
                        resume=resume, workers=workers, progress=progress, data_root=data_root, decode=decode)
        ok = True
        return result
    finally:
        torch.set_num_threads(threads_before)  # the CPU thread choice is this call's, not the process's
        if info.distributed and not preinitialised and dist.is_initialized():
            if ok:
                dist.barrier()
            dist.destroy_process_group()


def _train(split, out_dir, dev: torch.device, info: DistInfo, t_start: float, *, given: dict,
           resume, workers, progress: bool, data_root, decode: str | None = None) -> TrainResult:
    reporter = Reporter(enabled=progress and info.is_main)
    manifest = load_manifest(split, data_root=data_root)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory; choose a folder for the run")
    last_path, best_path = out_dir / LAST_CHECKPOINT, out_dir / BEST_CHECKPOINT

    ckpt = None
    if resume is not None:
        resume = Path(resume)
        ckpt = load_checkpoint(resume)
        if ckpt["split_sha256"] != manifest.sha256:
            raise CheckpointError(
                f"--resume {resume}: this checkpoint was trained on another split (sha256"
                f" {str(ckpt['split_sha256'])[:12]}…) than --split {split} (sha256 {manifest.sha256[:12]}…);"
                " resume with the split.json it was trained on, or start a new run"
            )
        recipe = _recipe_for_resume(given, ckpt, resume)
        if last_path.exists() and last_path.resolve() != resume.resolve() and resume.resolve().parent != out_dir.resolve():
            raise UsageError(f"--out {out_dir}: holds another run's last.pt; resume into the folder of {resume}"
                             " or into a new --out")
    else:
        recipe = dict(given)
        existing = [p.name for p in (last_path, best_path) if p.exists()]
        if existing:
            raise UsageError(
                f"--out {out_dir}: already holds {', '.join(existing)}; continue it with --resume"
                f" {last_path}, or choose another --out (or delete the folder)"
            )
    _validate_args(recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["aug_views"], workers,
                   recipe["weight_decay"], recipe["dropout"], recipe["backbone_lr_mult"])

    spec = get_backbone(recipe["arch"])
    cfg = _preprocess_for(spec.preprocess, decode, ckpt, resume)
    recipe["weights"] = spec.default_weights if recipe["weights"] is None else str(recipe["weights"])
    classes = list(manifest.classes)
    train_items, val_items = manifest.files("train"), manifest.files("val")
    if not train_items or not val_items:
        raise UsageError(
            f"--split {split}: needs train and val images (has {len(train_items)} train, {len(val_items)} val);"
            " re-run `edgeclf split` with non-zero train and val ratios"
        )
    if not manifest.data_root.is_dir():
        raise DatasetError(f"--split {split}: data_root {manifest.data_root} is not a folder; pass --data-root")
    epochs, seed = int(recipe["epochs"]), int(recipe["seed"])
    frozen = not recipe["unfreeze"]
    use_cache = frozen and bool(recipe["feature_cache"])

    # Hardware choices (pure functions in train.devices).
    cpus = devices.available_cpus()
    if dev.type == "cpu":
        threads = devices.cpu_threads(cpus, info.world_size)
        if threads is not None:
            torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True
    n_workers = devices.default_workers(dev.type, cpus, info.world_size) if workers is None else workers
    amp_dtype = devices.choose_amp_dtype(dev.type, dev.type == "cuda" and torch.cuda.is_bf16_supported())
    channels_last = devices.use_channels_last(dev.type)
    pin = devices.use_pin_memory(dev.type)

    # Model: seeded init; a resumed run takes every tensor from the checkpoint (no download).
    seed_all(seed)
    model = build_model(recipe["arch"], len(classes), "none" if ckpt is not None else recipe["weights"],
                        dropout=recipe["dropout"])
    if ckpt is not None:
        if list(ckpt["class_names"]) != classes:
            raise CheckpointError(f"--resume {resume}: class names differ from --split {split}")
        try:
            model.load_state_dict(ckpt["model_state"], strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"--resume {resume}: model_state does not fit {recipe['arch']}: {str(err).splitlines()[0]}") from err
    if frozen:
        freeze_backbone(model)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    # fused Adam: one kernel for all parameters, ~2x faster steps than foreach on CPU for the
    # 1.6 M-parameter head (CPU and CUDA both support it for float32 parameters).
    optimizer = torch.optim.Adam(param_groups(model, recipe["lr"], not frozen, recipe["backbone_lr_mult"]),
                                 lr=recipe["lr"], weight_decay=recipe["weight_decay"], fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=devices.needs_grad_scaler(amp_dtype))
    start_epoch, history = 0, []
    best_val_acc, best_val_loss, best_epoch, elapsed_before = -1.0, math.inf, 0, 0.0
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer_state"])
            scheduler.load_state_dict(ckpt["scheduler_state"])
            if ckpt.get("scaler_state"):
                scaler.load_state_dict(ckpt["scaler_state"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"--resume {resume}: optimizer/scheduler state unusable ({err})") from err
        start_epoch = int(ckpt["epoch"])
        history = [dict(r) for r in ckpt.get("history", [])][:start_epoch]
        best_val_acc = float(ckpt.get("best_val_acc", -1.0))
        best_val_loss = float(ckpt.get("best_val_loss", math.inf))
        best_epoch = int(ckpt.get("best_epoch", 0))
        elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        if ckpt.get("rng_state"):
            set_rng_state(ckpt["rng_state"])

    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    reporter.info(
        f"[bold]train[/] {recipe['arch']} ({recipe['weights']}) on {len(train_items)} train / {len(val_items)} val"
        f" images, {len(classes)} classes · {dev} {devices.describe_amp(amp_dtype)}"
        f" · {torch.get_num_threads()} threads, {n_workers} workers · {info.world_size} process(es)"
        f" · {'frozen backbone' if frozen else 'unfrozen'}"
        + (f", feature cache ({1 + recipe['aug_views']} view(s)/image)" if use_cache else "")
        + (f" · resuming after epoch {start_epoch}" if ckpt is not None else "")
    )

    labels_train = torch.tensor([y for _, y in train_items], dtype=torch.long)
    labels_val = torch.tensor([y for _, y in val_items], dtype=torch.long)
    train_sampler = torch.utils.data.DistributedSampler(
        range(len(train_items)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=False)
    criterion = nn.CrossEntropyLoss()
    feature_time_s = 0.0

    if use_cache:
        feats_train, feats_val, feature_time_s = cached_or_extract(
            model, recipe, manifest.sha256, cfg, train_items, val_items, out_dir, dev, info, amp_dtype,
            channels_last, n_workers, reporter)
        feats_train, feats_val = feats_train.to(dev), feats_val.to(dev)
        trainable: nn.Module = model.head
    else:
        train_ds = ImageListDataset(train_items, cfg, augment=True)
        val_ds = ImageListDataset(val_items, cfg)
        keyed = KeyedSampler(train_sampler, seed)
        train_loader = torch.utils.data.DataLoader(
            train_ds, batch_size=recipe["batch_size"], sampler=keyed, num_workers=n_workers, pin_memory=pin,
            persistent_workers=n_workers > 0, drop_last=False)
        val_loader = torch.utils.data.DataLoader(
            val_ds, batch_size=max(recipe["batch_size"], 64), sampler=list(range(info.rank, len(val_ds), info.world_size)),
            num_workers=n_workers, pin_memory=pin)
        trainable = model
    if info.distributed:
        trainable = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[dev.index] if dev.type == "cuda" else None)

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = trainable(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach()) * y.shape[0], int((logits.argmax(1) == y).sum())

    threads_before = torch.get_num_threads()
    if use_cache:
        torch.set_num_threads(devices.head_threads(dev.type, threads_before))
    try:
        train_time_s = 0.0
        for epoch in range(start_epoch + 1, epochs + 1):
            t_epoch = time.perf_counter()
            torch.manual_seed(sample_seed(seed, epoch, info.rank))  # dropout etc.: a function of (seed, epoch, rank)
            set_train_mode(model, frozen)
            lr_now = optimizer.param_groups[-1]["lr"]
            with reporter.task(f"epoch {epoch}/{epochs}", len(train_sampler) * info.world_size) as advance:
                if use_cache:
                    loss_sum, correct, seen = epoch_on_features(
                        step, feats_train, labels_train, train_sampler, recipe["batch_size"], seed, epoch, dev,
                        lambda k: advance(k * info.world_size))
                else:
                    keyed.set_epoch(epoch)
                    loss_sum, correct, seen = epoch_on_images(
                        step, train_loader, dev, channels_last, lambda k: advance(k * info.world_size))
            t_train = time.perf_counter() - t_epoch
            loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info, dev)

            model.eval()
            if use_cache:
                v_loss, v_correct, v_seen = validate_features(model.head, feats_val, labels_val.to(dev), info, dev,
                                                               amp_dtype, criterion)
            else:
                v_loss, v_correct, v_seen = validate_images(model, val_loader, dev, amp_dtype, channels_last, criterion)
            v_loss, v_correct, v_seen = all_reduce_sum([v_loss, v_correct, v_seen], info, dev)
            scheduler.step()

            epoch_time = time.perf_counter() - t_epoch
            train_time_s += epoch_time
            row = {
                "epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                "val_loss": v_loss / v_seen, "val_acc": v_correct / v_seen, "lr": lr_now,
                "train_images": int(seen), "train_images_per_s": seen / t_train if t_train > 0 else 0.0,
                "epoch_time_s": epoch_time, "elapsed_s": elapsed_before + (time.perf_counter() - t_start),
            }
            history.append(row)
            is_best = row["val_acc"] > best_val_acc or (row["val_acc"] == best_val_acc and row["val_loss"] < best_val_loss)
            if is_best:
                best_val_acc, best_val_loss, best_epoch = row["val_acc"], row["val_loss"], epoch
            if info.is_main:
                state = checkpoint_state(
                    recipe=recipe, classes=classes, cfg=cfg, model=model, split=split, split_sha256=manifest.sha256,
                    epoch=epoch, epochs=epochs, best=(best_val_acc, best_val_loss, best_epoch), row=row,
                    optimizer=optimizer, scheduler=scheduler, scaler=scaler, history=history, info=info)
                # best.pt first: a crash between the two writes leaves last.pt at the previous epoch,
                # so a resume redoes this epoch and rewrites best.pt — never a best.pt older than
                # the best epoch last.pt records.
                if is_best:
                    save_checkpoint(state, best_path)
                save_checkpoint(state, last_path)
                write_history(out_dir, history)
            reporter.epoch(row, epochs, is_best)
    finally:
        torch.set_num_threads(threads_before)

    if start_epoch >= epochs:
        reporter.info(f"{resume}: already trained for {epochs} epochs; nothing to do")
    barrier(info)
    wall = time.perf_counter() - t_start
    reporter.info(
        f"best val acc {best_val_acc:.4f} at epoch {best_epoch} → {best_path} · wall {wall:.1f} s"
        + (f" (features {feature_time_s:.1f} s, epochs {train_time_s:.1f} s)" if use_cache else "")
    )
    return TrainResult(
        run_dir=out_dir, best_checkpoint=best_path, last_checkpoint=last_path, history=history,
        best_val_acc=best_val_acc, best_epoch=best_epoch, epochs=epochs, wall_time_s=wall,
        feature_time_s=feature_time_s, train_time_s=train_time_s, device=str(dev),
        amp=devices.describe_amp(amp_dtype), world_size=info.world_size, start_epoch=start_epoch,
    )


