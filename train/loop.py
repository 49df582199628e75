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

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from edgeclf.runtime.manifest import SplitManifest, load_manifest
from edgeclf.runtime.preprocess import DECODE_MODES, PreprocessConfig

from . import devices
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RECIPE_FIELDS, TrainConfig, check_option_names, resume_config
from .datasets import ImageListDataset, KeyedSampler, drop_changed, sample_seed
from .distributed import DistInfo, all_reduce_sum, barrier, env_world, init_distributed, leave_process_group
from .epochs import epoch_on_features, epoch_on_images, validate_features, validate_images
from .errors import CheckpointError, DatasetError, UsageError
from .features import cached_or_extract
from .history import write_history
from .models import Classifier, build_model, get_backbone
from .progress import Reporter
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
        config: the run's :class:`~edgeclf.train.config.TrainConfig` (a resumed run: the
            checkpoint's recipe), ``weights`` resolved to the name or path used.
        excluded: files left out by ``on_changed="exclude"``: ``{"path", "reason", "detail"}``.
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
    config: TrainConfig | None = None
    excluded: list[dict] = field(default_factory=list)


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


def train_model(split: str | os.PathLike, out_dir: str | os.PathLike, *, resume: str | os.PathLike | None = None,
                data_root: str | os.PathLike | None = None, **options: Any) -> TrainResult:
    """Fine-tune a backbone on the train subset of the split manifest, choosing the best epoch on val.

    Args:
        split: ``split.json`` (schema ``edgeclf.split`` v1); its class list sets the head width.
        out_dir: RUN_DIR for ``last.pt``, ``best.pt``, ``history.csv``/``.json``, ``features.pt``.
            Refused if it already holds checkpoints and ``resume`` is not given.
        resume: a ``last.pt`` to continue from. The run keeps the checkpoint's recipe: a recipe
            option given here must equal the checkpoint's value (else UsageError); options not
            given take the checkpoint's values. Run settings (device, workers, progress) are free.
        data_root: the images' folder when it moved since the manifest was written.
        **options: :class:`~edgeclf.train.config.TrainConfig` fields (``arch``, ``weights``,
            ``epochs``, ``batch_size``, ``lr``, ``device``, ``workers``, ``progress``, …); those not
            given take TrainConfig's defaults (a fresh run) or the checkpoint's recipe (``resume``).
    Returns:
        :class:`TrainResult`.
    Raises:
        TypeError: an option that is no TrainConfig field.
        ManifestError: unreadable split manifest. UsageError: bad option values, a recipe option
        that differs from the resumed checkpoint's, an empty train/val subset, an occupied
        ``out_dir``. WeightsError: weights unavailable.
        CheckpointError: unreadable ``resume`` checkpoint or one from another split.
        DatasetError: an image that does not decode (named).
    """
    t_start = time.perf_counter()
    check_option_names(options)
    with _process_group(options.get("device", TrainConfig.device)) as (dev, info):
        return _train(split, Path(out_dir), dev, info, t_start, given=options, resume=resume, data_root=data_root)


@contextlib.contextmanager
def _process_group(device: str) -> Iterator[tuple[torch.device, DistInfo]]:
    """Resolve ``device`` and, under ``torchrun``, join the process group for the call and leave it
    after (a group the caller created stays). The torch CPU thread count is restored on exit: it
    is this call's choice, not the process's."""
    _rank, local_rank, _world = env_world()
    dev = devices.resolve_device(device, local_rank)
    import torch.distributed as dist

    preinitialised = dist.is_available() and dist.is_initialized()
    info = init_distributed(dev.type)
    threads_before, ok = torch.get_num_threads(), False
    try:
        yield dev, info
        ok = True
    finally:
        torch.set_num_threads(threads_before)
        if not preinitialised:
            leave_process_group(info, wait_for_others=ok)


# --- what to run: the configuration, fresh or resumed ------------------------------------------

