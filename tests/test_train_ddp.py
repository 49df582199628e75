"""DistributedDataParallel on CPU (gloo), 2 processes, tiny model and images."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import cli_env
from train_support import write_split

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_split(tmp_path, image_tree):
    root = image_tree({"cat": 7, "dog": 7, "owl": 7}, size=(48, 40))  # 15 train (odd: uneven shards), 3 val
    return write_split(root, tmp_path / "split.json", n_val=1, n_test=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, split: str, out: str, log_dir: str) -> None:
    """One DDP process: train, recording every file this process renames into place."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    from edgeclf.train.loop import train_model

    writes: list[str] = []
    real_replace = os.replace

    def logged_replace(src, dst, *args, **kwargs):  # every atomic write ends in os.replace
        writes.append(os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    os.replace = logged_replace
    try:
        result = train_model(split, out, arch="tiny_cnn", epochs=2, batch_size=4, device="cpu", progress=False,
                             workers=0, aug_views=1)
    finally:
        os.replace = real_replace
    Path(log_dir, f"rank{rank}.json").write_text(json.dumps(
        {"writes": writes, "history": result.history, "world_size": result.world_size, "threads": _native_threads()}))


def _native_threads() -> list[str] | None:
    """Names of this process's OS threads (Linux), e.g. gloo's ``pt_gloo_runloop``; None elsewhere."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    return sorted((t / "comm").read_text().strip() for t in tasks.iterdir())


def test_ddp_gloo_two_processes_only_rank0_writes(tmp_path, tiny_split):
    import torch.multiprocessing as mp

    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_split), str(out), str(logs)), nprocs=2, join=True)
    rank0 = json.loads((logs / "rank0.json").read_text())
    rank1 = json.loads((logs / "rank1.json").read_text())
    assert rank1["writes"] == []
    assert {Path(p).name for p in rank0["writes"]} == {"features.pt", "best.pt", "last.pt", "history.csv", "history.json"}
    assert rank0["world_size"] == rank1["world_size"] == 2
    # train_model left the process group for good: no gloo worker/transport thread and no TCPStore
    # server thread outlives it (leftovers used to be torn down at interpreter exit, now and then
    # aborting the process).
    for log in (rank0, rank1):
        if log["threads"] is not None:
            assert not [t for t in log["threads"] if t.startswith(("gloo", "pt_gloo", "pt_tcpstore"))], log["threads"]
    from edgeclf.train.history import TIMING_FIELDS

    def metrics(rows):
        return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]

    assert metrics(rank0["history"]) == metrics(rank1["history"])  # all-reduced: every process agrees
    assert [r["train_images"] for r in rank0["history"]] == [16, 16]  # 15 images, DistributedSampler pads to 2x8

    from edgeclf.train.checkpoint import load_checkpoint
    from edgeclf.train.loop import train_model

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    # The all-gathered feature cache equals a single process's, row for row (views included).
    single = train_model(tiny_split, tmp_path / "single", arch="tiny_cnn", epochs=1, batch_size=4, device="cpu",
                         progress=False, workers=0, aug_views=1)
    a = torch.load(out / "features.pt", weights_only=True)
    b = torch.load(single.run_dir / "features.pt", weights_only=True)
    assert a["train"].shape == b["train"].shape == (2, 15, 16)
    assert torch.allclose(a["train"], b["train"], atol=1e-5) and torch.allclose(a["val"], b["val"], atol=1e-5)


def test_torchrun_cli(tmp_path, tiny_split):
    """The same `edgeclf train` command under torchrun: DDP, one summary line, all files."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "edgeclf", "train", "--split", str(tiny_split), "--out", str(out), "--arch", "tiny_cnn",
         "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--workers", "0"],
        capture_output=True, text=True, timeout=300, env=cli_env(OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and json.loads(summaries[0])["world_size"] == 2
    assert proc.stderr.count("epoch   2/2") == 1  # only rank 0 reports
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "features.pt", "history.csv", "history.json", "last.pt"]
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[0]["train_images"] == 16
