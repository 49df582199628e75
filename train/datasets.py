"""Image datasets for training and evaluation: decoding, the eval transform and augmentation.

Every image is decoded by :func:`runtime.image.load_image` (EXIF orientation, any mode → RGB by
one rule), so training sees the pixels the runtime will see at inference.

* Evaluation/feature extraction: :func:`runtime.preprocess.preprocess` (torchvision's eval
  transform, bit-identical, torch-free), wrapped by :func:`eval_transform`.
* Training augmentation: :func:`train_transform`, the reference recipe expressed in the
  backbone's own sizes.

Augmentation is reproducible: a sample is requested with a key ``(index, seed)`` and its random
transform runs under ``torch.manual_seed(seed)`` (in a forked RNG, so the global stream is not
touched). The seed is :func:`sample_seed` ``(run_seed, stream, index)`` — a function of the run
seed, the epoch (or augmented view) and the image only, so the same sample gets the same crop
whatever the number of DataLoader workers, the process count or an interruption and resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from edgeclf.runtime.errors import InvalidImageError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, decode_size, preprocess

from .errors import DatasetError

#: ``stream`` offset of the cached augmented views in :func:`sample_seed` (epochs use 1, 2, …).
VIEW_STREAM = 1_000_000


def sample_seed(run_seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for one sample's augmentation, derived from (run seed, stream, image index).

    ``stream`` is the epoch number for on-the-fly augmentation and ``VIEW_STREAM + v`` for the
    v-th cached augmented view. Independent streams come from ``numpy.random.SeedSequence``.
    """
    words = [int(run_seed) & 0xFFFFFFFF, int(stream) & 0xFFFFFFFF, int(index) + 1]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def eval_transform(cfg: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """RGB ``PIL.Image`` → float32 tensor (3, crop, crop): :func:`runtime.preprocess.preprocess`."""

    def _apply(img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(preprocess(img, cfg))

    return _apply


def train_transform(cfg: PreprocessConfig, rotation_deg: float = 15.0,
                    scale: tuple[float, float] = (0.8, 1.0)) -> Callable[[Image.Image], torch.Tensor]:
    """Training augmentation: RGB ``PIL.Image`` → float32 tensor (3, crop, crop), normalised.

    The reference recipe (for ResNet50 at 224 px) was ``RandomResizedCrop(256, scale=(0.8, 1.0))
    → RandomRotation(15) → RandomHorizontalFlip → CenterCrop(224)`` with ImageNet mean/std. Here
    256 and 224 become the backbone's ``resize_size`` and ``crop_size`` and the normalisation is
    the backbone's (0.5/0.5 for EfficientNet-Lite0), so train and eval inputs share scale and
    statistics: the random crop keeps 80–100 % of the image at the eval resize, the rotation's
    black corners are mostly cut away by the centre crop, exactly as at eval time. Bilinear,
    antialiased resampling as in the eval transform.
    """
    from torchvision import transforms as T

    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
              "nearest": T.InterpolationMode.NEAREST}[cfg.interpolation]
    return T.Compose([
        T.RandomResizedCrop(cfg.resize_size, scale=scale, interpolation=interp, antialias=True),
        T.RandomRotation(rotation_deg, interpolation=T.InterpolationMode.BILINEAR if interp != T.InterpolationMode.NEAREST else interp),
        T.RandomHorizontalFlip(),
        T.CenterCrop(cfg.crop_size),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


class ImageListDataset(Dataset):
    """(path, label) pairs decoded with :func:`runtime.image.load_image`.

    Indexing:
        ``ds[i]``: eval transform of image i (deterministic).
        ``ds[(i, seed)]``: training augmentation of image i under ``torch.manual_seed(seed)``
        (see :func:`sample_seed`); requires ``augment``.
    Each item is ``(x, label, i)``: x float32 (3, crop, crop), label int, i the image index.

    Raises:
        DatasetError: an image cannot be decoded; the message names the file.
    """

    def __init__(self, items: Sequence[tuple[Path, int]], cfg: PreprocessConfig, augment: bool = False):
        self.items = [(Path(p), int(y)) for p, y in items]
        self.cfg = cfg
        self._eval = eval_transform(cfg)
        self._train = train_transform(cfg) if augment else None

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Image.Image:
        """Decoded RGB image ``index``; ``DatasetError`` naming the file if it does not decode."""
        path = self.items[index][0]
        try:
            return load_image(path, draft_to=decode_size(self.cfg))
        except InvalidImageError as err:
            raise DatasetError(
                f"{path}: cannot decode this image ({err.reason}); remove it, or re-run `edgeclf split`"
                " so that the split report excludes it"
            ) from err

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, seed = key
            if self._train is None:
                raise RuntimeError("augmented item requested from a dataset built with augment=False")
            img = self.load(index)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = self._train(img)
        else:
            index = key
            x = self._eval(self.load(index))
        return x, self.items[index][1], index


class KeyedSampler:
    """Wrap an index sampler so it yields ``(index, sample_seed(run_seed, stream, index))`` keys.

    Use ``stream = epoch`` for on-the-fly augmentation (:meth:`set_epoch` sets it and forwards
    the epoch to the wrapped sampler, e.g. a ``DistributedSampler``), ``VIEW_STREAM + v`` for
    cached views. The sampler lives in the main process, so this also works with persistent
    DataLoader workers.
    """

    def __init__(self, indices: Iterable[int], run_seed: int, stream: int = 0):
        self.indices = indices
        self.run_seed = run_seed
        self.stream = stream

    def set_epoch(self, epoch: int) -> None:
        self.stream = epoch
        if hasattr(self.indices, "set_epoch"):
            self.indices.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices:
            yield (int(i), sample_seed(self.run_seed, self.stream, int(i)))

    def __len__(self) -> int:
        return len(self.indices)  # type: ignore[arg-type]


def unwrap_worker_error(err: DatasetError) -> DatasetError:
    """A ``DatasetError`` re-raised by a DataLoader worker carries the worker's traceback in its
    message; return one with only the original one-line message (naming the file)."""
    text = str(err)
    if "Original Traceback" not in text:
        return err
    last = text.rstrip().splitlines()[-1]
    return DatasetError(last.split("DatasetError: ", 1)[-1])