def _train(split, out_dir: Path, dev: torch.device, info: DistInfo, t_start: float, *, given: dict,
           resume, data_root) -> TrainResult:
    manifest = load_manifest(split, data_root=data_root)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory; choose a folder for the run")
    given = _normalise_weights(given)
    if resume is not None:
        resume = Path(resume)
        ckpt = _load_resume_checkpoint(resume, manifest, split)
        config = _resumed_config(given, ckpt, resume)
        _refuse_another_runs_folder(out_dir, resume)
    else:
        ckpt = None
        config = TrainConfig.from_options(given)
        _refuse_occupied_folder(out_dir)
    config = replace(config, weights=_resolve_weights(config.weights, config.arch))
    classes, train_items, val_items = _subsets(manifest, split)
    run = _setup(config, manifest, split, out_dir, dev, info, classes, ckpt, resume)
    train_items, val_items, excluded = _drop_changed(run, split, train_items, val_items)
    state = _RunState() if ckpt is None else _restore_from_checkpoint(run, ckpt, resume)

    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    run.reporter.info(_start_line(run, len(train_items), len(val_items), state.start_epoch if ckpt is not None else None))

    data = _epoch_data(run, train_items, val_items)
    step = _make_step(run, data.trainable(run.model))
    train_time_s = _run_epochs(run, data, step, state, t_start)

    if state.start_epoch >= config.epochs:
        run.reporter.info(f"{resume}: already trained for {config.epochs} epochs; nothing to do")
    barrier(info)
    wall = time.perf_counter() - t_start
    run.reporter.info(
        f"best val acc {state.best_val_acc:.4f} at epoch {state.best_epoch} → {run.best_path} · wall {wall:.1f} s"
        + (f" (features {data.feature_time_s:.1f} s, epochs {train_time_s:.1f} s)" if config.uses_feature_cache else "")
    )
    return TrainResult(
        run_dir=out_dir, best_checkpoint=run.best_path, last_checkpoint=run.last_path, history=state.history,
        best_val_acc=state.best_val_acc, best_epoch=state.best_epoch, epochs=config.epochs, wall_time_s=wall,
        feature_time_s=data.feature_time_s, train_time_s=train_time_s, device=str(dev),
        amp=devices.describe_amp(run.amp_dtype), world_size=info.world_size, start_epoch=state.start_epoch,
        config=config, excluded=excluded,
    )


def _normalise_weights(given: dict) -> dict:
    """A weights path given as ``os.PathLike`` becomes its string (what the checkpoint records)."""
    if given.get("weights") is not None:
        return {**given, "weights": os.fspath(given["weights"])}
    return given


def _resolve_weights(weights: str | None, arch: str) -> str:
    """``None`` → the arch's default weights (``get_backbone`` also refuses an unknown arch)."""
    spec = get_backbone(arch)
    return spec.default_weights if weights is None else str(weights)


def _load_resume_checkpoint(resume: Path, manifest: SplitManifest, split) -> dict:
    """The checkpoint to resume, refused when it was trained on another split."""
    ckpt = load_checkpoint(resume)
    if ckpt["split_sha256"] != manifest.sha256:
        raise CheckpointError(
            f"--resume {resume}: this checkpoint was trained on another split (sha256"
            f" {str(ckpt['split_sha256'])[:12]}…) than --split {split} (sha256 {manifest.sha256[:12]}…);"
            " resume with the split.json it was trained on, or start a new run"
        )
    return ckpt


def _resumed_config(given: dict, ckpt: dict, resume: Path) -> TrainConfig:
    """The checkpoint's recipe with this call's run settings; an explicitly given recipe option
    that differs from the checkpoint's is a conflict (an explicit ``weights=None`` means the
    arch's default weights, compared as such)."""
    saved = ckpt.get("train_args")
    if not isinstance(saved, dict) or any(k not in saved for k in RECIPE_FIELDS):
        raise CheckpointError(f"{resume}: checkpoint has no complete train_args; it cannot be resumed")
    if "weights" in given and given["weights"] is None:
        given = {**given, "weights": _resolve_weights(None, given.get("arch", saved["arch"]))}
    return resume_config(given, saved, str(resume))


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


