"""Benchmark methodology: warm-up excluded, percentiles ordered, units derived from the median."""

import time

import numpy as np
import pytest

from edgeclf.bench.report import compare
from edgeclf.bench.runner import parse_backends
from edgeclf.bench.timing import Samples, summarize, time_repeated
from edgeclf.runtime.errors import UsageError


def test_warmup_calls_are_not_timed():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= 3:  # the warm-up calls are slow (first-call allocation, lazy init, ...)
            time.sleep(0.05)

    samples = time_repeated(fn, warmup=3, iters=20)
    assert len(calls) == 23
    assert samples.times_ms.shape == (20,)
    assert samples.times_ms.max() < 50.0  # none of the 50 ms warm-up calls is in the samples
    assert samples.warmup == 3


def test_sync_is_inside_the_timed_region():
    def sync():
        time.sleep(0.002)

    samples = time_repeated(lambda: None, warmup=0, iters=5, sync=sync)
    assert samples.times_ms.min() >= 2.0


def test_seconds_budget_runs_at_least_min_iters():
    samples = time_repeated(lambda: time.sleep(0.001), warmup=1, iters=None, seconds=0.05, min_iters=5)
    assert samples.times_ms.size >= 5


def test_summarize_percentiles_and_throughput():
    s = summarize(Samples(np.arange(1, 101, dtype=np.float64), warmup=2), batch_size=8)
    assert s["latency_ms_p50"] == pytest.approx(50.5)
    assert s["latency_ms_p90"] == pytest.approx(90.1)
    assert s["latency_ms_p99"] == pytest.approx(99.01)
    assert s["latency_ms_p50"] <= s["latency_ms_p90"] <= s["latency_ms_p99"]
    assert s["latency_ms_mean"] == pytest.approx(50.5)
    assert s["latency_ms_per_image_p50"] == pytest.approx(50.5 / 8)
    assert s["throughput_img_per_s"] == pytest.approx(8 / 0.0505)
    assert (s["iters"], s["warmup"]) == (100, 2)


def test_bad_timing_arguments():
    with pytest.raises(ValueError, match="warmup"):
        time_repeated(lambda: None, warmup=-1)
    with pytest.raises(ValueError, match="iters"):
        time_repeated(lambda: None, iters=0)


def test_parse_backends():
    assert parse_backends("eager, onnx-cpu") == ["eager", "onnx-cpu"]
    with pytest.raises(UsageError, match="onnx-tpu"):
        parse_backends("eager,onnx-tpu")


def test_compare_ratios():
    a = {"rows": [{"backend": "onnx-cpu", "batch_size": 1, "latency_ms_p50": 10.0, "throughput_img_per_s": 100.0}]}
    b = {"rows": [{"backend": "onnx-cpu", "batch_size": 1, "latency_ms_p50": 5.0, "throughput_img_per_s": 200.0},
                  {"backend": "eager", "batch_size": 1, "latency_ms_p50": 7.0, "throughput_img_per_s": 1.0}]}
    rows = compare(a, b)
    assert len(rows) == 1
    assert rows[0]["p50_ratio"] == pytest.approx(0.5)
    assert rows[0]["throughput_ratio"] == pytest.approx(2.0)
