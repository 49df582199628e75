"""Console reporting for training: rich progress bars and one summary line per epoch.

Only rank 0 reports. ``Reporter(enabled=False)`` is silent (library use, tests).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Reporter:
    """Progress bars (``rich.progress``) and log lines on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._console = None
        if enabled:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        """Print one line."""
        if self._console is not None:
            self._console.print(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int, unit: str = "img") -> Iterator[Callable[[int], None]]:
        """``with reporter.task("features", n) as advance: advance(k)`` — a transient progress bar."""
        if self._console is None or not self._console.is_terminal:
            yield lambda k: None  # no bars in logs and pipes: the epoch lines say it all
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self._console, transient=True) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda k: progress.advance(task_id, k)

    def epoch(self, row: dict, epochs: int, is_best: bool) -> None:
        """One summary line for a finished epoch (a history row)."""
        self.info(
            f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  lr {row['lr']:.2e}"
            f"  {row['train_images_per_s']:.0f} img/s  {row['epoch_time_s']:.1f} s" + ("  [best]" if is_best else "")
        )
