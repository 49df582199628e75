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

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from edgeclf.runtime.errors import InvalidImageError, UsageError
from edgeclf.runtime.files import FileTooLargeError, display_name, read_bounded
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, decode_size, preprocess

from .errors import DatasetError

#: What training and evaluation do with a file whose bytes no longer match the split's sha256:
#: ``error`` (default) refuses with a one-line message naming it; ``exclude`` leaves every such
#: file out (one verification pass over the subset before the run) and reports them.
ON_CHANGED = ("error", "exclude")

#: ``stream`` offset of the cached augmented views in :func:`sample_seed` (epochs use 1, 2, …).
VIEW_STREAM = 1_000_000


def changed_message(path, got: str, expected: str) -> str:
    """The one-line refusal for a file whose sha256 differs from the split manifest's."""
    return (f"{display_name(path)}: changed since the split was written (sha256 {got[:12]}…, split.json"
            f" records {expected[:12]}…): a replaced photo would train or score under the wrong label;"
            " re-run `edgeclf split`, or pass --on-changed exclude to leave changed files out")


def read_verified(path: str | os.PathLike, expected: str | None) -> bytes:
    """The bytes of ``path``, checked against the ``expected`` sha256 (hex; None: not checked).

    The hash is computed on the bytes returned, so callers decode exactly what was verified
    (one read per file).

    Raises:
        DatasetError: missing or unreadable file, or different content; the message names it.
    """
    try:
        data = read_bounded(path)
    except FileTooLargeError as err:
        raise DatasetError(f"{display_name(path)}: {err}; re-run `edgeclf split` (it excludes such files)") from err
    except FileNotFoundError as err:
        raise DatasetError(f"{display_name(path)}: no such file, but the split manifest lists it; restore it,"
                           " or re-run `edgeclf split`") from err
    except OSError as err:
        raise DatasetError(f"{display_name(path)}: cannot read ({err.strerror or err})") from err
    if expected is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise DatasetError(changed_message(path, got, expected))
    return data


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


def drop_changed(items: Sequence, on_changed: str = "error") -> tuple[list, list[dict]]:
    """Apply the ``on_changed`` policy (:data:`ON_CHANGED`) to manifest items before a run.

    ``error``: returns ``(list(items), [])`` without reading anything (files are verified while
    they are read). ``exclude``: hashes every item that carries a ``sha256`` (one extra read of
    the subset) and returns the unchanged ones plus ``[{"path", "reason", "detail"}]`` for each
    changed, missing or unreadable file (reason ``changed``, ``missing`` or ``unreadable``).

    Raises:
        UsageError: another ``on_changed`` value.
    """
    if on_changed not in ON_CHANGED:
        raise UsageError(f"--on-changed {on_changed}: use one of {', '.join(ON_CHANGED)}")
    if on_changed == "error":
        return list(items), []
    kept, dropped = [], []
    for item in items:
        path, expected = Path(item[0]), getattr(item, "sha256", None)
        try:
            data = read_bounded(path)
        except FileTooLargeError as err:
            dropped.append({"path": str(path), "reason": "too_large", "detail": str(err)})
            continue
        except FileNotFoundError:
            dropped.append({"path": str(path), "reason": "missing", "detail": "no such file"})
            continue
        except OSError as err:
            dropped.append({"path": str(path), "reason": "unreadable", "detail": err.strerror or str(err)})
            continue
        got = hashlib.sha256(data).hexdigest()
        if expected is not None and got != expected:
            dropped.append({"path": str(path), "reason": "changed",
                            "detail": f"sha256 {got[:12]}…, split.json records {expected[:12]}…"})
            continue
        kept.append(item)
    return kept, dropped


class ImageListDataset(Dataset):
    """(path, label) pairs decoded with :func:`runtime.image.load_image`.

    Indexing:
        ``ds[i]``: eval transform of image i (deterministic).
        ``ds[(i, seed)]``: training augmentation of image i under ``torch.manual_seed(seed)``
        (see :func:`sample_seed`); requires ``augment``.
    Each item is ``(x, label, i)``: x float32 (3, crop, crop), label int, i the image index.

    Items that carry a ``sha256`` attribute (:class:`runtime.manifest.ManifestFile`, from
    ``SplitManifest.files``) are verified against it on every read: the hash is computed on the
    bytes read for decoding, so the check costs no second read.

    Raises:
        DatasetError: an image cannot be read or decoded, or its bytes changed since the split;
            the message names the file.
    """

    def __init__(self, items: Sequence[tuple[Path, int]], cfg: PreprocessConfig, augment: bool = False):
        self.sha256 = [getattr(item, "sha256", None) for item in items]
        self.items = [(Path(p), int(y)) for p, y in items]
        self.cfg = cfg
        self._eval = eval_transform(cfg)
        self._train = train_transform(cfg) if augment else None

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Image.Image:
        """Decoded RGB image ``index``; ``DatasetError`` naming the file if it does not decode or changed."""
        path = self.items[index][0]
        expected = self.sha256[index]
        try:
            if expected is None:
                return load_image(path, draft_to=decode_size(self.cfg))
            return load_image(read_verified(path, expected), name=str(path), draft_to=decode_size(self.cfg))
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
