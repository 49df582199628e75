"""Training history: one row per epoch, rewritten atomically to ``history.csv`` and ``history.json``.

Row keys (:data:`HISTORY_FIELDS`), units in the names where they have one:

``epoch`` (1-based), ``train_loss``/``val_loss`` (mean cross-entropy per image), ``train_acc``/
``val_acc`` (top-1 as a fraction; train accuracy is measured with dropout on, on augmented inputs
when there are any), ``lr`` (head learning rate used in the epoch), ``train_images`` (images seen,
all processes), ``train_images_per_s`` (training phase only; with the feature cache these are
cached feature rows per second), ``epoch_time_s`` (train + validation), ``elapsed_s``
(wall time since the run started, summed over resumes; feature extraction included).

The timing columns (:data:`TIMING_FIELDS`) naturally differ between two runs; every other column
of a resumed run equals the uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from edgeclf.runtime.files import atomic_write_text

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_images",
                  "train_images_per_s", "epoch_time_s", "elapsed_s")
TIMING_FIELDS = ("train_images_per_s", "epoch_time_s", "elapsed_s")


def write_history(run_dir: str | os.PathLike, history: list[dict]) -> tuple[Path, Path]:
    """Rewrite ``RUN_DIR/history.csv`` and ``RUN_DIR/history.json`` with all rows so far.

    Returns:
        (csv path, json path).
    """
    run_dir = Path(run_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(HISTORY_FIELDS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    csv_path, json_path = run_dir / "history.csv", run_dir / "history.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(history, indent=1) + "\n")
    return csv_path, json_path


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """Rows of ``RUN_DIR/history.json``."""
    return json.loads((Path(run_dir) / "history.json").read_text(encoding="utf-8"))
