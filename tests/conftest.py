"""Shared fixtures: paths to the sample and the full Caltech data, a CLI runner, tiny image trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
#: 24 real Caltech 101 JPEGs per class, shipped in the repo (bench/data/caltech101_sample).
SAMPLE_DATA = REPO_ROOT / "bench" / "data" / "caltech101_sample"
#: The full nine classes (1,639 JPEGs), read-only, beside the checkout when present.
CALTECH_FULL = REPO_ROOT.parent / "shared" / "data" / "caltech101" / "101_ObjectCategories"
NINE_CLASSES = ["Leopards", "airplanes", "butterfly", "camera", "elephant", "lamp", "rhino", "umbrella", "watch"]


def cli_env(**extra) -> dict:
    """Environment for running the installed CLI in a subprocess (2 OpenMP threads unless set)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env.update(extra)
    return env


@pytest.fixture
def run_cli():
    """``run_cli(*args, timeout=...) -> CompletedProcess`` running ``python -m edgeclf ARGS``."""

    def _run(*args, timeout: float = 600, cwd=None, env=None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "edgeclf", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env or cli_env(),
        )

    return _run


def make_image(path: Path, seed: int, size=(40, 32), mode="RGB", fmt=None) -> Path:
    """Write a small noise image (distinct bytes per seed) to ``path``."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


@pytest.fixture
def image_tree(tmp_path):
    """``image_tree({"cat": 8, "dog": 6}) -> Path``: an ImageFolder tree of distinct noise JPEGs."""

    def _make(counts: dict[str, int], root: Path | None = None, size=(40, 32)) -> Path:
        root = root or tmp_path / "data"
        seed = 0
        for cls, n in counts.items():
            for i in range(n):
                seed += 1
                make_image(root / cls / f"img_{i:03d}.jpg", seed, size=size)
        return root

    return _make


@pytest.fixture(scope="session")
def caltech_full() -> Path:
    """The full nine-class data beside the checkout; tests needing it skip (with reason) without it."""
    if not CALTECH_FULL.is_dir():
        pytest.skip(f"full Caltech data not found at {CALTECH_FULL}")
    return CALTECH_FULL
