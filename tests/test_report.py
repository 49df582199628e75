"""`edgeclf report` and the plots of every stage, on tiny hand-made inputs of the real schemas:
a run folder (history.json, best.pt metadata, eval_test.json from compute_metrics), an artifact
folder (artifact.json, parity.json from the gate functions) and a bench JSON (edgeclf.bench v1)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.runtime.artifact import ModelInfo, write_artifact_json
from edgeclf.runtime.files import file_sha256
from edgeclf.runtime.preprocess import PreprocessConfig
from _tiny_artifact import tiny_description
from train_support import write_split

#: Class names with HTML metacharacters (the page must escape them) and a mathtext pair (drawn literally).
CLASSES = ["cat", "$x$ dog", "<b>fish&chips</b>"]


def _history(epochs: int = 4) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + 0.1 * e, "val_loss": 1.2 / e + 0.05,
             "val_acc": [0.5, 0.75, 1.0, 1.0][e - 1], "lr": 1e-3, "train_images": 12,
             "train_images_per_s": 100.0, "epoch_time_s": 0.1, "elapsed_s": 0.1 * e} for e in range(1, epochs + 1)]


def _bench_doc(scale: float = 1.0, cpu: str = "Test CPU") -> dict:
    rows = []
    for name, base in (("eager", 20.0), ("onnx-cpu", 5.0)):
        for bs in (1, 4):
            p50 = base * bs * scale
            rows.append({"backend": name, "batch_size": bs, "latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1,
                         "latency_ms_p99": p50 * 1.3, "latency_ms_mean": p50 * 1.05,
                         "latency_ms_per_image_p50": p50 / bs, "throughput_img_per_s": 1000.0 * bs / p50,
                         "iters": 5, "warmup": 1})
    ok = {"status": "ok", "device": "cpu", "load_ms": 120.5, "first_inference_ms": 9.25, "peak_rss_mib": 300.0,
          "peak_gpu_mem_mib": None, "accuracy_top1": 0.75, "top1_agreement_with_eager": 1.0}
    return {"schema": "edgeclf.bench", "schema_version": 1, "created_utc": "2026-01-01T00:00:00+00:00",
            "artifact": {"dir": "/x", "arch": "tinynet", "num_classes": 3, "checkpoint": None},
            "settings": {"backends": ["eager", "onnx-cpu", "onnx-cuda"], "batch_sizes": [1, 4], "warmup": 1,
                         "iters": 5, "seconds": None, "threads": 2, "test_images": 4},
            "environment": {"cpu_model": cpu, "versions": {"onnxruntime": "1.0"}},
            "backends": {"eager": {**ok, "providers": None},
                         "onnx-cpu": {**ok, "providers": ["CPUExecutionProvider"], "peak_rss_mib": 100.0},
                         "onnx-cuda": {"status": "skipped", "reason": "CUDA provider not active"}},
            "rows": rows}


@pytest.fixture
def inputs(tmp_path, image_tree):
    """(run_dir, artifact_dir, bench_path, eval dict, bench doc) of a tiny 3-class model."""
    import torch

    from edgeclf.export import parity as P
    from edgeclf.train.checkpoint import save_checkpoint
    from edgeclf.train.evaluate import compute_metrics

    data = image_tree({c.replace("<", "").replace(">", "").replace("/", ""): 4 for c in CLASSES})
    folders = sorted(p.name for p in data.iterdir())
    split = write_split(data, tmp_path / "split.json", classes=folders)
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps(_history()))
    save_checkpoint({"arch": "tinynet", "weights": "none", "num_classes": 3, "class_names": CLASSES,
                     "preprocess": {"crop_size": 224, "resize_size": 256}, "model_args": {"hidden_dim": 8},
                     "model_state": {"w": torch.zeros(1)}, "split_sha256": file_sha256(split),
                     "split_path": str(split), "epoch": 4, "epochs": 4, "best_epoch": 3, "best_val_acc": 1.0,
                     "train_args": {"epochs": 4, "lr": 0.001, "batch_size": 8}, "edgeclf_version": "0.1.0"},
                    run / "best.pt")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 3)).astype(np.float32)
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    ev = {"subset": "test", "split_matches_checkpoint": True, **compute_metrics(logits, labels, CLASSES)}
    (run / "eval_test.json").write_text(json.dumps(ev))

    art = tmp_path / "artifact"
    art.mkdir()
    (art / "model.onnx").write_bytes(b"not really onnx" * 10)
    ref = {b: logits for b in (1, 5)}
    fmt = {"onnx": P.parity_entry(ref, {b: logits + 1e-6 * rng.normal(size=logits.shape) for b in (1, 5)}),
           "onnx-int8": P.accuracy_entry(logits, logits + 0.3 * rng.normal(size=logits.shape), np.array(labels),
                                         "int8", 1.0, 8)}
    (art / "parity.json").write_text(json.dumps({
        "schema": "edgeclf.parity", "schema_version": 1, "passed": True, "images": {"count": 8},
        "batch_sizes": [1, 5], "tolerances": {"max_abs_prob_diff": 1e-4, "max_accuracy_drop_points": 1.0},
        "formats": fmt}))
    desc = tiny_description(art / "model.onnx", ModelInfo(class_names=tuple(CLASSES), preprocess=PreprocessConfig(),
                                                          arch="tinynet", source_checkpoint_sha256="0" * 64))
    desc.update(opset=18, versions={"torch": "2.x", "onnxruntime": "1.x"})
    write_artifact_json(art, desc)
    bench = tmp_path / "bench.json"
    doc = _bench_doc()
    bench.write_text(json.dumps(doc))
    return run, art, bench, ev, doc


def test_full_report_figures_html_and_numbers(inputs, tmp_path):
    from edgeclf.bench.model_report import build_report, pct

    run, art, bench, ev, doc = inputs
    other = tmp_path / "machine2" / "bench.json"
    other.parent.mkdir()
    doc2 = _bench_doc(scale=0.5, cpu="Other CPU")
    other.write_text(json.dumps(doc2))
    res = build_report(run, tmp_path / "report", artifact_dir=art, bench_paths=[bench, other])

    assert res.absent == {}
    names = [f.path.name for f in res.figures]
    assert names == ["training_curves.png", "confusion_matrix.png", "confusion_matrix_normalized.png",
                     "per_class_metrics.png", "export_parity.png", "bench_latency.png", "bench_throughput.png",
                     "bench_cold_start_memory.png"]
    html = res.index_html.read_text(encoding="utf-8")
    for fig in res.figures:
        with Image.open(fig.path) as im:
            im.load()
            assert im.format == "PNG" and im.size == (fig.width_px, fig.height_px)
            assert im.size[0] >= 500 and im.size[1] >= 250
        assert base64.b64encode(fig.path.read_bytes()).decode() in html  # embedded
        assert f'href="{fig.path.name}"' in html  # and linked
    assert abs(res.figures[0].width_px - 1100) <= 1 and abs(res.figures[0].height_px - 440) <= 1
    # the numbers of the JSON inputs, as text
    assert f"<td>{pct(ev['top1'])}</td><td>{pct(ev['top3'])}</td>" in html
    for d in (doc, doc2):
        for r in d["rows"]:
            assert f"<td>{r['backend']}</td><td>{r['batch_size']}</td><td>{r['latency_ms_p50']:,.2f}</td>" in html
    assert "CUDA provider not active" in html
    assert "bench.json" in html and "machine2/bench.json" in html
    # the model card: arch, data, recipe, accuracies, files with sha256, versions
    assert "tinynet" in html and "split seed" in html and "8 / 0 / 0" not in html
    assert file_sha256(art / "model.onnx") in html and "onnxruntime (export)" in html
    assert "<td>lr</td>" not in html and "<th>lr</th><td>0.001</td>" in html
    # class names escaped everywhere
    assert "<b>fish" not in html and "&lt;b&gt;fish&amp;chips&lt;/b&gt;" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # several bench runs: one latency panel each, run-labelled lines
    lat = next(f for f in res.figures if f.path.name == "bench_latency.png")
    first = f"{bench.parent.name}/bench.json"  # same file names: told apart by their folders
    assert list(lat.details["panels"]) == [first, "machine2/bench.json"]
    assert lat.details["panels"][first] == ["eager", "onnx-cpu"]
    par = next(f for f in res.figures if f.path.name == "export_parity.png")
    assert par.details["formats"] == ["onnx", "onnx-int8"] and par.details["accuracy_formats"] == ["onnx-int8"]


def test_model_card_data_facts(inputs, tmp_path):
    from edgeclf.bench.model_report import build_report
    from edgeclf.runtime.manifest import load_manifest

    run, _, _, _, _ = inputs
    res = build_report(run, tmp_path / "r")
    man = load_manifest(tmp_path / "split.json")
    html = res.index_html.read_text()
    counts = " / ".join(str(len(man.entries(s))) for s in ("train", "val", "test"))
    assert f"<td>{counts}</td>" in html and man.sha256 in html


def test_partial_report_lists_absent_sections(inputs, tmp_path):
    from edgeclf.bench.model_report import build_report

    run, _, _, _, _ = inputs
    (run / "eval_test.json").unlink()
    res = build_report(run, tmp_path / "r")
    assert set(res.absent) == {"evaluation", "export parity", "bench"}
    assert [f.path.name for f in res.figures] == ["training_curves.png"]
    html = res.index_html.read_text()
    assert "Not in this report" in html and "edgeclf evaluate" in html and "--bench" in html
    assert 'id="bench"' not in html and 'id="training"' in html


def test_101_class_confusion_matrix_names_every_class(tmp_path):
    from edgeclf.train.plots import confusion_matrix

    names = [f"class_{i:03d}_{'x' * (i % 25)}" for i in range(101)]
    rng = np.random.default_rng(0)
    m = np.diag(rng.integers(5, 30, 101)) + (rng.random((101, 101)) < 0.02)
    fig = confusion_matrix(m.tolist(), names, tmp_path / "cm.png", normalize=True)
    assert fig.details["tick_labels"]["x"] == names and fig.details["tick_labels"]["y"] == names
    assert not fig.details["annotated"]
    with Image.open(fig.path) as im:
        assert im.size == (fig.width_px, fig.height_px) and im.size[0] >= 1500


def test_parity_keeps_the_per_image_distribution():
    from edgeclf.export.parity import compare, parity_entry

    rng = np.random.default_rng(1)
    ref = rng.normal(size=(6, 4)).astype(np.float32)
    cand = ref + rng.normal(scale=1e-3, size=ref.shape).astype(np.float32)
    m = compare(ref, cand)
    assert len(m["max_abs_prob_diff_per_image"]) == 6
    assert max(m["max_abs_prob_diff_per_image"]) == pytest.approx(m["max_abs_prob_diff"], rel=1e-2)
    e = parity_entry({1: ref, 5: ref}, {1: cand, 5: ref})
    assert e["max_abs_prob_diff_per_image"] == m["max_abs_prob_diff_per_image"]


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_or_malformed_inputs_give_one_line(inputs, tmp_path, capsys):
    from edgeclf.cli import main

    run, art, bench, _, _ = inputs
    out = str(tmp_path / "r")
    assert main(["report", str(tmp_path / "nope"), "--out", out]) == 2
    assert "nope: no such run directory" in _one_error_line(capsys)
    assert main(["report", str(run), "--bench", str(tmp_path / "missing.json"), "--out", out]) == 2
    assert "missing.json: no such bench JSON file" in _one_error_line(capsys)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", str(run), "--bench", str(bad), "--out", out]) == 2
    assert "bad.json: bench JSON is not valid JSON" in _one_error_line(capsys)
    bad.write_text(json.dumps({**_bench_doc(), "rows": [{"backend": "eager"}]}))
    assert main(["report", str(run), "--bench", str(bad), "--out", out]) == 2
    assert "bad.json: malformed bench result" in _one_error_line(capsys)
    assert main(["report", str(run), "--artifact", str(tmp_path / "noart"), "--out", out]) == 2
    assert "noart: no such artifact directory" in _one_error_line(capsys)
    (art / "parity.json").write_text('{"schema": "edgeclf.parity"}')
    assert main(["report", str(run), "--artifact", str(art), "--out", out]) == 2
    assert "parity.json: not an edgeclf parity report" in _one_error_line(capsys)
    (run / "eval_test.json").write_text('{"top1": 1}')
    assert main(["report", str(run), "--out", out]) == 2
    assert "eval_test.json: malformed evaluation report" in _one_error_line(capsys)
    (run / "history.json").write_text("[]")
    assert main(["report", str(run), "--out", out]) == 2
    assert "history.json: malformed training history" in _one_error_line(capsys)
    (run / "history.json").write_text(json.dumps(_history()))
    (run / "eval_test.json").unlink()
    (run / "best.pt").write_bytes(b"truncated")
    assert main(["report", str(run), "--out", out]) == 2
    assert "best.pt: cannot read checkpoint" in _one_error_line(capsys)
    assert not (tmp_path / "r" / "index.html").exists()


def test_evaluation_figures_beside_the_json(tmp_path):
    from edgeclf.train.evaluate import compute_metrics
    from edgeclf.train.plots import write_evaluation_figures

    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    ev = compute_metrics(logits, [0, 1, 2, 1], CLASSES)
    figs = write_evaluation_figures(ev, tmp_path)
    assert [f.path.name for f in figs] == ["confusion_matrix.png", "confusion_matrix_normalized.png"]
    assert figs[0].details["annotated"] and figs[0].details["tick_labels"]["x"] == CLASSES
    for f in figs:
        with Image.open(f.path) as im:
            assert im.size == (f.width_px, f.height_px)


def test_evaluate_cli_writes_the_confusion_matrix_beside_its_json(tmp_path, monkeypatch, capsys):
    import edgeclf.train.evaluate as E
    from edgeclf.cli import main

    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    ev = {"subset": "test", "split_matches_checkpoint": True, **E.compute_metrics(logits, [0, 1, 2, 1], CLASSES)}

    def fake_evaluate(checkpoint, split, subset, json_out, **kw):  # the metrics are tested in test_evaluate.py
        E.write_json(ev, json_out)
        return ev

    monkeypatch.setattr(E, "evaluate_checkpoint", fake_evaluate)
    out = tmp_path / "elsewhere" / "eval.json"
    out.parent.mkdir()
    assert main(["evaluate", str(tmp_path / "best.pt"), "--split", "s.json", "--json", str(out)]) == 0
    shown = capsys.readouterr().err  # "wrote" lines are logs: stderr
    for name in ("confusion_matrix.png", "confusion_matrix_normalized.png"):
        with Image.open(out.parent / name) as im:
            assert im.format == "PNG"
        assert f"wrote {out.parent / name}" in shown


def test_bench_without_a_backend_that_ran_keeps_its_tables(inputs, tmp_path):
    from edgeclf.bench.model_report import build_report

    run, _, _, _, _ = inputs
    doc = _bench_doc()
    doc["backends"] = {"onnx-cuda": {"status": "skipped", "reason": "no <GPU> here"}}
    doc["rows"] = []
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(doc))
    res = build_report(run, tmp_path / "r", bench_paths=[path])
    assert "bench figures" in res.absent and not [f for f in res.figures if f.path.name.startswith("bench_")]
    assert "skipped: no &lt;GPU&gt; here" in res.index_html.read_text()
