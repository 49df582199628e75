"""The training configuration: one frozen dataclass holding every default of ``edgeclf train``.

:class:`TrainConfig` is torch-free, so ``edgeclf train --help`` reads its defaults and option help
from here instead of a copied table. Its fields are of two kinds:

* **recipe** fields (arch, weights, epochs, batch size, learning rate, …) define a run: they are
  stored in the checkpoint as ``train_args``, and a resumed run keeps them.
* **run settings** (device, workers, progress) only say where and how this process runs; a resumed
  run may change them freely.

Options a caller does not give are *not given* — not "given with the default value": on
``--resume`` a not-given recipe option takes the checkpoint's value, an explicitly given one must
equal it (see :func:`resume_config`). Fixed parts of the recipe, not options: Adam (fused), a
cosine learning-rate schedule over ``epochs`` stepped per epoch, cross-entropy on logits, and the
precision chosen by the device (bf16/fp16 autocast on CUDA, fp32 on CPU; see
:mod:`edgeclf.train.devices`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from edgeclf.runtime.errors import UsageError


def _option(default: Any, help: str, *, recipe: bool = True, cli: bool = True, type: type | None = None,
            metavar: str | None = None, choices: tuple | None = None) -> Any:
    """A TrainConfig field with its CLI help; ``type`` for fields whose default is ``None``;
    ``choices``: the only values accepted."""
    return field(default=default, metadata={"help": help, "recipe": recipe, "cli": cli, "choices": choices,
                                            "type": type or builtin_type(default), "metavar": metavar})


def builtin_type(value: Any) -> type:
    return bool if isinstance(value, bool) else int if isinstance(value, int) else \
        float if isinstance(value, float) else str


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, with its default (chosen on the validation subset of the
    nine-class Caltech split; see README).

    Attributes:
        arch: backbone name (``resnet50``, ``efficientnet_lite0``, ``tiny_cnn``).
        weights: backbone weights: ``None`` (the arch's ImageNet weights), a named set, ``"none"``
            (random) or a state dict path.
        epochs: total epochs; the cosine schedule spans them.
        batch_size: images (or cached feature rows) per optimisation step, per process.
        lr: Adam learning rate of the head (peak of the cosine schedule).
        weight_decay: Adam L2 penalty (>= 0).
        dropout: head dropout probability, 0 <= p < 1.
        backbone_lr_mult: with ``unfreeze``, the backbone learns at ``lr * backbone_lr_mult``.
        seed: seeds head initialisation, shuffling, dropout and augmentation.
        unfreeze: fine-tune the backbone too (disables the feature cache).
        feature_cache: with a frozen backbone, compute backbone features once per image.
        aug_views: with the cache, also cache this many augmented views per train image.
        decode: ``"exact"`` or ``"draft"`` JPEG decoding (``None``: exact for a fresh run, the
            checkpoint's on resume, where a different value is refused). Stored in the checkpoint's
            preprocessing (not ``train_args``), so it reaches the export gates and the runtime.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (run setting).
        workers: DataLoader worker processes; ``None``: chosen by device and CPU count (run setting).
        progress: progress bars and one line per epoch on stderr, rank 0 only (run setting).
        on_changed: ``"error"`` or ``"exclude"``: what to do with a file whose bytes differ from the
            split manifest's sha256 (run setting; see :func:`edgeclf.train.datasets.drop_changed`).
    Raises:
        UsageError: on construction, listing every out-of-range value (one line).
    """

    arch: str = _option("resnet50", "backbone: resnet50, efficientnet_lite0 (offline ImageNet weights),"
                                    " tiny_cnn (tests)")
    weights: str | None = _option(None, "backbone weights: resnet50 DEFAULT|IMAGENET1K_V1|IMAGENET1K_V2,"
                                        " efficientnet_lite0 IMAGENET; 'none' (random) or a state dict PATH"
                                        " (default: the arch's ImageNet weights)", type=str, metavar="NAME|PATH")
    epochs: int = _option(30, "epochs; the cosine learning-rate schedule spans them", metavar="N")
    batch_size: int = _option(32, "batch size per process", metavar="N")
    lr: float = _option(1e-3, "head learning rate, Adam, cosine schedule")
    weight_decay: float = _option(0.0, "Adam weight decay", metavar="WD")
    dropout: float = _option(0.4, "head dropout", metavar="P")
    backbone_lr_mult: float = _option(0.1, "with --unfreeze, the backbone learns at lr x this", metavar="X")
    seed: int = _option(0, "random seed (initialisation, shuffling, dropout, augmentation)", metavar="N")
    unfreeze: bool = _option(False, "fine-tune the backbone too (disables the feature cache)")
    feature_cache: bool = _option(True, "with a frozen backbone, compute its features once per image;"
                                        " --no-feature-cache recomputes them every epoch (slow)")
    aug_views: int = _option(0, "augmented views per train image added to the feature cache", metavar="K")
    decode: str | None = _option(None, "how JPEGs are decoded, stored with the model's preprocessing and used by"
                                       " export and runtime: exact (full decode, torchvision-identical) or draft"
                                       " (libjpeg DCT downscaling to >= the resize size; several times faster on"
                                       " 12-MP photos) (default: exact; a resumed run keeps its own)",
                                 recipe=False, type=str, choices=("exact", "draft"))
    device: str = _option("auto", "auto|cpu|cuda|cuda:N", recipe=False)
    workers: int | None = _option(None, "DataLoader workers (default: by device and CPU count)", recipe=False,
                                  type=int, metavar="N")
    progress: bool = _option(True, "progress bars and epoch lines", recipe=False, cli=False)
    on_changed: str = _option("error", "a train/val file whose bytes differ from the split's sha256: error"
                                       " (refuse, naming it) or exclude (verify all first, train without"
                                       " them, list them)", recipe=False, choices=("error", "exclude"))

    def __post_init__(self) -> None:
        problems = []
        if not (_is_int(self.epochs) and self.epochs >= 1):
            problems.append(f"--epochs {self.epochs}: need an integer >= 1")
        if not (_is_int(self.batch_size) and self.batch_size >= 1):
            problems.append(f"--batch-size {self.batch_size}: need an integer >= 1")
        if not (_is_number(self.lr) and self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"--lr {self.lr}: need a positive number")
        if not (_is_int(self.aug_views) and self.aug_views >= 0):
            problems.append(f"--aug-views {self.aug_views}: need an integer >= 0")
        if self.workers is not None and not (_is_int(self.workers) and self.workers >= 0):
            problems.append(f"--workers {self.workers}: need an integer >= 0")
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"--weight-decay {self.weight_decay}: need >= 0")
        if not (_is_number(self.dropout) and 0 <= self.dropout < 1):
            problems.append(f"--dropout {self.dropout}: need 0 <= p < 1")
        if not (_is_number(self.backbone_lr_mult) and self.backbone_lr_mult > 0):
            problems.append(f"--backbone-lr-mult {self.backbone_lr_mult}: need > 0")
        if self.on_changed not in ("error", "exclude"):
            problems.append(f"--on-changed {self.on_changed}: use error or exclude")
        if not _is_int(self.seed):
            problems.append(f"--seed {self.seed}: need an integer")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def frozen(self) -> bool:
        """The backbone is frozen (not ``unfreeze``)."""
        return not self.unfreeze

    @property
    def uses_feature_cache(self) -> bool:
        """Backbone features are computed once: frozen backbone and ``feature_cache`` on."""
        return self.frozen and self.feature_cache

    def recipe(self) -> dict[str, Any]:
        """The recipe fields as a plain dict (the checkpoint's ``train_args``)."""
        return {k: v for k, v in asdict(self).items() if k in RECIPE_FIELDS}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> "TrainConfig":
        """``TrainConfig`` from ``base`` values overridden by the given ``options``.

        Raises:
            TypeError: an option that is no TrainConfig field (like a wrong keyword argument).
            UsageError: an out-of-range value.
        """
        check_option_names(options)
        return cls(**{**(base or {}), **options})


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


