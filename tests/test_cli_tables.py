"""The bench tables fit 80–160 columns: titles on one line, numbers right-aligned and never cut,
a skipped backend's short reason in its row and its full reason once under the table."""

from __future__ import annotations

import io

import pytest

from edgeclf.bench.report import print_compare, print_report
from edgeclf.bench.runner import short_reason

CUDA_REASON = ("CUDA provider not active: device='cuda': the NVIDIA driver reports no CUDA device (no driver"
               " library, no GPU, or CUDA_VISIBLE_DEVICES hides them)")
TIMING_TITLE = "latency and throughput per batch"
BACKEND_TITLE = "per backend (accuracy on 27 test images)"


def _doc() -> dict:
    ok = {"status": "ok", "providers": ["CPUExecutionProvider"], "load_ms": 12345.6, "first_inference_ms": 1234.5,
          "peak_rss_mib": 2345.0, "peak_gpu_mem_mib": None, "accuracy_top1": 0.962962, "top1_agreement_with_eager": 1.0}
    rows = [{"backend": b, "batch_size": bs, "latency_ms_p50": 1234.567 * bs, "latency_ms_p90": 1300.1 * bs,
             "latency_ms_p99": 1400.2 * bs, "latency_ms_mean": 1250.3 * bs, "latency_ms_per_image_p50": 1234.567,
             "throughput_img_per_s": 0.81 * bs}
            for b in ("eager", "torchscript-cuda", "onnx-int8") for bs in (1, 32)]
    return {"settings": {"threads": 2, "warmup": 3, "iters": 20, "seconds": None, "test_images": 27},
            "environment": {"cpu_model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"},
            "artifact": {"arch": "efficientnet_lite0"}, "rows": rows, "preprocessing": None,
            "backends": {"eager": ok, "torchscript-cuda": {**ok, "providers": ["CUDA", "CPU"], "peak_gpu_mem_mib": 812.0},
                         "onnx-int8": ok, "onnx-cuda": {"status": "skipped", "reason": CUDA_REASON}}}


def _render(width: int, fn=print_report, *args) -> str:
    from rich.console import Console

    buf = io.StringIO()
    fn(*(args or (_doc(),)), console=Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()


def test_short_reason_is_the_first_clause():
    assert short_reason(CUDA_REASON) == "CUDA provider not active"
    assert short_reason("worker exited 1: MemoryError") == "worker exited 1"
    assert short_reason("x" * 80).endswith("…") and len(short_reason("x" * 80)) == 40
    assert short_reason(None) == ""


@pytest.mark.parametrize("width", [80, 120, 160])
def test_bench_tables_fit_the_terminal(width):
    out = _render(width)
    lines = out.splitlines()
    table_lines = [line for line in lines if not line.startswith(("edgeclf bench:", "onnx-cuda skipped:", "1st ms:"))]
    assert max(len(line.rstrip()) for line in table_lines) <= width
    # Titles on one line each, not wrapped.
    assert sum(line.strip() == TIMING_TITLE for line in lines) == 1
    assert sum(line.strip() == BACKEND_TITLE for line in lines) == 1
    # No cell cut by the layout: every number is whole (rich marks a cut with "…").
    assert "…" not in out
    for value in ("1,235", "39,506", "41,603", "44,806", "0.81", "25.9", "12,346", "1,234.5", "2,345", "96.3%", "100.0%"):
        assert value in out, value
    # Numbers right-aligned under their header (the header ends where the number ends).
    header = next(line for line in lines if line.lstrip().startswith("backend") and "p50 ms" in line)
    row = next(line for line in lines if line.lstrip().startswith("eager") and " 32 " in line)
    assert row.index("39,506") + len("39,506") == header.index("p50 ms") + len("p50 ms")
    # The skipped backend: its short reason in the table, its full reason once, under the tables.
    words = " ".join(out[out.index("onnx-cuda"):out.index("1st ms:")].split())
    assert words.startswith("onnx-cuda skipped: CUDA provider not active")
    assert out.count(CUDA_REASON) == 1 and out.index(CUDA_REASON) > out.index("1st ms:")
    if width >= 120:
        assert any(line.startswith(" onnx-cuda") and "skipped: CUDA provider not active" in line for line in lines)


@pytest.mark.parametrize("width", [80, 120])
def test_compare_table_fits_with_long_file_names(width):
    from edgeclf.bench.report import compare

    a = {"rows": [{"backend": "onnx-cpu", "batch_size": 8, "latency_ms_p50": 20.0, "throughput_img_per_s": 400.0}]}
    b = {"rows": [{"backend": "onnx-cpu", "batch_size": 8, "latency_ms_p50": 10.0, "throughput_img_per_s": 800.0}]}
    long_a = "/very/long/path/to/some/benchmark/results/of/last/week/with/a/long/name/a.json"
    out = _render(width, print_compare, compare(a, b), long_a, "b.json")
    assert f"A = {long_a}" in out and "B = b.json" in out
    assert sum(line.strip() == "B compared with A (ratio B/A; < 1x: B is faster)" for line in out.splitlines()) == 1
    assert "0.50x" in out and "2.00x" in out and "…" not in out


@pytest.mark.parametrize("width", [80, 120])
def test_export_gate_table_fits(width):
    from rich.console import Console

    from edgeclf.export.parity import render_table

    row = {"gate": "parity", "images": 64, "batch_sizes": [1, 5], "max_abs_prob_diff": 5.7e-9,
           "max_abs_logit_diff": 3.0e-8, "top1_agreement": 1.0, "top3_agreement": 1.0, "passed": True}
    report = {"passed": False, "formats": {
        "torchscript+optimize_for_inference": row, "onnx+ort_optimizations_disabled": row,
        "onnx-int8": {**row, "gate": "accuracy", "images": 216, "batch_sizes": [16], "top1_agreement": 0.97,
                      "top1_accuracy": 95.37, "fp32_top1_accuracy": 96.76, "passed": False}}}
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(render_table(report))
    out = buf.getvalue()
    assert max(len(line.rstrip()) for line in out.splitlines()) <= width
    assert out.splitlines()[0].strip() == "export gates — FAILED" and "…" not in out
    for value in ("5.7e-09", "3.0e-08", "97.0%", "95.4/96.8", "FAIL", "pass", "parity gate: 64 test images"):
        assert value in out, value
    if width >= 120:
        assert "torchscript+optimize_for_inference" in out
