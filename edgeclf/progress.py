"""Progress of long stages on stderr: a live rich display on a terminal, one line per stage otherwise.

Every long-running library function of edgeclf (export, bench, evaluate, data download, split)
takes an optional ``progress`` argument; the commands pass a :class:`Progress` built by
:func:`for_cli`. Three modes, chosen once per command:

=========  ===============================================================================
``live``   stderr is a terminal: a rich progress display (spinner or bar, counts, the stage's
           latest note such as the current p50, elapsed time), and one permanent line per
           finished stage above it.
``plain``  stderr is a pipe or a file (logs, CI), or rich is not installed: only the
           permanent line per finished stage, e.g. ``export: parity: ONNX … done (3.2 s)``;
           nothing that redraws.
``quiet``  ``--quiet``: nothing at all.
=========  ===============================================================================

Progress never goes to stdout, so results (tables, JSON) stay machine-readable. This module
imports nothing heavy at import time (rich only when a live display starts), so library code can
import it freely; :mod:`edgeclf.runtime` does not need it.

Library API, for code that reports progress::

    with progress.stage("onnx-cpu batch 8", total=100) as st:   # total: None = unknown
        st.update(completed=40, note="p50 3.21 ms")
    step = progress.steps("export")      # sequential named steps from a callable(str)
    step("parity: ONNX"); step("quantizing"); step.close()
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator, TextIO

MODES = ("auto", "live", "plain", "quiet")


def _has_rich() -> bool:
    """Whether rich is importable (it comes with the train extra; the base install has plain lines)."""
    import importlib.util

    return importlib.util.find_spec("rich") is not None


class Stage:
    """One running stage; ``update``/``advance`` move its counter and set its note."""

    def __init__(self, owner: "Progress", description: str, total: float | None, log: bool = True,
                 unit: str = ""):
        self.owner, self.description, self.total, self.log, self.unit = owner, description, total, log, unit
        self.completed: float = 0
        self.note: str = ""
        self.started = time.perf_counter()
        self._task = None

    def update(self, completed: float | None = None, total: float | None = None, note: str | None = None) -> None:
        """Set the count done (and the total, if now known) and/or the stage's short note."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self.owner._refresh(self)

    def advance(self, n: float = 1) -> None:
        """Add ``n`` to the count done."""
        self.update(completed=self.completed + n)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def count_text(self) -> str:
        """``"40/100"``, ``"12.5/131.0 MiB"`` (unit ``"bytes"``), or ``"40"`` without a total."""
        if self.unit == "bytes":
            done = f"{self.completed / 2**20:,.1f}"
            return f"{done}/{self.total / 2**20:,.1f} MiB" if self.total else f"{done} MiB"
        done = f"{self.completed:,.0f}"
        return f"{done}/{self.total:,.0f}" if self.total else ("" if not self.completed else done)


class Progress:
    """Reports stages on ``stream`` (default: ``sys.stderr``) in one of :data:`MODES`.

    Args:
        mode: ``"auto"`` (live if ``stream`` is a terminal, else plain), ``"live"``, ``"plain"``
            or ``"quiet"``.
        stream: where to write; never stdout for commands with machine-readable output.
        prefix: put before every line, e.g. ``"edgeclf bench: "``.
    Raises:
        ValueError: unknown ``mode``.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, prefix: str = ""):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)}")
        self.stream = stream or sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "live" if isatty is not None and isatty() and _has_rich() else "plain"
        self.mode = mode
        self.prefix = prefix
        self._live = None  # rich.progress.Progress while a live stage runs
        self._console = None
        self._open: list[Stage] = []

    @property
    def enabled(self) -> bool:
        return self.mode != "quiet"

    # -- lines -----------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """One permanent line (a stage's outcome, a warning, a heading); nothing when quiet."""
        if self.mode == "quiet":
            return
        if self._console is not None:
            self._console.print(self.prefix + message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(self.prefix + message, file=self.stream, flush=True)

    # -- stages ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, description: str, total: float | None = None, log: bool = True,
              unit: str = "") -> Iterator[Stage]:
        """Run a stage: live display while it runs, one line ``description — note … done (elapsed)``
        at its end (``log=False``: no line, only the live display). ``unit="bytes"`` shows the
        count in MiB.

        A stage left by an exception prints no line (the error message that follows says what
        failed) and re-raises.
        """
        st = self.start(description, total, log, unit)
        ok = False
        try:
            yield st
            ok = True
        finally:
            self.finish(st, ok)

    def start(self, description: str, total: float | None = None, log: bool = True, unit: str = "") -> Stage:
        """Begin a stage (prefer :meth:`stage`); end it with :meth:`finish`."""
        st = Stage(self, description, total, log, unit)
        self._open.append(st)
        if self.mode == "live":
            live = self._ensure_live()
            st._task = live.add_task(description, total=total, note="", count=st.count_text())
        return st

    def finish(self, st: Stage, ok: bool = True) -> None:
        """End a stage begun with :meth:`start`: its permanent line, then its live row goes."""
        if st not in self._open:
            return
        self._open.remove(st)
        if self.mode == "quiet":
            return
        if ok and st.log:
            note = f" — {st.note}" if st.note else ""
            self.log(f"{st.description}{note} … done ({st.elapsed_s:.1f} s)")
        if self._live is not None and st._task is not None:
            self._live.remove_task(st._task)
            if not self._open:
                self._live.stop()
                self._live, self._console = None, None

    def steps(self, prefix: str = "") -> "Steps":
        """A ``callable(str)`` for libraries that announce sequential steps by name (each call
        ends the previous step and starts the next); call ``.close()`` at the end."""
        return Steps(self, prefix)

    def close(self) -> None:
        """End every open stage (as failed: no line) and stop the live display."""
        for st in list(self._open):
            self.finish(st, ok=False)

    # -- rich --------------------------------------------------------------------------------------
    def _ensure_live(self):
        if self._live is None:
            from rich.console import Console
            from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._live = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                                      TextColumn("{task.fields[count]}"), TextColumn("{task.fields[note]}"),
                                      TimeElapsedColumn(),
                                      console=self._console, transient=True, refresh_per_second=8)
            self._live.start()
        return self._live

    def _refresh(self, st: Stage) -> None:
        if self._live is not None and st._task is not None:
            self._live.update(st._task, completed=st.completed, total=st.total, note=st.note,
                              count=st.count_text())


class Steps:
    """Sequential named steps as a ``callable(str)`` (see :meth:`Progress.steps`)."""

    def __init__(self, progress: Progress, prefix: str = ""):
        self.progress, self.prefix = progress, prefix
        self._current: Stage | None = None

    def __call__(self, name: str, log: bool = True) -> None:
        self.close()
        self._current = self.progress.start(f"{self.prefix}{name}", log=log)

    def close(self, ok: bool = True) -> None:
        """End the current step (``ok=False``: it failed)."""
        if self._current is not None:
            self.progress.finish(self._current, ok)
            self._current = None

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


#: A Progress that reports nothing (the default of every library function).
NULL = Progress("quiet")


def for_cli(quiet: bool = False, prefix: str = "") -> Progress:
    """The progress reporter of a command: nothing with ``--quiet``, else live on a terminal,
    one line per stage when stderr is redirected."""
    return Progress("quiet" if quiet else "auto", prefix=prefix)


def as_progress(progress: "Progress | None") -> Progress:
    """``progress`` itself, or :data:`NULL` for ``None`` (library functions' default)."""
    return NULL if progress is None else progress

