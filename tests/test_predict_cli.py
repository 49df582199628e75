"""`edgeclf predict`: table and JSON lines, folders walked, bad inputs reported one line each while
the run goes on, exit codes, and no torch import."""

from __future__ import annotations

import builtins
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from _bad_inputs import corrupt_png_crc, huge_png, jpeg_bytes, noise_rgb, png_bytes, serve
from _tiny_artifact import tiny_artifact, write_onnx  # noqa: F401 (fixture)
from conftest import REPO_ROOT, SAMPLE_DATA, cli_env
from edgeclf.commands.predict import print_table
from edgeclf.runtime import Prediction, Predictor
from edgeclf.runtime.providers import cuda_device_count
from test_runtime_import import BLOCKER

GOOD = [SAMPLE_DATA / "camera" / "image_0001.jpg", SAMPLE_DATA / "watch" / "image_0001.jpg",
        SAMPLE_DATA / "Leopards" / "image_0009.jpg"]


@pytest.fixture(scope="module")
def predictor(tiny_artifact):
    return Predictor(tiny_artifact.dir, device="cpu")


@pytest.fixture
def photos(tmp_path):
    """A folder with three good photos (one in a sub-folder) and every kind of bad file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a_camera.jpg").write_bytes(GOOD[0].read_bytes())
    (root / "b_watch.jpg").write_bytes(GOOD[1].read_bytes())
    (root / "sub" / "c_leopard.jpg").write_bytes(GOOD[2].read_bytes())
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not a photo\n")
    half = jpeg_bytes(noise_rgb(2, (64, 64)))
    (root / "half.jpg").write_bytes(half[: len(half) // 2])
    (root / "bad_crc.png").write_bytes(corrupt_png_crc(png_bytes(noise_rgb(3))))
    (root / "bomb.png").write_bytes(huge_png(30_000, 30_000))
    (root / "readme.txt").write_text("ignored: not an image suffix")
    return root


BAD = ["bad_crc.png", "bomb.png", "empty.jpg", "half.jpg", "notes.jpg"]


def test_table_with_bad_files_urls_and_folders(run_cli, tiny_artifact, predictor, photos):
    routes = {"/ok.jpg": (200, "image/jpeg", GOOD[0].read_bytes(), None),
              "/page": (200, "text/html", b"<html></html>", None)}
    with serve(routes) as base:
        r = run_cli("predict", tiny_artifact.dir, photos, photos / "missing.jpg", base + "/ok.jpg",
                    base + "/page", base + "/gone.jpg", "--device", "cpu", timeout=120)
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip().splitlines()
    assert err[0].startswith("edgeclf predict: ") and "tiny-test, 9 classes) on CPUExecutionProvider" in err[0]
    errors = [line for line in err if line.startswith("edgeclf predict: error: ")]
    assert len(errors) == 8, r.stderr
    for name, reason in [("bad_crc.png", "bad header checksum"), ("bomb.png", "decompression bomb"),
                         ("empty.jpg", "empty file"), ("half.jpg", "truncated"), ("notes.jpg", "is text"),
                         ("missing.jpg", "no such file"), ("/page", "text/html"), ("/gone.jpg", "HTTP 404")]:
        assert any(name in line and reason in line for line in errors), (name, r.stderr)
    assert err[-1] == "edgeclf predict: 4 predicted, 8 failed, 1 skipped"
    assert err[-2] == (f"edgeclf predict: skipped 1 file(s), unsupported_extension (extension is not an image"
                       f" format Pillow can open here): {photos / 'readme.txt'} ('.txt')")
    assert "Traceback" not in r.stderr

    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["file", "top-1", "top-2", "top-3"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == [str(photos / "a_camera.jpg"), str(photos / "b_watch.jpg"),
                          str(photos / "sub" / "c_leopard.jpg"), base + "/ok.jpg"]
    for name, source in zip(rows, GOOD + [GOOD[0]]):
        expected = [x for p in predictor.predict(source) for x in (p.label, f"{p.probability * 100:.1f}%")]
        assert rows[name] == expected


def test_json_lines(run_cli, tiny_artifact, predictor, photos):
    r = run_cli("predict", tiny_artifact.dir, photos, "--json", "--top-k", "2", "--device", "cpu",
                "--batch-size", "3", timeout=120)
    assert r.returncode == 1, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    names = [rec["input"] for rec in records]
    assert names == sorted(names) and len(records) == 8  # folder walked in sorted order
    failed = {rec["input"].rsplit("/", 1)[-1]: rec for rec in records if "error" in rec}
    assert sorted(failed) == BAD
    assert failed["bomb.png"]["error_type"] == "ImageTooLargeError"
    assert failed["empty.jpg"]["error_type"] == "InvalidImageError"
    good = [rec for rec in records if "predictions" in rec]
    for rec, source in zip(good, GOOD):
        expected = predictor.predict(source, top_k=2)
        assert [p["label"] for p in rec["predictions"]] == [p.label for p in expected]
        assert [p["index"] for p in rec["predictions"]] == [p.index for p in expected]
        assert max(abs(p["probability"] - e.probability) for p, e in zip(rec["predictions"], expected)) < 1e-6


def test_all_good_exits_0_and_runs_without_torch(tiny_artifact, predictor):
    code = BLOCKER + (
        "import sys\n"
        "from edgeclf.cli import main\n"
        f"rc = main(['predict', {str(tiny_artifact.dir)!r}, *{[str(p) for p in GOOD]!r}, '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY\n"
        "               or (m.startswith(HEAVY_OURS) and m not in TORCH_FREE_OURS))\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                       env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    *records, heavy = r.stdout.strip().splitlines()
    assert heavy == "HEAVY []"
    assert [json.loads(x)["predictions"][0]["label"] for x in records] == [predictor.predict(p)[0].label for p in GOOD]
    assert r.stderr.strip().splitlines()[-1] == "edgeclf predict: 3 predicted, 0 failed"


def test_unusable_artifacts_exit_2_with_one_line(run_cli, tiny_artifact, tmp_path):
    empty = tmp_path / "art"
    empty.mkdir()
    r = run_cli("predict", empty, GOOD[0])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"edgeclf predict: error: {empty}: missing model.onnx; the directory holds nothing"
    plain = write_onnx(tmp_path / "plain.onnx", tiny_artifact.onnx_path.read_bytes(), None)
    r = run_cli("predict", plain, GOOD[0])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "plain.onnx: ONNX file has no edgeclf metadata" in r.stderr
    r = run_cli("predict", tiny_artifact.dir, GOOD[0], "--top-k", "0")
    assert r.returncode == 2 and "--top-k 0" in r.stderr
    r = run_cli("predict", tiny_artifact.dir, tmp_path / "gone.jpg", "--device", "cpu")  # every input fails
    assert r.returncode == 1 and r.stdout == "" and "gone.jpg: no such file" in r.stderr


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a CUDA device")
def test_device_cuda_without_gpu_exits_2(run_cli, tiny_artifact):
    r = run_cli("predict", tiny_artifact.dir, GOOD[0], "--device", "cuda")
    assert r.returncode == 2 and "device='cuda'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_table_without_rich(monkeypatch):
    rows = [("x/a [red].jpg", [Prediction("cat [b]", 0, 0.975), Prediction("dog", 1, 0.025)]),
            ("b.jpg", [Prediction("dog", 1, 0.5)])]
    with_rich = io.StringIO()
    print_table(rows, 2, file=with_rich)
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name.split(".")[0] == "rich":
            raise ImportError("no rich")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    plain = io.StringIO()
    print_table(rows, 2, file=plain)
    for out in (with_rich.getvalue(), plain.getvalue()):
        lines = [line.rstrip() for line in out.splitlines()]
        assert lines[0].split() == ["file", "top-1", "top-2"]
        assert lines[1].split() == ["x/a", "[red].jpg", "cat", "[b]", "97.5%", "dog", "2.5%"]  # no markup eaten
        assert lines[2].split() == ["b.jpg", "dog", "50.0%"]
