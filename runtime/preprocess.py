"""The preprocessing contract: how a decoded RGB image becomes a model input, torch-free.

:class:`PreprocessConfig` travels with every checkpoint and artifact (like timm's
``PretrainedCfg``); :func:`preprocess` is the one implementation used for evaluation in
``train/``, for the parity gates in ``export/`` and for inference in ``runtime/``.

The recipe is torchvision's classification eval transform
(``Resize(resize_size) → CenterCrop(crop_size) → ToTensor() → Normalize(mean, std)``, bilinear,
antialiased), re-implemented with Pillow + numpy so the runtime needs no torch. For an RGB
``PIL.Image`` input the output is bit-identical (max |Δ| == 0) to torchvision's, which
``tests/test_preprocess.py`` checks on real Caltech images:

* Resize: the shorter side becomes ``resize_size``, the longer ``int(resize_size * long / short)``
  (truncation, as ``torchvision.transforms.functional._compute_resized_output_size``), with
  ``PIL.Image.resize(..., BILINEAR)`` — which is what torchvision calls for PIL inputs.
* CenterCrop: top = ``int(round((h - crop) / 2.0))``, left likewise, zero-padded first if smaller.
* ToTensor: ``uint8 → float32 / 255``; Normalize: ``(x - mean) / std`` in float32.

Decoding (``PreprocessConfig.decode``), chosen at training time and stored with the model:

* ``"exact"`` (default): the full image is decoded, then resized — the torchvision recipe above.
* ``"draft"``: JPEG files are decoded by libjpeg at the smallest DCT scale (1/1, 1/2, 1/4, 1/8)
  whose *both* sides are still at least ``resize_size`` (``PIL.Image.draft``), then resized and
  cropped as above. A 12-megapixel photo decodes ~8x fewer pixels; the input differs slightly
  from ``exact`` (DCT-domain downscaling instead of a bilinear filter over the full image), so a
  model is trained with the mode it is served with — training, the export gates and the runtime
  all decode through :func:`decode_size` + :func:`runtime.image.load_image`. Other formats decode
  exactly either way.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from .errors import ImageAspectRatioError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
#: ``PreprocessConfig.decode`` values.
DECODE_MODES = ("exact", "draft")


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to turn an RGB image into the model's input tensor.

    Attributes:
        crop_size: side of the square model input in pixels (H = W = crop_size), e.g. 224.
        resize_size: the shorter image side is resized to this before the centre crop, e.g. 256.
        mean, std: per-channel normalisation in RGB order, applied to values scaled to [0, 1].
            ImageNet's (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225) for torchvision backbones,
            (0.5, 0.5, 0.5)/(0.5, 0.5, 0.5) for EfficientNet-Lite0.
        interpolation: ``"bilinear"`` (default, antialiased), ``"bicubic"`` or ``"nearest"``.
        color_order: channel order of the input tensor; always ``"RGB"``.
        layout: memory layout of the input tensor; always ``"NCHW"``.
        decode: ``"exact"`` (default; full decode, bit-identical to torchvision) or ``"draft"``
            (JPEG DCT-domain downscaling to >= ``resize_size`` before the resize; see the module
            docstring). Configs written before this field existed read back as ``"exact"``.
    """

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    color_order: str = "RGB"
    layout: str = "NCHW"
    decode: str = "exact"

    def __post_init__(self):
        if self.decode not in DECODE_MODES:
            raise UsageError(f"decode={self.decode!r}: use one of {', '.join(DECODE_MODES)}")
        if self.interpolation not in _INTERPOLATIONS:
            raise UsageError(
                f"interpolation={self.interpolation!r}: use one of {sorted(_INTERPOLATIONS)}"
            )
        if self.crop_size <= 0 or self.resize_size < self.crop_size:
            raise UsageError(
                f"crop_size={self.crop_size}, resize_size={self.resize_size}: need 0 < crop_size <= resize_size"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or not all(math.isfinite(float(v)) for v in (*self.mean, *self.std)) \
                or min(self.std) <= 0:
            raise UsageError(f"mean={self.mean}, std={self.std}: need 3 finite values each and std > 0")
        # Normalise sequences to tuples of float so configs compare and hash equal.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.color_order != "RGB" or self.layout != "NCHW":
            raise UsageError("only color_order='RGB' and layout='NCHW' are supported")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (lists for mean/std)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``UsageError`` naming them."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown preprocessing keys {sorted(unknown)}")
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one preprocessed image."""
        return (3, self.crop_size, self.crop_size)


def decode_size(cfg: PreprocessConfig) -> int | None:
    """The ``draft_to`` argument of :func:`runtime.image.load_image` for ``cfg``: the smallest
    side (pixels) a JPEG may be DCT-downscaled to (``resize_size``) when ``cfg.decode == "draft"``,
    else ``None`` (decode in full)."""
    return cfg.resize_size if cfg.decode == "draft" else None


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(new_width, new_height) with the shorter side = ``size``, as torchvision computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


#: Most pixels the intermediate resized image may have (32 Mpx ≈ 92 MiB in RGB). The shorter side
#: becomes ``resize_size``, so an elongated image would otherwise need an arbitrarily large
#: intermediate (a 1 x 20,000 strip → 256 x 5,120,000 = 3.7 GiB). ``runtime.image.load_image``
#: already refuses such images by their aspect ratio; this guard covers ``PIL.Image`` inputs
#: that reach :func:`preprocess` directly.
MAX_RESIZED_PIXELS = 32 * 1024 * 1024


def check_resize_bounds(width: int, height: int, cfg: PreprocessConfig) -> None:
    """Refuse, before allocating anything, an image whose resized intermediate would exceed
    :data:`MAX_RESIZED_PIXELS`.

    Raises:
        ImageAspectRatioError: naming the image size, the intermediate size and the limit.
    """
    new_w, new_h = resized_size(width, height, cfg.resize_size)
    if new_w * new_h > MAX_RESIZED_PIXELS:
        raise ImageAspectRatioError(
            f"<image {width}x{height}>",
            f"resizing the short side to {cfg.resize_size} would need a {new_w}x{new_h} intermediate"
            f" ({new_w * new_h:,} pixels, limit {MAX_RESIZED_PIXELS:,}); crop it to the object first")


def resize_and_crop(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Resize the shorter side to ``cfg.resize_size``, then centre-crop ``cfg.crop_size`` square.

    Args:
        img: RGB ``PIL.Image`` (use :func:`runtime.image.load_image` to get one).
    Returns:
        RGB ``PIL.Image`` of size (crop_size, crop_size).
    Raises:
        ImageAspectRatioError: the resized intermediate would exceed :data:`MAX_RESIZED_PIXELS`.
    """
    w, h = img.size
    check_resize_bounds(w, h, cfg)
    new_w, new_h = resized_size(w, h, cfg.resize_size)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), _INTERPOLATIONS[cfg.interpolation])
    crop = cfg.crop_size
    if new_w < crop or new_h < crop:  # cannot happen when resize_size >= crop_size; kept for safety
        padded = Image.new("RGB", (max(new_w, crop), max(new_h, crop)))
        padded.paste(img, ((max(new_w, crop) - new_w) // 2, (max(new_h, crop) - new_h) // 2))
        img, (new_w, new_h) = padded, padded.size
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def normalize(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 (H, W, 3) RGB → float32 (3, H, W): ``(x / 255 - mean) / std``, computed in float32."""
    x = rgb.astype(np.float32) / np.float32(255.0)  # (H, W, 3), as ToTensor: float().div(255)
    x = x.transpose(2, 0, 1)  # (3, H, W)
    mean = np.asarray(cfg.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(cfg.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def preprocess(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """One RGB image → the model input for it.

    Args:
        img: RGB ``PIL.Image`` of any size (decode with :func:`runtime.image.load_image`).
        cfg: the artifact's or checkpoint's :class:`PreprocessConfig`.
    Returns:
        float32 array of shape (3, crop_size, crop_size), NCHW channel-first, normalised.
    Raises:
        UsageError: ``img`` is not an RGB ``PIL.Image``.
    """
    if not isinstance(img, Image.Image) or img.mode != "RGB":
        raise UsageError("preprocess() needs an RGB PIL.Image; decode inputs with runtime.load_image()")
    return normalize(np.asarray(resize_and_crop(img, cfg)), cfg)


def preprocess_batch(images: Iterable[Image.Image], cfg: PreprocessConfig) -> np.ndarray:
    """Stack :func:`preprocess` of each image: float32 (N, 3, crop_size, crop_size)."""
    arrays: Sequence[np.ndarray] = [preprocess(img, cfg) for img in images]
    if not arrays:
        return np.zeros((0, *cfg.input_shape), dtype=np.float32)
    return np.stack(arrays)
