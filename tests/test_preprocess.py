"""runtime.preprocess is bit-identical (max |Δ| == 0) to torchvision's eval transform for RGB PIL input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import NINE_CLASSES, SAMPLE_DATA
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.image import is_image_filename, load_image
from edgeclf.runtime.preprocess import PreprocessConfig, preprocess, preprocess_batch

IMAGENET = PreprocessConfig()
HALF = PreprocessConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # EfficientNet-Lite0


def torchvision_transform(cfg: PreprocessConfig):
    from torchvision import transforms as T

    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
              "nearest": T.InterpolationMode.NEAREST}[cfg.interpolation]
    return T.Compose([T.Resize(cfg.resize_size, interpolation=interp, antialias=True),
                      T.CenterCrop(cfg.crop_size), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])


def max_abs_diff(paths, configs) -> dict:
    """{config index: (max |Δ| over all images, images compared)} — each image decoded once."""
    import torch

    torch.set_num_threads(1)
    transforms = [torchvision_transform(c) for c in configs]
    worst = {i: 0.0 for i in range(len(configs))}
    for path in paths:
        img = load_image(path)
        for i, (cfg, tv) in enumerate(zip(configs, transforms)):
            ours = preprocess(img, cfg)
            theirs = tv(img).numpy()
            assert ours.shape == theirs.shape == cfg.input_shape and ours.dtype == np.float32
            worst[i] = max(worst[i], float(np.abs(ours - theirs).max()))
    return worst


def class_images(root, per_class: int | None = None) -> list:
    paths = []
    for cls in NINE_CLASSES:
        files = sorted(p for p in (root / cls).iterdir() if is_image_filename(p.name))
        paths += files[:per_class] if per_class else files
    return paths


def test_bit_identical_to_torchvision_on_the_caltech_sample():
    paths = class_images(SAMPLE_DATA)
    assert len(paths) == 9 * 24
    assert max_abs_diff(paths, [IMAGENET, HALF]) == {0: 0.0, 1: 0.0}


@pytest.mark.slow
def test_bit_identical_to_torchvision_on_every_caltech_image(caltech_full):
    paths = class_images(caltech_full)
    assert len(paths) >= 1600
    assert max_abs_diff(paths, [IMAGENET, HALF]) == {0: 0.0, 1: 0.0}


@pytest.mark.parametrize("size", [(100, 50), (50, 300), (256, 256), (256, 400), (301, 257), (224, 224), (3, 1000)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_bit_identical_on_odd_sizes_and_interpolations(size, interpolation):
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    cfg = PreprocessConfig(interpolation=interpolation)
    assert float(np.abs(preprocess(img, cfg) - torchvision_transform(cfg)(img).numpy()).max()) == 0.0


def test_known_values_of_a_flat_image():
    img = Image.new("RGB", (300, 260), (255, 0, 128))
    x = preprocess(img, IMAGENET)
    assert x.shape == (3, 224, 224)
    expected = (np.array([255, 0, 128], np.float32) / np.float32(255) - np.float32(IMAGENET.mean)) / np.float32(IMAGENET.std)
    np.testing.assert_array_equal(x[:, 100, 100], expected.astype(np.float32))
    np.testing.assert_allclose(preprocess(img, HALF)[:, 0, 0], [1.0, -1.0, 128 / 255 * 2 - 1], rtol=0, atol=1e-6)


def test_batch_and_errors():
    imgs = [Image.new("RGB", (64, 48), (i, i, i)) for i in (0, 255)]
    b = preprocess_batch(imgs, PreprocessConfig(crop_size=32, resize_size=40))
    assert b.shape == (2, 3, 32, 32) and b.dtype == np.float32
    assert preprocess_batch([], IMAGENET).shape == (0, 3, 224, 224)
    with pytest.raises(UsageError, match="RGB PIL.Image"):
        preprocess(Image.new("L", (10, 10)), IMAGENET)
    with pytest.raises(UsageError, match="interpolation='lanczos'"):
        PreprocessConfig(interpolation="lanczos")
    assert PreprocessConfig.from_dict(HALF.to_dict()) == HALF
