"""Feature cache vs recomputing the frozen backbone every epoch: training speed, side by side.

Both sides run the real :func:`train.loop.train_model` on the same split, frozen backbone, same
batch size and device:

* **cache**: ``feature_cache=True`` for the full ``epochs`` (default 30) — measured end to end
  (model build + feature extraction + head epochs + checkpoints).
* **recompute**: ``feature_cache=False`` (decode, augment and run the backbone every epoch, the
  reference behaviour) for ``recompute_epochs`` (default 1) epochs, then **extrapolated
  linearly**: ``setup_s + epochs x mean epoch time``, where ``setup_s`` is the measured time of
  that call outside its epochs (model build, checkpoints) and an epoch includes validation.
  Epochs of the recompute path cost the same every time (same images, same work), so the
  extrapolation is what running all of them would take, without spending ~50 CPU-minutes.

``speedup`` = recompute total / cache total. ``--limit-per-class N`` trains on at most N train
images (and N // 4, at least 1, val images) per class to keep the run short; the ratio barely
depends on the image count because both sides scale with it.

Usage::

    python -m edgeclf.bench.train_speed --split split.json [--arch efficientnet_lite0] [--epochs 30]
        [--recompute-epochs 1] [--limit-per-class 40] [--json bench_train_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any


def subset_manifest(split: str | os.PathLike, out: str | os.PathLike, per_class: int) -> Path:
    """Write a copy of ``split`` keeping the first ``per_class`` train images of each class and the
    first ``max(1, per_class // 4)`` val images (test unchanged). Returns ``out``."""
    from edgeclf.runtime.manifest import SUBSETS, SplitManifest, load_manifest, write_manifest

    m = load_manifest(split)
    limits = {"train": per_class, "val": max(1, per_class // 4), "test": None}
    splits = {}
    for subset in SUBSETS:
        kept, seen = [], {}
        for e in m.entries(subset):
            seen[e.label] = seen.get(e.label, 0) + 1
            if limits[subset] is None or seen[e.label] <= limits[subset]:
                kept.append(e)
        splits[subset] = kept
    sub = SplitManifest(data_root=m.data_root, classes=m.classes, seed=m.seed, ratios=m.ratios, splits=splits)
    write_manifest(sub, out)
    return Path(out)


def measure_train_speed(split: str | os.PathLike, arch: str = "efficientnet_lite0", weights: str | None = None,
                        epochs: int = 30, recompute_epochs: int = 1, limit_per_class: int | None = None,
                        batch_size: int = 32, device: str = "auto", workers: int | None = None,
                        work_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Time ``epochs`` epochs with the feature cache against recomputing the backbone each epoch.

    Returns:
        ``{"images": {"train", "val"}, "epochs", "cache": {...}, "recompute": {...},
        "speedup": float, "method": str, "environment": {...}}``; times in seconds (``*_s``),
        throughputs in images per second (``*_img_per_s``). See the module docstring.
    """
    import torch

    from edgeclf.runtime.manifest import load_manifest
    from edgeclf.train.loop import train_model

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        if limit_per_class:
            split = subset_manifest(split, tmp / "split.json", limit_per_class)
        m = load_manifest(split)
        common = dict(arch=arch, weights=weights, batch_size=batch_size, device=device, workers=workers,
                      progress=False)
        cache = train_model(split, tmp / "cache", epochs=epochs, feature_cache=True, **common)
        recompute = train_model(split, tmp / "recompute", epochs=recompute_epochs, feature_cache=False, **common)

    n_train, n_val = len(m.entries("train")), len(m.entries("val"))
    cache_setup = cache.wall_time_s - cache.feature_time_s - cache.train_time_s
    epoch_s = recompute.train_time_s / len(recompute.history)
    re_setup = recompute.wall_time_s - recompute.train_time_s
    re_total = re_setup + epochs * epoch_s
    return {
        "images": {"train": n_train, "val": n_val},
        "epochs": epochs,
        "cache": {
            "total_s": cache.wall_time_s,
            "feature_extraction_s": cache.feature_time_s,
            "feature_img_per_s": (n_train + n_val) / cache.feature_time_s if cache.feature_time_s else None,
            "head_epochs_s": cache.train_time_s,
            "head_epoch_s_mean": cache.train_time_s / len(cache.history),
            "setup_and_checkpoints_s": cache_setup,
            "best_val_acc": cache.best_val_acc,
        },
        "recompute": {
            "epochs_measured": len(recompute.history),
            "epoch_s_mean": epoch_s,
            "train_img_per_s": sum(r["train_images_per_s"] for r in recompute.history) / len(recompute.history),
            "setup_and_checkpoints_s": re_setup,
            "total_s_extrapolated": re_total,
        },
        "speedup": re_total / cache.wall_time_s,
        "method": f"cache measured for {epochs} epochs; recompute measured for {len(recompute.history)} epoch(s)"
                  " and extrapolated linearly: setup + epochs x mean epoch time",
        "environment": {
            "arch": arch, "device": cache.device, "amp": cache.amp, "batch_size": batch_size,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }


def render(report: dict[str, Any]) -> None:
    """Both sides in one rich table."""
    from rich.console import Console
    from rich.table import Table

    c, r = report["cache"], report["recompute"]
    table = Table(title=f"{report['epochs']} epochs, {report['images']['train']} train + {report['images']['val']} val"
                        f" images, {report['environment']['arch']} on {report['environment']['device']}")
    table.add_column("")
    table.add_column("feature cache", justify="right")
    table.add_column("recompute each epoch", justify="right")
    table.add_row("total (s)", f"{c['total_s']:.1f}", f"{r['total_s_extrapolated']:.1f} (extrapolated)")
    table.add_row("backbone work (s)", f"{c['feature_extraction_s']:.1f} once", f"{r['epoch_s_mean']:.1f} per epoch")
    table.add_row("head epochs (s)", f"{c['head_epochs_s']:.1f}", "—")
    table.add_row("images/s", f"{c['feature_img_per_s'] or 0:.1f} (extraction)", f"{r['train_img_per_s']:.1f} (training)")
    table.add_row("speed-up", f"{report['speedup']:.1f}x", "1.0x")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeclf.bench.train_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", required=True, help="split.json")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--recompute-epochs", type=int, default=1)
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    from edgeclf.runtime.errors import EdgeclfError

    try:
        report = measure_train_speed(args.split, args.arch, args.weights, args.epochs, args.recompute_epochs,
                                     args.limit_per_class, args.batch_size, args.device, args.workers)
    except EdgeclfError as err:
        print(f"edgeclf.bench.train_speed: error: {err}", file=sys.stderr)
        return err.exit_code
    render(report)
    if args.json:
        from edgeclf.train.evaluate import write_json

        write_json(report, args.json)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
