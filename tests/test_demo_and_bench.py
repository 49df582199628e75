"""The end-to-end demo (shortened) and the bench results it produces.

One module-scoped demo run on the shipped Caltech sample feeds every test here: split → train
(efficientnet_lite0, 3 epochs) → evaluate → export (int8 too) → predict → bench.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from conftest import NINE_CLASSES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``edgeclf demo --epochs 3 --bench-iters 5`` at the shell, stdout and stderr captured apart;
    its result rebuilt from the JSON summary (stdout) and the files it wrote."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from conftest import cli_env

    out = tmp_path_factory.mktemp("demo") / "out"
    r = subprocess.run([sys.executable, "-m", "edgeclf", "demo", "--out", str(out), "--epochs", "3",
                        "--bench-iters", "5"], capture_output=True, text=True, env=cli_env(), timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout[r.stdout.rindex("\n{") + 1:])  # the final JSON summary closes stdout
    return SimpleNamespace(
        stdout=r.stdout, stderr=r.stderr, summary=summary, out_dir=out,
        split_path=out / "split.json", checkpoint=out / "run" / "best.pt", artifact_dir=out / "artifact",
        test_top1=summary["test_top1"], test_top3=summary["test_top3"], stage_seconds=summary["stage_seconds"],
        predictions=[(p["input"], [(q["label"], q["probability"]) for q in p["predictions"]])
                     for p in summary["predictions"]],
        bench=json.loads((out / "bench.json").read_text()))


def test_demo_streams_results_on_stdout_story_on_stderr(demo):
    # stdout: the bench tables, then the JSON summary, nothing else.
    assert "latency and throughput per batch" in demo.stdout and "per backend" in demo.stdout
    head = demo.stdout[:demo.stdout.rindex("\n{")]
    for story in ("── 1/7 split", "── summary", "epoch ", "best val top-1", "… done", "parity: ONNX",
                  "exporting ONNX", "test top-1"):
        assert story not in head, story
    # stderr: every heading, the epoch lines, one plain line per export and bench stage, no redrawing.
    for needle in ("── 1/7 split", "── 2/7 train", "── 3/7 evaluate", "── 4/7 export", "── 6/7 bench",
                   "epoch   3/3", "evaluating 27 test images … done", "export: parity: ONNX … done",
                   "export: quantizing ONNX to int8", "onnx-cpu batch 8 — p50 ", "── summary", "total"):
        assert needle in demo.stderr, needle
    assert "\x1b[" not in demo.stderr and "\r" not in demo.stderr
    assert "latency and throughput" not in demo.stderr
    # The summary names the total time and every file written, bench.json included.
    s = demo.summary
    files = sorted(str(p.relative_to(demo.out_dir)) for p in demo.out_dir.rglob("*") if p.is_file())
    assert s["files"] == files and "bench.json" in files and "artifact/model.int8.onnx" in files
    assert s["bench_json"] == str(demo.out_dir / "bench.json")
    assert s["total_seconds"] >= sum(s["stage_seconds"].values()) - 0.5 > 0


def test_demo_runs_every_stage(demo):
    assert demo.split_path.is_file() and demo.checkpoint.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert demo.artifact_dir.stat().st_mode & 0o777 == 0o777 & ~umask  # readable by other users, as mkdir makes it
    assert sorted(p.name for p in demo.artifact_dir.iterdir()) == [
        "artifact.json", "model.int8.onnx", "model.onnx", "model.torchscript.pt", "parity.json"]
    # 9 classes x 24 images, 3 test images per class: real pretrained features separate them.
    assert demo.test_top1 >= 0.9
    assert demo.test_top3 >= demo.test_top1
    assert len(demo.predictions) == 3
    for path, top in demo.predictions:
        assert len(top) == 3
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(label in NINE_CLASSES for label, _ in top)
    assert set(demo.stage_seconds) == {"1/7 split", "2/7 train", "3/7 evaluate", "4/7 export",
                                       "5/7 predict (torch-free runtime)", "6/7 bench", "7/7 report"}


def test_bench_json_schema_and_ordered_percentiles(demo):
    doc = json.loads((demo.out_dir / "bench.json").read_text())
    assert doc["schema"] == "edgeclf.bench" and doc["schema_version"] == 1
    assert set(doc) >= {"created_utc", "artifact", "settings", "environment", "backends", "rows",
                        "preprocessing", "end_to_end"}
    env = doc["environment"]
    assert env["cpu_physical_cores"] >= 1 and env["versions"]["onnxruntime"]
    assert "CPUExecutionProvider" in env["onnxruntime_available_providers"]
    s = doc["settings"]
    assert (s["warmup"], s["iters"], s["batch_sizes"]) == (3, 5, [1, 8])
    ok = [n for n, b in doc["backends"].items() if b["status"] == "ok"]
    assert ok == ["eager", "torchscript", "onnx-cpu", "onnx-int8"]
    assert {(r["backend"], r["batch_size"]) for r in doc["rows"]} == {(n, b) for n in ok for b in (1, 8)}
    for r in doc["rows"]:
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        assert r["iters"] == 5 and r["warmup"] == 3
        assert r["throughput_img_per_s"] == pytest.approx(r["batch_size"] / (r["latency_ms_p50"] / 1000))
        assert r["latency_ms_per_image_p50"] == pytest.approx(r["latency_ms_p50"] / r["batch_size"])
    for name in ok:
        b = doc["backends"][name]
        assert b["load_ms"] > 0 and b["first_inference_ms"] > 0 and 50 < b["peak_rss_mib"] < 8000
        assert b["num_images"] == s["test_images"] == 27
    pre = doc["preprocessing"]
    assert 0 < pre["decode_ms_p50"] < pre["preprocess_ms_p50"]
    assert doc["end_to_end"]["providers"] == ["CPUExecutionProvider"]


def test_gpu_backend_is_skipped_with_its_reason(demo):
    cuda = demo.bench["backends"]["onnx-cuda"]
    if cuda["status"] == "ok":
        pytest.skip("a CUDA device is present")
    assert cuda["status"] == "skipped" and cuda["reason"].startswith("CUDA provider not active")
    assert not [r for r in demo.bench["rows"] if r["backend"] == "onnx-cuda"]


def test_eager_accuracy_equals_evaluate(demo):
    from edgeclf.train.evaluate import evaluate_checkpoint

    ev = evaluate_checkpoint(demo.checkpoint, demo.split_path, subset="test", device="cpu")
    eager = demo.bench["backends"]["eager"]
    assert eager["accuracy_top1"] == ev["top1"] == demo.test_top1
    for name in ("torchscript", "onnx-cpu"):  # fp32 formats passed the parity gate: same predictions
        assert demo.bench["backends"][name]["top1_agreement_with_eager"] == 1.0
        assert demo.bench["backends"][name]["accuracy_top1"] == ev["top1"]


def test_bench_cli_json_csv_and_compare(demo, run_cli, tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "b.csv"
    common = ["--backends", "onnx-cpu,onnx-cuda", "--batch-sizes", "1,2", "--warmup", "1", "--iters", "3"]
    r = run_cli("bench", demo.artifact_dir, *common, "--threads", "1", "--json", a)
    assert r.returncode == 0, r.stderr
    r = run_cli("bench", demo.artifact_dir, *common, "--threads", "2", "--json", b, "--csv", c)
    assert r.returncode == 0, r.stderr
    assert "onnx-cpu" in r.stdout and "skipped: CUDA provider not active" in r.stdout
    doc = json.loads(b.read_text())
    assert doc["settings"]["threads"] == 2 and doc["settings"]["test_images"] == 0
    rows = list(csv.DictReader(c.open()))
    assert [(row["backend"], row["batch_size"], row["status"]) for row in rows] == [
        ("onnx-cpu", "1", "ok"), ("onnx-cpu", "2", "ok"), ("onnx-cuda", "", "skipped")]
    assert float(rows[0]["latency_ms_p50"]) == pytest.approx(doc["rows"][0]["latency_ms_p50"])
    r = run_cli("bench", "compare", a, b)
    assert r.returncode == 0, r.stderr
    assert "p50 B/A" in r.stdout and r.stdout.count("onnx-cpu") == 2
    assert "settings.threads differs: A 1, B 2" in r.stdout
    assert "artifact.dir differs" not in r.stdout  # the same artifact
    other = json.loads(a.read_text())
    other["artifact"]["dir"] = "/elsewhere/artifact"
    a.write_text(json.dumps(other))
    r = run_cli("bench", "compare", a, b)
    assert "artifact.dir differs: A '/elsewhere/artifact'" in r.stdout


def test_bench_bad_input(run_cli, tmp_path, demo):
    r = run_cli("bench", tmp_path / "missing")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "missing" in r.stderr
    r = run_cli("bench", demo.artifact_dir, "--backends", "onnx-tpu")
    assert r.returncode == 2 and "onnx-tpu" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("bench", demo.artifact_dir, "--seconds", "0")
    assert r.returncode == 2 and "--seconds 0" in r.stderr
    r = run_cli("bench", "compare", tmp_path / "nope.json", tmp_path / "nope2.json")
    assert r.returncode == 2 and "nope.json" in r.stderr


def test_demo_refuses_a_non_empty_out_dir(demo):
    from edgeclf.bench.demo import run_demo
    from edgeclf.runtime.errors import UsageError

    with pytest.raises(UsageError, match="not empty"):
        run_demo(demo.out_dir)


def test_runtime_top3_equals_eager_on_every_test_image(demo):
    """Runtime top-3 equals eager top-3 on the demo's trained efficientnet_lite0 artifact."""
    from edgeclf.runtime import Predictor
    from edgeclf.runtime.manifest import load_manifest
    from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
    from edgeclf.runtime.inference import softmax
    from edgeclf.train.evaluate import predict_logits

    ckpt = load_checkpoint(demo.checkpoint)
    paths = [p for p, _ in load_manifest(demo.split_path).files("test")]
    eager = softmax(predict_logits(model_from_checkpoint(ckpt), paths, preprocess_of(ckpt), device="cpu"))
    predictor = Predictor(demo.artifact_dir, device="cpu")
    for path, probs, got in zip(paths, eager, predictor.predict_batch(paths, top_k=3)):
        want = np.argsort(-probs, kind="stable")[:3]
        assert [p.index for p in got] == want.tolist(), path
        assert max(abs(p.probability - probs[p.index]) for p in got) <= 1e-4, path
