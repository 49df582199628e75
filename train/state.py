"""Run state that a checkpoint carries: RNG states, CPU copies of weights, the checkpoint dict."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeclf.runtime._version import __version__

from .distributed import DistInfo
from .models import Classifier


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and builtins (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].copy()), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only with the same device count)."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy(), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` as contiguous CPU tensors (channels_last and CUDA copies normalised)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def checkpoint_state(*, recipe: dict, classes: list[str], cfg, model: Classifier, split, split_sha256: str,
                      epoch: int, epochs: int, best: tuple[float, float, int], row: dict, optimizer, scheduler,
                      scaler, history: list[dict], info: DistInfo) -> dict[str, Any]:
    """The checkpoint dict (format documented in :mod:`train.checkpoint`) after ``epoch``."""
    return {
        "edgeclf_version": __version__,
        "arch": recipe["arch"], "weights": recipe["weights"],
        "num_classes": len(classes), "class_names": classes,
        "preprocess": cfg.to_dict(),
        "model_args": {"hidden_dim": model.head[0].out_features, "dropout": recipe["dropout"]},
        "model_state": cpu_state_dict(model),
        "split_sha256": split_sha256, "split_path": str(Path(split).resolve()),
        "epoch": epoch, "epochs": epochs,
        "best_val_acc": best[0], "best_val_loss": best[1], "best_epoch": best[2],
        "val_acc": row["val_acc"], "val_loss": row["val_loss"],
        "optimizer_state": optimizer.state_dict(), "scheduler_state": scheduler.state_dict(),
        "scaler_state": scaler.state_dict() if scaler.is_enabled() else None,
        "rng_state": rng_state(),
        "history": history, "train_args": dict(recipe), "world_size": info.world_size,
        "elapsed_s": row["elapsed_s"],
    }