def _refuse_another_runs_folder(out_dir: Path, resume: Path) -> None:
    last_path = out_dir / LAST_CHECKPOINT
    if last_path.exists() and last_path.resolve() != resume.resolve() and resume.resolve().parent != out_dir.resolve():
        raise UsageError(f"--out {out_dir}: holds another run's last.pt; resume into the folder of {resume}"
                         " or into a new --out")


def _refuse_occupied_folder(out_dir: Path) -> None:
    last_path, best_path = out_dir / LAST_CHECKPOINT, out_dir / BEST_CHECKPOINT
    existing = [p.name for p in (last_path, best_path) if p.exists()]
    if existing:
        raise UsageError(
            f"--out {out_dir}: already holds {', '.join(existing)}; continue it with --resume"
            f" {last_path}, or choose another --out (or delete the folder)"
        )


def _subsets(manifest: SplitManifest, split) -> tuple[list[str], list, list]:
    """(class names, train items, val items); refused when train or val is empty."""
    train_items, val_items = manifest.files("train"), manifest.files("val")
    if not train_items or not val_items:
        raise UsageError(
            f"--split {split}: needs train and val images (has {len(train_items)} train, {len(val_items)} val);"
            " re-run `edgeclf split` with non-zero train and val ratios"
        )
    if not manifest.data_root.is_dir():
        raise DatasetError(f"--split {split}: data_root {manifest.data_root} is not a folder; pass --data-root")
    return list(manifest.classes), train_items, val_items


def _drop_changed(run: "_Run", split, train_items, val_items) -> tuple[list, list, list[dict]]:
    """With ``on_changed="exclude"``, every train/val file verified against its recorded sha256
    first and the changed, missing or unreadable ones left out (and reported); with ``"error"``,
    nothing happens here and a changed file stops the run when it is read."""
    train_items, dropped_train = drop_changed(train_items, run.config.on_changed)
    val_items, dropped_val = drop_changed(val_items, run.config.on_changed)
    excluded = dropped_train + dropped_val
    for e in excluded:
        run.reporter.info(f"excluded (--on-changed exclude): {e['path']}: {e['reason']} ({e['detail']})")
    if not train_items or not val_items:
        raise DatasetError(f"--split {split}: no train or val image left after excluding {len(excluded)} changed"
                           " file(s); re-run `edgeclf split`")
    return train_items, val_items, excluded


# --- how to run it: hardware, model, optimiser ------------------------------------------------

@dataclass
class _Run:
    """Everything an epoch needs, fixed for the whole call."""

    config: TrainConfig
    dev: torch.device
    info: DistInfo
    n_workers: int
    amp_dtype: torch.dtype | None
    channels_last: bool
    pin_memory: bool
    model: Classifier
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    classes: list[str]
    preprocess: Any
    split: Any
    split_sha256: str
    out_dir: Path
    reporter: Reporter
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)

    @property
    def last_path(self) -> Path:
        return self.out_dir / LAST_CHECKPOINT

    @property
    def best_path(self) -> Path:
        return self.out_dir / BEST_CHECKPOINT


def _setup(config: TrainConfig, manifest: SplitManifest, split, out_dir: Path, dev: torch.device, info: DistInfo,
           classes: list[str], ckpt: dict | None, resume) -> _Run:
    """Hardware choices (pure functions in :mod:`train.devices`), the model, Adam, the cosine
    schedule and the grad scaler."""
    cpus = devices.available_cpus()
    if dev.type == "cpu":
        threads = devices.cpu_threads(cpus, info.world_size)
        if threads is not None:
            torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True
    n_workers = devices.default_workers(dev.type, cpus, info.world_size) if config.workers is None else config.workers
    amp_dtype = devices.choose_amp_dtype(dev.type, dev.type == "cuda" and torch.cuda.is_bf16_supported())
    channels_last = devices.use_channels_last(dev.type)

    model = _build_model(config, classes, dev, channels_last, ckpt, resume, split)
    # fused Adam: one kernel for all parameters, ~2x faster steps than foreach on CPU for the
    # 1.6 M-parameter head (CPU and CUDA both support it for float32 parameters).
    optimizer = torch.optim.Adam(param_groups(model, config.lr, config.unfreeze, config.backbone_lr_mult),
                                 lr=config.lr, weight_decay=config.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=devices.needs_grad_scaler(amp_dtype))
    return _Run(config=config, dev=dev, info=info, n_workers=n_workers, amp_dtype=amp_dtype,
                channels_last=channels_last, pin_memory=devices.use_pin_memory(dev.type), model=model,
                optimizer=optimizer, scheduler=scheduler, scaler=scaler, classes=classes,
                preprocess=_preprocess_for(get_backbone(config.arch).preprocess, config.decode, ckpt, resume),
                split=split, split_sha256=manifest.sha256,
                out_dir=out_dir, reporter=Reporter(enabled=config.progress and info.is_main))


