"""bench.import_cost: both sides measured in fresh processes, the runtime one without torch."""

from __future__ import annotations

import json

import pytest

from _tiny_artifact import build_tiny_artifact
from edgeclf.bench.import_cost import format_report, main, measure_import_cost


@pytest.mark.slow  # four fresh interpreters, two of them importing torch: ~10 s
def test_import_cost_report(tmp_path, capsys, monkeypatch):
    art = build_tiny_artifact(tmp_path / "art", torchscript=True)
    report = measure_import_cost(art.dir, repeats=1, threads=1)
    rt, th = report["runtime"], report["torch"]
    assert th["kind"] == "torchscript" and len(rt["runs"]) == len(th["runs"]) == 1
    assert rt["runs"][0]["torch_imported"] is False and rt["runs"][0]["providers"] == ["CPUExecutionProvider"]
    for side in (rt, th):
        for key in ("import_ms", "load_ms", "first_run_ms", "process_wall_ms"):
            assert 0 < side[key] < side["process_wall_ms"] or key == "process_wall_ms"
        assert side["peak_rss_mib"] >= side["startup_rss_mib"] > 1
    # torch's import alone maps far more memory than numpy + Pillow + onnxruntime
    assert th["peak_rss_mib"] > rt["peak_rss_mib"]
    assert report["ratio"]["peak_rss_mib"] == th["peak_rss_mib"] / rt["peak_rss_mib"]
    text = format_report(report)
    assert "peak RSS (MiB)" in text and "torch (torchscript)" in text

    out = tmp_path / "cost.json"
    monkeypatch.chdir(tmp_path)  # a path relative to the caller's folder (the children run elsewhere)
    assert main([str(art.onnx_path.relative_to(tmp_path)), "--repeats", "1", "--json", str(out)]) == 0  # bare .onnx
    saved = json.loads(out.read_text())
    assert "skipped" in saved["torch"] and saved["runtime"]["load_ms"] > 0
    assert "torch side skipped" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2
