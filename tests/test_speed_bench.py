"""bench honesty: CPU flags, the threads workers really ran with, busy rows, files→top-k, large photos."""

from __future__ import annotations

import json

import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from edgeclf.bench.environment import CPU_FLAGS, cpu_flags
from edgeclf.runtime.openvino_engine import openvino_version


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = cpu_flags()
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        assert flags == {}
        return
    assert set(flags) == set(CPU_FLAGS)
    line = next(ln for ln in text.splitlines() if ln.startswith(("flags", "Features")))
    assert flags["avx2"] == (" avx2 " in line + " ")


@pytest.mark.slow
def test_bench_records_what_workers_really_ran_with(tiny_artifact, tmp_path, monkeypatch):
    from edgeclf.bench.runner import BUSY_SPREAD, run_bench

    from _export_data import make_split
    from _tiny_artifact import CLASS_NAMES

    split = make_split(tmp_path / "split.json", classes=list(CLASS_NAMES), n_train=1, n_test=2)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    backends = ["onnx-cpu", "openvino-cpu"]
    doc = run_bench(tiny_artifact.dir, backends=backends, batch_sizes=(1,), warmup=1, iters=3, threads=1,
                    split=split, end_to_end=False, decode_threads=2, large_photos=2)
    json.dumps(doc)  # JSON-able
    env = doc["environment"]
    assert env["env"]["OMP_NUM_THREADS"] == "1" and env["caller_env"] == {"OMP_NUM_THREADS": "8"}
    assert set(env["cpu_flags"]) <= set(CPU_FLAGS)
    onnx = doc["backends"]["onnx-cpu"]
    assert onnx["worker"]["env"]["OMP_NUM_THREADS"] == "1" and onnx["worker"]["threads_used"] == 1
    ov = doc["backends"]["openvino-cpu"]
    if openvino_version() is None:
        assert ov["status"] == "skipped" and "openvino not installed" in ov["reason"]
    else:
        assert ov["status"] == "ok", ov.get("reason")
        assert ov["worker"]["threads_used"] == 1 and ov["providers"][0].startswith("OpenVINO-CPU")
    for row in doc["rows"]:
        assert row["busy"] == (row["p99_over_p50"] > BUSY_SPREAD) and row["precision"] == "fp32"

    f2k = doc["files_to_topk"]  # over the split's 18 test images
    assert f2k["decode_threads"] == 2 and f2k["intra_op_threads"] == 1 and f2k["same_predictions"] is True
    assert f2k["images"] == 18 and f2k["serial_img_per_s"] > 0 and f2k["pipelined_img_per_s"] > 0
    assert f2k["bound_img_per_s"] == pytest.approx(f2k["cores"] * 1000 / (f2k["preprocess_ms"] + f2k["inference_ms_per_image"]))

    big = doc["large_photos"]
    assert big["images"] == 2 and 11.5 < big["megapixels"] < 12.5 and big["model_decode"] == "exact"
    assert 0 <= big["top1_agreement"] <= 1 and 0 <= big["exact"]["top1_accuracy"] <= 1
    assert big["draft_over_exact_p50"] == pytest.approx(big["draft"]["latency_ms_p50"] / big["exact"]["latency_ms_p50"])
