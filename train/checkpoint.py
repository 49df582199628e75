"""Checkpoints: plain dicts of tensors and plain values, written atomically.

Format (``format == "edgeclf.checkpoint"``, ``schema_version == 1``)::

    {
      "format": "edgeclf.checkpoint", "schema_version": 1, "edgeclf_version": "0.1.0",
      "arch": "efficientnet_lite0", "weights": "IMAGENET",       # backbone and its weights source
      "num_classes": 9, "class_names": [...],                     # ordered; index = logit column
      "preprocess": PreprocessConfig.to_dict(),                   # crop/resize sizes, mean/std, ...
      "model_args": {"hidden_dim": 1280, "dropout": 0.4},
      "model_state": state_dict of the whole Classifier (backbone.* and head.*),
      "split_sha256": "…",                                        # sha256 of split.json's bytes
      "split_path": "/abs/split.json",                            # where it was (informative)
      "epoch": 12, "epochs": 30,                                   # epochs completed / planned
      "val_acc": 0.99, "val_loss": 0.02,                           # of this epoch
      "best_val_acc": 0.995, "best_val_loss": 0.02, "best_epoch": 9,
      "optimizer_state": …, "scheduler_state": …, "scaler_state": … or None,
      "rng_state": {"python": …, "numpy": {"keys": tensor, …}, "torch": …, "cuda": […]},
      "history": [{"epoch": 1, "train_loss": …, …}, …],          # see train.history
      "train_args": {…},                                          # the recipe (train.recipe keys)
      "world_size": 1, "elapsed_s": 250.0,                         # processes; wall time so far
    }

``best.pt`` and ``last.pt`` have the same format (``best.pt`` is the state after the epoch with
the best validation accuracy, ties broken by the lower validation loss).

No pickled objects beyond tensors and builtins (so ``torch.load(weights_only=True)`` reads it),
never an argparse ``Namespace``. :class:`CheckpointInfo` is the typed definition of its
plain-value fields (tensor-holding fields are typed as objects); :func:`load_checkpoint` checks a
file against it. This module imports torch only inside the functions that read or write files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeclf.runtime import schema as _schema
from edgeclf.runtime.errors import first_line
from edgeclf.runtime.files import temp_sibling
from edgeclf.runtime.preprocess import PreprocessConfig

from .errors import CheckpointError

if TYPE_CHECKING:
    from .models import Classifier

FORMAT = "edgeclf.checkpoint"
SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """The checkpoint dict's fields and their types (``format == "edgeclf.checkpoint"``, v1).

    Required: ``arch``, ``num_classes``, ``class_names``, ``preprocess``, ``model_state``,
    ``split_sha256``; the rest is written by ``edgeclf train`` and needed only to resume.
    ``model_state``/``optimizer_state``/… hold tensors; only their container type is checked here.
    """

    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    edgeclf_version: str | None = None
    arch: str
    weights: str | None = None
    num_classes: int
    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    model_args: dict[str, Any] = field(default_factory=dict)
    model_state: dict[str, Any]
    split_sha256: str
    split_path: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    val_acc: float | None = None
    val_loss: float | None = None
    best_val_acc: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    scaler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = ()
    train_args: dict[str, Any] | None = None
    world_size: int | None = None
    elapsed_s: float | None = None

    def __post_init__(self):
        if self.num_classes != len(self.class_names):
            raise ValueError(f"num_classes {self.num_classes} but {len(self.class_names)} class_names")


#: Fields every checkpoint must have (the others have defaults).
REQUIRED_KEYS = tuple(f.name for f in dataclasses.fields(CheckpointInfo)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def checkpoint_info(ckpt: Any, source: str) -> CheckpointInfo:
    """Validate a loaded checkpoint dict against :class:`CheckpointInfo`.

    Raises:
        CheckpointError: not a dict, another format, an older or newer ``schema_version``, a
            missing field or one of the wrong type; the one-line message names ``source`` and
            the field.
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an edgeclf checkpoint (use RUN_DIR/best.pt written by `edgeclf train`)",
                              source=source)
    _schema.check_header(ckpt, source, FORMAT, SCHEMA_VERSION, CheckpointError, schema_key="format",
                         fix="re-train with this edgeclf")
    return _schema.from_dict(CheckpointInfo, ckpt, source=source, error=CheckpointError)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash mid-write leaves the previous ``path`` intact and no half-written file under its name.
    ``format``/``schema_version`` are filled in.
    """
    import torch

    path = Path(path)
    state = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **state}
    tmp = temp_sibling(path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate an edgeclf checkpoint (on CPU).

    Returns:
        The checkpoint dict (see the module docstring), checked against :class:`CheckpointInfo`.
    Raises:
        CheckpointError: missing file, truncated/corrupt file, a file that is not an edgeclf
            checkpoint (e.g. a bare state dict), an older or newer schema version, a missing
            field or one of the wrong type. The one-line message names the file and the field.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zipfile/pickle/EOF/RuntimeError from a truncated or foreign file
        raise CheckpointError(
            f"{path}: cannot read checkpoint, truncated or not a torch file ({first_line(err)})"
        ) from err
    checkpoint_info(ckpt, str(path))
    return ckpt


def preprocess_of(ckpt: dict[str, Any]) -> PreprocessConfig:
    """The checkpoint's :class:`PreprocessConfig`."""
    return PreprocessConfig.from_dict(ckpt["preprocess"])


def model_from_checkpoint(ckpt: dict[str, Any]) -> "Classifier":
    """Rebuild the :class:`Classifier` of a loaded checkpoint, weights loaded, in eval mode.

    The backbone is built with random initialisation (no download) and then overwritten by
    ``model_state``. Raises :class:`CheckpointError` if the state does not fit the architecture.
    """
    from .models import Classifier, get_backbone

    spec = get_backbone(ckpt["arch"])
    args = ckpt.get("model_args", {})
    model = Classifier(spec.build("none"), spec.feature_dim, int(ckpt["num_classes"]),
                       hidden_dim=args.get("hidden_dim"), dropout=args.get("dropout", 0.4))
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint model_state does not fit {ckpt['arch']}: {str(err).splitlines()[0]}") from err
    return model.eval()