def _build_model(config: TrainConfig, classes: list[str], dev: torch.device, channels_last: bool,
                 ckpt: dict | None, resume, split) -> Classifier:
    """Seeded initialisation; a resumed run takes every tensor from the checkpoint (no download).
    A frozen backbone loses its gradients and stays in eval mode."""
    seed_all(config.seed)
    model = build_model(config.arch, len(classes), "none" if ckpt is not None else config.weights,
                        dropout=config.dropout)
    if ckpt is not None:
        if list(ckpt["class_names"]) != classes:
            raise CheckpointError(f"--resume {resume}: class names differ from --split {split}")
        try:
            model.load_state_dict(ckpt["model_state"], strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"--resume {resume}: model_state does not fit {config.arch}:"
                                  f" {str(err).splitlines()[0]}") from err
    if config.frozen:
        freeze_backbone(model)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


# --- progress carried between epochs (and through checkpoints) --------------------------------

@dataclass
class _RunState:
    """Epochs done, their history, the best epoch so far (ties: lower validation loss wins) and the
    wall time of earlier calls (a resumed run's ``elapsed_s`` continues)."""

    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_acc: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    elapsed_before: float = 0.0

    def record(self, row: dict) -> bool:
        """Append an epoch row; return whether it is the new best."""
        self.history.append(row)
        is_best = row["val_acc"] > self.best_val_acc or (
            row["val_acc"] == self.best_val_acc and row["val_loss"] < self.best_val_loss)
        if is_best:
            self.best_val_acc, self.best_val_loss, self.best_epoch = row["val_acc"], row["val_loss"], row["epoch"]
        return is_best


