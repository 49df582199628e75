"""Micro-batching for the server: concurrent requests share one onnxruntime call.

Kept apart from :mod:`edgeclf.serve` so it imports neither kserve nor onnxruntime.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time

import numpy as np


class MicroBatcher:
    """Merge concurrent model calls into one: ``submit(x)`` queues a preprocessed batch and returns a
    future of its logits; one worker thread concatenates whatever is queued — up to
    ``max_batch_size`` images, waiting at most ``timeout_ms`` after the first — runs ``run`` once and
    hands each caller exactly its own rows.

    The wait is adaptive: a caller that will submit soon (its images are still being decoded)
    announces itself with :meth:`reserve`; the worker waits for company only while such callers
    exist, so a lone request is run at once (no added latency at concurrency 1) and concurrent
    ones are merged.

    Args:
        run: ``(B, 3, H, W) float32 → (B, C) float32`` (e.g. :meth:`Predictor.logits`).
        max_batch_size: most images per ``run`` (a single submission larger than this runs alone).
        timeout_ms: how long the first queued request waits for company.
        on_batch: called with the number of images of every merged call (e.g. a metrics histogram).

    The worker thread is started lazily, and again in a forked child (a thread does not survive
    ``fork``). A failing ``run`` fails every future of that merged batch with the same exception.
    """

    def __init__(self, run, max_batch_size: int, timeout_ms: float, on_batch=None):
        self.run = run
        self.on_batch = on_batch
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_ms / 1000.0
        self._pid = None
        self._queue: queue.Queue | None = None
        self._lock = threading.Lock()
        self._coming = 0  # reserved callers that have not submitted yet

    def reserve(self) -> None:
        """Announce a :meth:`submit` to come (call :meth:`release` instead if it will not)."""
        with self._lock:
            self._coming += 1

    def release(self) -> None:
        """Withdraw a :meth:`reserve` whose caller will not submit (e.g. its image was bad)."""
        with self._lock:
            self._coming = max(0, self._coming - 1)

    def _ensure_worker(self) -> queue.Queue:
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.Queue()
                self._pid = os.getpid()
                threading.Thread(target=self._work, args=(self._queue,), name="edgeclf-microbatch",
                                 daemon=True).start()
            return self._queue

    def submit(self, x: np.ndarray, reserved: bool = False) -> concurrent.futures.Future:
        """Queue ``x`` (n, 3, H, W); the future resolves to its logits (n, C) float32.
        ``reserved``: this call fulfils an earlier :meth:`reserve`."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._ensure_worker().put((x, future))
        if reserved:
            self.release()
        return future

    def _work(self, q: queue.Queue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            items, total = [item], len(item[0])
            deadline = time.monotonic() + self.timeout_s
            while total < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    if remaining <= 0 or self._coming == 0:
                        break  # nobody else is on the way: run now
                    try:
                        nxt = q.get(timeout=min(remaining, 0.0005))
                    except queue.Empty:
                        continue
                if nxt is None:
                    q.put(None)
                    break
                if total + len(nxt[0]) > self.max_batch_size:
                    self._run(items, total)
                    items, total = [nxt], len(nxt[0])
                    deadline = time.monotonic() + self.timeout_s
                    continue
                items.append(nxt)
                total += len(nxt[0])
            self._run(items, total)

    def _run(self, items, total: int) -> None:
        futures = [f for _, f in items if f.set_running_or_notify_cancel()]
        live = [(x, f) for x, f in items if f.running()]
        if not live:
            return
        try:
            out = self.run(np.concatenate([x for x, _ in live]) if len(live) > 1 else live[0][0])
        except BaseException as err:  # noqa: BLE001 - handed to every caller of this batch
            for f in futures:
                f.set_exception(err)
            return
        if self.on_batch is not None:
            self.on_batch(sum(len(x) for x, _ in live))
        start = 0
        for x, f in live:
            f.set_result(out[start:start + len(x)])
            start += len(x)

    def close(self) -> None:
        """Stop the worker after the queued requests are done."""
        if self._queue is not None and self._pid == os.getpid():
            self._queue.put(None)
