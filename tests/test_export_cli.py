"""`edgeclf export` at the shell: bad input gives one line and exit 2 with nothing written; a run prints the gates."""

from __future__ import annotations

import json

import pytest

from _export_data import make_checkpoint, make_split


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return make_checkpoint(root / "best.pt", make_split(root / "split.json"))


def _bad_checkpoint(kind: str, ckpt, tmp_path):
    if kind == "missing":
        return tmp_path / "nope" / "best.pt"
    if kind == "truncated":
        path = tmp_path / "truncated.pt"
        data = ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    if kind == "foreign":  # a bare state dict, as torchvision or timm would save
        import torch

        path = tmp_path / "state_dict.pt"
        torch.save({"fc.weight": torch.zeros(3, 4)}, path)
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, needle", [
    ("missing", "no such checkpoint file"),
    ("truncated", "truncated or not a torch file"),
    ("foreign", "not an edgeclf checkpoint"),
])
def test_bad_checkpoint(run_cli, ckpt, tmp_path, kind, needle):
    path = _bad_checkpoint(kind, ckpt, tmp_path)
    out = tmp_path / "artifact"
    r = run_cli("export", path, "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeclf export: error: ")
    assert str(path) in lines[0] and needle in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".artifact")]


@pytest.mark.parametrize("args, needle", [
    (["--formats", "onnx,tflite"], "--formats onnx,tflite: unknown ['tflite']"),
    (["--formats", ""], "--formats"),
    (["--opset", "17"], "--opset 17: torch"),
    (["--opset", "99"], "--opset 99: torch"),
    (["--formats", "torchscript", "--int8"], "include onnx in --formats"),
    (["--max-parity-images", "0"], "--max-parity-images 0"),
])
def test_bad_arguments(run_cli, ckpt, tmp_path, args, needle):
    out = tmp_path / "artifact"
    r = run_cli("export", ckpt, "--out", out, *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not out.exists()


def test_existing_artifact_dir_needs_force(run_cli, ckpt, tmp_path):
    out = tmp_path / "artifact"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli("export", ckpt, "--out", out, "--formats", "torchscript")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--out {out}: directory exists and is not empty; pass --force" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    # with --force the old content is replaced, after success; the table is printed
    r = run_cli("export", ckpt, "--out", out, "--formats", "torchscript", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "model.torchscript.pt", "parity.json"]
    assert "PASSED" in r.stdout and "torchscript" in r.stdout and "pass" in r.stdout
    report = json.loads((out / "parity.json").read_text())
    assert set(report["formats"]) == {"torchscript", "torchscript+optimize_for_inference"}
    assert json.loads((out / "artifact.json").read_text())["opset"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]  # no temp or .old siblings