def _restore_from_checkpoint(run: _Run, ckpt: dict, resume) -> _RunState:
    """Optimizer, scheduler, grad-scaler and RNG states from the checkpoint; the progress so far."""
    try:
        run.optimizer.load_state_dict(ckpt["optimizer_state"])
        run.scheduler.load_state_dict(ckpt["scheduler_state"])
        if ckpt.get("scaler_state"):
            run.scaler.load_state_dict(ckpt["scaler_state"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"--resume {resume}: optimizer/scheduler state unusable ({err})") from err
    start_epoch = int(ckpt["epoch"])
    state = _RunState(
        start_epoch=start_epoch, history=[dict(r) for r in ckpt.get("history", [])][:start_epoch],
        best_val_acc=float(ckpt.get("best_val_acc", -1.0)), best_val_loss=float(ckpt.get("best_val_loss", math.inf)),
        best_epoch=int(ckpt.get("best_epoch", 0)), elapsed_before=float(ckpt.get("elapsed_s", 0.0)))
    if ckpt.get("rng_state"):
        set_rng_state(ckpt["rng_state"])
    return state


def _start_line(run: _Run, n_train: int, n_val: int, resumed_after: int | None) -> str:
    c = run.config
    return (
        f"[bold]train[/] {c.arch} ({c.weights}) on {n_train} train / {n_val} val"
        f" images, {len(run.classes)} classes · {run.dev} {devices.describe_amp(run.amp_dtype)}"
        f" · {torch.get_num_threads()} threads, {run.n_workers} workers · {run.info.world_size} process(es)"
        f" · {'frozen backbone' if c.frozen else 'unfrozen'}"
        + (f", feature cache ({1 + c.aug_views} view(s)/image)" if c.uses_feature_cache else "")
        + (f" · resuming after epoch {resumed_after}" if resumed_after is not None else "")
    )


# --- the data of an epoch: cached features or images -------------------------------------------

class _FeatureEpochs:
    """Frozen backbone with the feature cache: the head trains on cached (V, N, D) train features
    and validates on (N_val, D) val features."""

    def __init__(self, run: _Run, train_items, val_items, sampler):
        self.run, self.sampler = run, sampler
        self.labels_train = torch.tensor([y for _, y in train_items], dtype=torch.long)
        self.labels_val = torch.tensor([y for _, y in val_items], dtype=torch.long)
        feats_train, feats_val, self.feature_time_s = cached_or_extract(
            run.model, run.config.recipe(), run.split_sha256, run.preprocess, train_items, val_items, run.out_dir,
            run.dev, run.info, run.amp_dtype, run.channels_last, run.n_workers, run.reporter)
        self.feats_train, self.feats_val = feats_train.to(run.dev), feats_val.to(run.dev)

    def trainable(self, model: Classifier) -> nn.Module:
        return model.head

    def threads(self, threads: int) -> int:
        """Torch threads while the head trains (one on CPU: the head is small)."""
        return devices.head_threads(self.run.dev.type, threads)

    def train(self, step: Callable, epoch: int, advance: Callable[[int], None]) -> tuple[float, int, int]:
        r = self.run
        return epoch_on_features(step, self.feats_train, self.labels_train, self.sampler, r.config.batch_size,
                                 r.config.seed, epoch, r.dev, advance)

    def validate(self) -> tuple[float, int, int]:
        r = self.run
        return validate_features(r.model.head, self.feats_val, self.labels_val.to(r.dev), r.info, r.dev,
                                 r.amp_dtype, r.criterion)


class _ImageEpochs:
    """No feature cache: every epoch decodes, augments and runs the whole model (DataLoaders)."""

    feature_time_s = 0.0

    def __init__(self, run: _Run, train_items, val_items, sampler):
        self.run, self.sampler = run, sampler
        c, n = run.config, run.n_workers
        train_ds = ImageListDataset(train_items, run.preprocess, augment=True)
        val_ds = ImageListDataset(val_items, run.preprocess)
        self.keyed = KeyedSampler(sampler, c.seed)
        self.train_loader = torch.utils.data.DataLoader(
            train_ds, batch_size=c.batch_size, sampler=self.keyed, num_workers=n, pin_memory=run.pin_memory,
            persistent_workers=n > 0, drop_last=False)
        self.val_loader = torch.utils.data.DataLoader(
            val_ds, batch_size=max(c.batch_size, 64), sampler=list(range(run.info.rank, len(val_ds), run.info.world_size)),
            num_workers=n, pin_memory=run.pin_memory)

    def trainable(self, model: Classifier) -> nn.Module:
        return model

    def threads(self, threads: int) -> int:
        return threads

    def train(self, step: Callable, epoch: int, advance: Callable[[int], None]) -> tuple[float, int, int]:
        self.keyed.set_epoch(epoch)
        return epoch_on_images(step, self.train_loader, self.run.dev, self.run.channels_last, advance)

    def validate(self) -> tuple[float, int, int]:
        r = self.run
        return validate_images(r.model, self.val_loader, r.dev, r.amp_dtype, r.channels_last, r.criterion)


def _epoch_data(run: _Run, train_items, val_items) -> _FeatureEpochs | _ImageEpochs:
    """Cached features for a frozen backbone with the cache on, else images. The train share of
    each process comes from a ``DistributedSampler`` (world size 1: all images, shuffled per epoch)."""
    sampler = torch.utils.data.DistributedSampler(
        range(len(train_items)), num_replicas=run.info.world_size, rank=run.info.rank, shuffle=True,
        seed=run.config.seed, drop_last=False)
    kind = _FeatureEpochs if run.config.uses_feature_cache else _ImageEpochs
    return kind(run, train_items, val_items, sampler)


# --- the epochs --------------------------------------------------------------------------------

def _make_step(run: _Run, trainable: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], tuple[float, int]]:
    """One optimisation step on a batch ``x`` (B, …), ``y`` (B,) int64: autocast forward,
    cross-entropy on float32 logits, (scaled) backward, Adam step. Returns (loss x B, correct).
    Under torchrun the trainable part is wrapped in DistributedDataParallel."""
    if run.info.distributed:
        trainable = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)
    dev, amp_dtype, optimizer, scaler, criterion = run.dev, run.amp_dtype, run.optimizer, run.scaler, run.criterion

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = trainable(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach()) * y.shape[0], int((logits.argmax(1) == y).sum())

    return step


