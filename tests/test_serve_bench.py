"""`edgeclf bench serve`: drives real servers, writes its JSON (short windows: numbers not asserted)."""

from __future__ import annotations

import json

import pytest

from _serve_server import tiny_server  # noqa: F401
from _tiny_artifact import tiny_artifact  # noqa: F401


@pytest.mark.slow
def test_bench_serve_writes_json_with_every_level_and_mode(tiny_artifact, tmp_path, run_cli):  # noqa: F811
    out = tmp_path / "serve.json"
    r = run_cli("bench", "serve", tiny_artifact.dir, "--concurrency", "1,3", "--seconds", "0.5", "--threads", "1",
                "--json", out, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "edgeclf.bench.serve" and doc["settings"]["concurrency"] == [1, 3]
    assert set(doc["served"]) == {"batched", "unbatched"}
    for mode in doc["served"].values():
        assert set(mode) == {"1", "3"}
        for level in mode.values():
            assert level["errors"] == 0 and level["requests"] > 0
            assert 0 < level["latency_ms_p50"] <= level["latency_ms_p90"] <= level["latency_ms_p99"]
            assert level["throughput_img_per_s"] > 0
    assert doc["in_process"]["predict"]["latency_ms_p50"] > 0
    assert doc["in_process"]["predict_batch_16"]["throughput_img_per_s"] > 0
    assert doc["summary"]["errors_total"] == 0 and doc["summary"]["concurrency_high"] == 3
    assert "batched" in r.stdout and "in-proc" in r.stdout


def test_bench_serve_against_a_running_server_url(tiny_server):  # noqa: F811
    from edgeclf.bench.serve_load import run_serve_bench

    doc = run_serve_bench(tiny_server.url, concurrency=(2,), seconds=0.3, warmup_s=0.1)
    [level] = doc["served"]["remote"].values()
    assert level["errors"] == 0 and level["requests"] > 0


def test_bench_serve_bad_arguments(run_cli, tmp_path):
    r = run_cli("bench", "serve", tmp_path / "nothing", "--concurrency", "1", timeout=120)
    assert r.returncode == 2 and "not an http(s) URL" in r.stderr
    r = run_cli("bench", "serve", "--concurrency", "0", timeout=120)
    assert r.returncode == 2
