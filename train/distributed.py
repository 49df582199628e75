"""DistributedDataParallel plumbing for ``torchrun`` (no home-made launcher).

``torchrun --nproc-per-node N -m edgeclf train ...`` sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE`` (and ``MASTER_ADDR``/``MASTER_PORT``) in each process; :func:`init_distributed`
reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on CPU). Without those
variables everything runs as a single process (world size 1) and no process group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import torch

from .errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank, 0..world_size-1; rank 0 alone writes files and prints.
        local_rank: rank on this machine (selects ``cuda:local_rank``).
        world_size: number of processes; 1 when not launched by ``torchrun``.
        backend: ``"nccl"``, ``"gloo"`` or ``""`` (single process).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from ``torchrun``'s environment variables; (0, 0, 1) without.

    Raises:
        UsageError: the variables are present but not integers or inconsistent.
    """
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise UsageError(f"RANK/LOCAL_RANK/WORLD_SIZE must be integers ({err}); launch with torchrun") from err
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank}, WORLD_SIZE={world}: inconsistent torchrun environment")
    return rank, local, world


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for CPU."""
    return "nccl" if device_type == "cuda" else "gloo"


def init_distributed(device_type: str) -> DistInfo:
    """Join the ``torchrun`` process group if there is one (idempotent); return this process's place."""
    rank, local, world = env_world()
    if world == 1:
        return DistInfo()
    import torch.distributed as dist

    backend = backend_for(device_type)
    if not dist.is_initialized():
        # DistributedDataParallel imports torch._dynamo on first use, and that import keeps
        # references to the default process group existing at that moment in module state. Such a
        # group survives destroy_process_group(): its gloo threads (and rank 0's TCPStore server)
        # run on until interpreter shutdown tears them down, which aborted now and then
        # ("terminate called without an active exception"). Imported before the group exists,
        # it captures nothing and leave_process_group() really ends the group.
        import torch._dynamo  # noqa: F401

        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(rank=dist.get_rank(), local_rank=local, world_size=dist.get_world_size(), backend=backend)


def leave_process_group(info: DistInfo, wait_for_others: bool = True) -> None:
    """Leave the process group created by :func:`init_distributed` (no-op for one process): the
    group's threads (gloo workers and transport, rank 0's TCPStore server) end here, not at exit.

    Args:
        wait_for_others: barrier first, so no process tears down while another still talks to
            it; pass False when leaving on an error (the others may never arrive).
    """
    if not info.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few float64 scalars (loss sums, correct counts, image counts) over all processes."""
    if not info.distributed:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_agree(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True only if ``flag`` is true on every process (collective decisions, e.g. using a cache)."""
    if not info.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_rows(local: torch.Tensor, total: int, info: DistInfo) -> torch.Tensor:
    """Reassemble rows computed round-robin (process r computed rows r, r+W, r+2W, …).

    Args:
        local: (n_r, D) rows of this process in order, n_r = len(range(rank, total, world_size)).
        total: N, the number of rows overall.
    Returns:
        (N, D) tensor on ``local``'s device, row i from process i % W, identical on every process.
    """
    if not info.distributed:
        return local
    import torch.distributed as dist

    world = info.world_size
    per = -(-total // world)  # ceil
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    stacked = torch.stack(parts, dim=1)  # (per, W, D): row j*W + r = parts[r][j]
    return stacked.reshape(per * world, *local.shape[1:])[:total]


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for one process)."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()