def _run_epochs(run: _Run, data: _FeatureEpochs | _ImageEpochs, step: Callable, state: _RunState,
                t_start: float) -> float:
    """Epochs ``start_epoch + 1 .. epochs``: train, validate, step the schedule, checkpoint.
    Returns their wall time in seconds."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(data.threads(threads_before))
    train_time_s = 0.0
    try:
        for epoch in range(state.start_epoch + 1, run.config.epochs + 1):
            row = _one_epoch(run, data, step, epoch, state, t_start)
            train_time_s += row["epoch_time_s"]
            is_best = state.record(row)
            if run.info.is_main:
                _save_epoch(run, state, row, is_best)
            run.reporter.epoch(row, run.config.epochs, is_best)
    finally:
        torch.set_num_threads(threads_before)
    return train_time_s


def _one_epoch(run: _Run, data: _FeatureEpochs | _ImageEpochs, step: Callable, epoch: int, state: _RunState,
               t_start: float) -> dict[str, Any]:
    """Train and validate one epoch; its history row (sums all-reduced over processes)."""
    info, epochs = run.info, run.config.epochs
    t_epoch = time.perf_counter()
    torch.manual_seed(sample_seed(run.config.seed, epoch, info.rank))  # dropout etc.: a function of (seed, epoch, rank)
    set_train_mode(run.model, run.config.frozen)
    lr_now = run.optimizer.param_groups[-1]["lr"]
    with run.reporter.task(f"epoch {epoch}/{epochs}", len(data.sampler) * info.world_size) as advance:
        loss_sum, correct, seen = data.train(step, epoch, lambda k: advance(k * info.world_size))
    t_train = time.perf_counter() - t_epoch
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info, run.dev)

    run.model.eval()
    v_loss, v_correct, v_seen = all_reduce_sum(list(data.validate()), info, run.dev)
    run.scheduler.step()

    epoch_time = time.perf_counter() - t_epoch
    return {
        "epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
        "val_loss": v_loss / v_seen, "val_acc": v_correct / v_seen, "lr": lr_now,
        "train_images": int(seen), "train_images_per_s": seen / t_train if t_train > 0 else 0.0,
        "epoch_time_s": epoch_time, "elapsed_s": state.elapsed_before + (time.perf_counter() - t_start),
    }


def _save_epoch(run: _Run, state: _RunState, row: dict, is_best: bool) -> None:
    """Rank 0: ``best.pt`` (when best), ``last.pt`` and the history files, each written atomically."""
    ckpt = checkpoint_state(
        recipe=run.config.recipe(), classes=run.classes, cfg=run.preprocess, model=run.model, split=run.split,
        split_sha256=run.split_sha256, epoch=row["epoch"], epochs=run.config.epochs,
        best=(state.best_val_acc, state.best_val_loss, state.best_epoch), row=row, optimizer=run.optimizer,
        scheduler=run.scheduler, scaler=run.scaler, history=state.history, info=run.info)
    # best.pt first: a crash between the two writes leaves last.pt at the previous epoch, so a
    # resume redoes this epoch and rewrites best.pt — never a best.pt older than the best epoch
    # last.pt records.
    if is_best:
        save_checkpoint(ckpt, run.best_path)
    save_checkpoint(ckpt, run.last_path)
    write_history(run.out_dir, state.history)
