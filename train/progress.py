"""Console reporting for training: live progress (:mod:`edgeclf.progress`) and one summary line per epoch.

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
            self._console.print(message, markup=False)  # file names and "[best]" are text, not markup

    @contextlib.contextmanager
    def task(self, description: str, total: int, unit: str = "img") -> Iterator[Callable[[int], None]]:
        """``with reporter.task("features", n) as advance: advance(k)`` — a live stage of
        :mod:`edgeclf.progress` on a terminal; nothing in logs and pipes (the epoch lines say it all)."""
        if self._console is None or not self._console.is_terminal:
            yield lambda k: None
            return
        from edgeclf.progress import Progress

        with Progress("live").stage(f"{description} ({unit})", total=total, log=False) as stage:
            yield stage.advance

    def epoch(self, row: dict, epochs: int, is_best: bool) -> None:
        """One summary line for a finished epoch (a history row)."""
        self.info(
            f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  lr {row['lr']:.2e}"
            f"  {row['train_images_per_s']:.0f} img/s  {row['epoch_time_s']:.1f} s" + ("  [best]" if is_best else "")
        )
