"""Device, precision and data-loading choices, as small pure functions.

Each decision the training loop makes about hardware is a function of plain inputs (device type,
whether bf16 is supported, CPU count, world size) so it can be unit-tested without a GPU:

==========================  ================================  =================================
decision                    CUDA                              CPU
==========================  ================================  =================================
autocast dtype              bf16 if supported, else fp16      none (fp32)
grad scaler                 only for fp16                     no
channels_last               yes                               yes (oneDNN convs ~2x faster on
                                                              AVX2 for EfficientNet-Lite0)
pinned host memory          yes                               no
DataLoader workers          min(8, cpus // world_size)        0 on <= 2 cores, else
                                                              min(4, cpus // 2 - 1)
torch threads               untouched                         cpus // world_size, unless
                                                              OMP_NUM_THREADS is set; 1 while the
                                                              head trains on cached features
==========================  ================================  =================================
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto", local_rank: int = 0, cuda_available: bool | None = None) -> torch.device:
    """Turn ``--device auto|cpu|cuda|cuda:N`` into a ``torch.device``.

    ``auto`` picks CUDA when available. Under ``torchrun`` each process uses ``cuda:LOCAL_RANK``.

    Raises:
        UsageError: an unknown device string, or ``cuda`` asked for where no CUDA device exists.
    """
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not cuda_available:
            raise UsageError(f"--device {device}: no CUDA device is available here; use --device cpu (or auto)")
        if device == "cuda":
            return torch.device("cuda", local_rank)
        try:
            return torch.device(device)
        except RuntimeError as err:
            raise UsageError(f"--device {device}: not a valid CUDA device name (e.g. cuda, cuda:0)") from err
    raise UsageError(f"--device {device!r}: use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype | None:
    """Autocast dtype for mixed precision: bf16 on CUDA where supported, else fp16; ``None`` on CPU.

    Args:
        device_type: ``"cuda"`` or ``"cpu"`` (``torch.device.type``).
        bf16_supported: ``torch.cuda.is_bf16_supported()`` on CUDA (ignored on CPU).
    """
    if device_type != "cuda":
        return None
    return torch.bfloat16 if bf16_supported else torch.float16


def needs_grad_scaler(amp_dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 do not need a ``GradScaler``."""
    return amp_dtype == torch.float16


def use_channels_last(device_type: str) -> bool:
    """Use ``torch.channels_last`` memory format for convolutional backbones (CUDA and CPU)."""
    return device_type in ("cuda", "cpu")


def use_pin_memory(device_type: str) -> bool:
    """Pin host memory of DataLoader batches only when copying to a CUDA device."""
    return device_type == "cuda"


def default_workers(device_type: str, cpu_count: int, world_size: int = 1) -> int:
    """DataLoader worker processes per training process.

    On CPU the model itself needs the cores, so a 2-core machine decodes in the main process (0
    workers); bigger machines give a few cores to JPEG decoding. On CUDA, decoding is the
    bottleneck: up to 8 workers per process, sharing the cores among ``world_size`` processes.
    """
    cpu_count = max(1, cpu_count)
    per_proc = max(1, cpu_count // max(1, world_size))
    if device_type == "cuda":
        return min(8, per_proc)
    if per_proc <= 2:
        return 0
    return min(4, per_proc // 2 - 1)


def cpu_threads(cpu_count: int, world_size: int = 1, env: Mapping[str, str] | None = None) -> int | None:
    """Intra-op thread count for CPU training, or ``None`` to leave torch's setting alone.

    ``OMP_NUM_THREADS`` (which ``torchrun`` sets) wins; otherwise the cores are shared evenly
    among the processes of this machine.
    """
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS"):
        return None
    return max(1, max(1, cpu_count) // max(1, world_size))


def head_threads(device_type: str, threads: int) -> int:
    """Intra-op threads while training the head on cached features.

    The head's GEMMs are small ((32, 1280) x (1280, 1280) per step, ~0.05 GFLOP): a second thread
    saves little on an idle machine, but when the cores are shared OpenMP's barriers make two
    threads 3-5x *slower* than one (measured on the 2-core CI machine: 1.6-2.6 s vs 0.35-0.7 s per
    epoch of the nine-class split). So on CPU the cached-head phase runs single-threaded; feature
    extraction (large convolutions) keeps all threads.
    """
    return 1 if device_type == "cpu" else threads


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_amp(amp_dtype: torch.dtype | None) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` for logs and history."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_dtype, "fp32")