#: Field names of the recipe (kept by a resumed run) and of the run settings, in declaration order.
RECIPE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.metadata["recipe"])
RUN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if not f.metadata["recipe"])


def check_option_names(options: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` naming every key of ``options`` that is no :class:`TrainConfig` field."""
    unknown = sorted(set(options) - set(RECIPE_FIELDS) - set(RUN_FIELDS))
    if unknown:
        raise TypeError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(RECIPE_FIELDS + RUN_FIELDS)}")


def resume_config(given: Mapping[str, Any], saved: Mapping[str, Any], source: str) -> TrainConfig:
    """The configuration of a resumed run: the checkpoint's recipe plus this call's run settings.

    Args:
        given: the options passed explicitly to this call (not-given ones absent).
        saved: the checkpoint's ``train_args`` (every recipe field).
        source: the checkpoint path, for the messages.
    Raises:
        UsageError: a given recipe option differs from the checkpoint's value (every such option
            named in one line) — a resumed run keeps its recipe.
    """
    check_option_names(given)
    conflicts = [f"{k}={given[k]!r} (checkpoint: {saved[k]!r})" for k in RECIPE_FIELDS
                 if k in given and given[k] != saved[k]]
    if conflicts:
        raise UsageError(
            f"--resume {source}: {', '.join(conflicts)}; a resumed run keeps its recipe — drop these"
            " options (or give the checkpoint's values) to continue it, or start a new run with another --out"
        )
    return TrainConfig.from_options({k: v for k, v in given.items() if k in RUN_FIELDS},
                                    base={k: saved[k] for k in RECIPE_FIELDS})
