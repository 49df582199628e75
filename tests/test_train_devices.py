"""Device/precision/loader choices (pure functions, no GPU needed) and the CUDA path (gpu marker)."""

from __future__ import annotations

import pytest
import torch

from edgeclf.runtime.errors import UsageError
from edgeclf.train import devices
from edgeclf.train.datasets import ImageListDataset, KeyedSampler, sample_seed
from edgeclf.train.distributed import DistInfo, backend_for, env_world, gather_rows
from edgeclf.runtime.preprocess import PreprocessConfig


@pytest.mark.parametrize("device_type, bf16, dtype, scaler", [
    ("cuda", True, torch.bfloat16, False),
    ("cuda", False, torch.float16, True),
    ("cpu", True, None, False),
    ("cpu", False, None, False),
])
def test_amp_dtype_and_grad_scaler(device_type, bf16, dtype, scaler):
    assert devices.choose_amp_dtype(device_type, bf16) is dtype
    assert devices.needs_grad_scaler(dtype) is scaler


def test_memory_format_pinning_and_descriptions():
    assert devices.use_channels_last("cuda") and devices.use_channels_last("cpu")
    assert devices.use_pin_memory("cuda") and not devices.use_pin_memory("cpu")
    assert [devices.describe_amp(d) for d in (torch.bfloat16, torch.float16, None)] == ["bf16", "fp16", "fp32"]


@pytest.mark.parametrize("device_type, cpus, world, workers", [
    ("cpu", 2, 1, 0), ("cpu", 4, 1, 1), ("cpu", 16, 1, 4), ("cpu", 16, 4, 1),
    ("cuda", 16, 1, 8), ("cuda", 16, 8, 2), ("cuda", 1, 1, 1),
])
def test_default_workers(device_type, cpus, world, workers):
    assert devices.default_workers(device_type, cpus, world) == workers


def test_cpu_threads_respect_omp_and_world_size():
    assert devices.cpu_threads(8, 1, env={}) == 8
    assert devices.cpu_threads(8, 2, env={}) == 4
    assert devices.cpu_threads(2, 4, env={}) == 1
    assert devices.cpu_threads(8, 1, env={"OMP_NUM_THREADS": "1"}) is None


def test_resolve_device():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert devices.resolve_device("auto", local_rank=1, cuda_available=True) == torch.device("cuda", 1)
    assert devices.resolve_device("cuda:3", cuda_available=True) == torch.device("cuda", 3)
    with pytest.raises(UsageError, match="no CUDA device"):
        devices.resolve_device("cuda", cuda_available=False)
    with pytest.raises(UsageError, match="auto, cpu, cuda"):
        devices.resolve_device("tpu")


def test_torchrun_environment_parsing():
    assert env_world({}) == (0, 0, 1)
    assert env_world({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == (3, 1, 4)
    with pytest.raises(UsageError):
        env_world({"RANK": "4", "WORLD_SIZE": "4"})
    assert backend_for("cuda") == "nccl" and backend_for("cpu") == "gloo"


def test_gather_rows_single_process_is_identity():
    x = torch.arange(6.0).reshape(3, 2)
    assert gather_rows(x, 3, DistInfo()) is x


def test_sample_seeds_are_stable_and_distinct():
    assert sample_seed(0, 1, 5) == sample_seed(0, 1, 5)
    seeds = {sample_seed(s, e, i) for s in (0, 1) for e in (1, 2, 1_000_001) for i in range(50)}
    assert len(seeds) == 2 * 3 * 50 and all(0 <= s < 2**63 for s in seeds)


def test_augmentation_is_a_function_of_the_key(image_tree):
    root = image_tree({"a": 2}, size=(60, 40))
    cfg = PreprocessConfig(crop_size=32, resize_size=36)
    ds = ImageListDataset([(p, 0) for p in sorted((root / "a").iterdir())], cfg, augment=True)
    torch.manual_seed(0)
    x1, y, i = ds[(0, 123)]
    torch.manual_seed(99)  # the global stream does not matter ...
    x2, _, _ = ds[(0, 123)]
    x3, _, _ = ds[(0, 124)]  # ... the key does
    assert x1.shape == (3, 32, 32) and x1.dtype == torch.float32 and (y, i) == (0, 0)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    eval_x, _, _ = ds[0]
    assert torch.equal(eval_x, ds[0][0])
    sampler = KeyedSampler([1, 0], run_seed=5)
    sampler.set_epoch(2)
    assert list(sampler) == [(1, sample_seed(5, 2, 1)), (0, sample_seed(5, 2, 0))]


def test_eval_transform_is_runtime_preprocess(image_tree):
    import numpy as np

    from edgeclf.runtime.image import load_image
    from edgeclf.runtime.preprocess import preprocess

    root = image_tree({"a": 1}, size=(70, 50))
    path = next((root / "a").iterdir())
    cfg = PreprocessConfig(crop_size=32, resize_size=40, mean=(0.5,) * 3, std=(0.5,) * 3)
    x, _, _ = ImageListDataset([(path, 0)], cfg)[0]
    assert np.array_equal(x.numpy(), preprocess(load_image(path), cfg))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_amp_training_step(tmp_path, image_tree):
    """The CUDA path end to end: autocast dtype, channels_last, unfrozen, one epoch."""
    from edgeclf.train.loop import train_model
    from train_support import write_split

    root = image_tree({"a": 4, "b": 4}, size=(48, 40))
    split = write_split(root, tmp_path / "split.json", n_val=1, n_test=0)
    result = train_model(split, tmp_path / "run", arch="tiny_cnn", epochs=1, batch_size=4, device="cuda",
                         unfreeze=True, progress=False, workers=0)
    assert result.device.startswith("cuda")
    assert result.amp == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert result.history[0]["train_images"] == 6
