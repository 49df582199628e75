"""Timing methodology: warm-up excluded, timed repeats, percentiles as floats, units in key names.

Every latency in edgeclf's benchmarks is measured by :func:`time_repeated`: ``warmup`` untimed
calls (first-call allocations, kernel selection, lazy initialisation), then ``iters`` timed calls
— or as many as fit in ``seconds`` — each bracketed by ``time.perf_counter_ns`` and, for GPU
work, a ``sync()`` that waits for the device (``torch.cuda.synchronize`` or onnxruntime's
``IOBinding.synchronize_outputs``) so the clock measures work done, not work queued.
:func:`summarize` reports the median (p50), p90, p99 and mean of the per-call times, and derives
per-image latency and throughput from the median, never from the mean (one descheduled call
would otherwise move the headline figure).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Samples:
    """Per-call wall times of one timed loop.

    Attributes:
        times_ms: float64 array (iters,) of milliseconds, warm-up calls excluded.
        warmup: number of untimed calls made before the first timed one.
    """

    times_ms: np.ndarray
    warmup: int


def time_repeated(
    fn: Callable[[], object],
    *,
    warmup: int = 10,
    iters: int | None = 100,
    seconds: float | None = None,
    sync: Callable[[], object] | None = None,
    min_iters: int = 5,
    on_sample: Callable[[list], object] | None = None,
) -> Samples:
    """Call ``fn()`` ``warmup`` times untimed, then time ``iters`` calls (or fill ``seconds``).

    Args:
        fn: the work to time (one batch through one backend).
        warmup: untimed calls first (>= 0).
        iters: timed calls; ignored when ``seconds`` is given.
        seconds: time budget for timed calls instead of a count (at least ``min_iters`` calls).
        sync: called after each ``fn()`` inside the timed region (GPU: wait for the device).
        on_sample: called with the list of times so far (ms) after each timed call, outside the
            timed region (progress reports; keep it cheap).
    Returns:
        :class:`Samples` with one entry per timed call, in ms.
    Raises:
        ValueError: negative warmup, or neither a positive ``iters`` nor ``seconds``.
    """
    if warmup < 0:
        raise ValueError(f"warmup={warmup}: must be >= 0")
    if seconds is None and (iters is None or iters < 1):
        raise ValueError("give iters >= 1 or seconds > 0")
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
        sync()
    times: list[float] = []
    deadline = None if seconds is None else time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter_ns()
        fn()
        sync()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if on_sample is not None:
            on_sample(times)
        if deadline is None:
            if len(times) >= iters:
                break
        elif len(times) >= min_iters and time.perf_counter() >= deadline:
            break
    return Samples(np.asarray(times, dtype=np.float64), warmup)


def summarize(samples: Samples, batch_size: int) -> dict[str, float]:
    """Latency percentiles and throughput of one (backend, batch size) loop.

    Percentiles use numpy's default linear interpolation between order statistics.

    Returns:
        ``latency_ms_p50``, ``latency_ms_p90``, ``latency_ms_p99``, ``latency_ms_mean``,
        ``latency_ms_min`` (ms per batch); ``latency_ms_per_image_p50`` (p50 / batch size);
        ``throughput_img_per_s`` (batch size / p50 in s); ``iters``, ``warmup`` — floats/ints.
    """
    t = samples.times_ms
    p50, p90, p99 = (float(v) for v in np.percentile(t, [50, 90, 99]))
    return {
        "latency_ms_p50": p50,
        "latency_ms_p90": p90,
        "latency_ms_p99": p99,
        "latency_ms_mean": float(t.mean()),
        "latency_ms_min": float(t.min()),
        "latency_ms_per_image_p50": p50 / batch_size,
        "throughput_img_per_s": batch_size / (p50 / 1000.0),
        "iters": int(t.size),
        "warmup": int(samples.warmup),
    }
