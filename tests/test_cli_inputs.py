"""Inputs at the edges: tiny images are predicted with a warning, empty paths and arguments are usage
errors, ``cuda:N`` is accepted wherever a device is, and ``edgeclf split`` runs on the base install."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from _tiny_artifact import tiny_artifact  # noqa: F401 (fixture)
from conftest import SAMPLE_DATA, cli_env

from edgeclf.runtime import providers
from edgeclf.runtime.errors import ProviderError, UsageError
from edgeclf.runtime.image import MIN_MEANINGFUL_SIDE, image_warnings


@pytest.fixture
def images(tmp_path):
    tiny = tmp_path / "icon.png"
    Image.new("RGB", (8, 8), (200, 180, 40)).save(tiny)
    thin = tmp_path / "strip.png"
    Image.new("RGB", (300, MIN_MEANINGFUL_SIDE - 1), (10, 20, 30)).save(thin)
    ok = tmp_path / "photo.png"
    Image.new("RGB", (MIN_MEANINGFUL_SIDE, 64), (90, 120, 30)).save(ok)
    return tiny, thin, ok


def test_small_images_are_predicted_with_a_warning(tiny_artifact, images):
    from edgeclf.runtime import Predictor

    tiny, thin, ok = images
    predictor = Predictor(tiny_artifact.dir, device="cpu")
    top = predictor.predict(tiny)
    assert len(top) == 3 and top == list(top)  # still a list of Predictions
    assert top.warnings == ["small image: 8x8 px (short side < 32 px)"]
    assert predictor.predict(ok).warnings == []
    batch = predictor.predict_batch([tiny, ok, thin, tmp_missing := ok.with_name("missing.png")], on_error="return")
    assert [getattr(r, "warnings", None) for r in batch[:3]] == [
        ["small image: 8x8 px (short side < 32 px)"], [], ["small image: 300x31 px (short side < 32 px)"]]
    assert str(tmp_missing) in str(batch[3])
    assert [p.label for p in batch[0]] == [p.label for p in top]
    assert image_warnings(Image.new("RGB", (32, 32))) == []


def test_predict_cli_flags_small_images(tiny_artifact, images, run_cli):
    tiny, _, ok = images
    r = run_cli("predict", tiny_artifact.dir, tiny, ok, "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    records = {rec["input"]: rec for rec in map(json.loads, r.stdout.splitlines())}
    assert records[str(tiny)]["warnings"] == ["small image: 8x8 px (short side < 32 px)"]
    assert records[str(ok)]["warnings"] == [] and len(records[str(ok)]["predictions"]) == 3
    assert f"edgeclf predict: warning: {tiny}: small image: 8x8 px" in r.stderr
    r = run_cli("predict", tiny_artifact.dir, tiny, ok, "--device", "cpu")
    lines = r.stdout.splitlines()
    assert any(line.startswith(f"{tiny} (!)") for line in lines)
    assert any(line.startswith(f"{ok} ") and "(!)" not in line for line in lines)
    assert lines[-1] == f"(!) {tiny}: small image: 8x8 px (short side < 32 px)"


def test_empty_path_is_a_usage_error(tiny_artifact, run_cli, tmp_path):
    from edgeclf.runtime import Predictor, load_image

    with pytest.raises(UsageError, match="^empty path: give an image file, folder or URL$"):
        Predictor(tiny_artifact.dir, device="cpu").predict("")
    with pytest.raises(UsageError, match="^empty path"):
        load_image("")
    r = run_cli("predict", tiny_artifact.dir, "")
    assert r.returncode == 2
    assert r.stderr == "edgeclf predict: error: empty path: give an image file, folder or URL\n"
    for args, name in ((["split", "", "--out", tmp_path / "s.json"], "DATA_DIR"),
                       (["split", SAMPLE_DATA, "--out", ""], "--out"),
                       (["evaluate", tmp_path / "best.pt", "--split", ""], "--split")):
        r = run_cli(*args)
        assert r.returncode == 2 and r.stderr == f"edgeclf {args[0]}: error: {name}: empty argument; give a value\n"


def test_device_syntax_cuda_n():
    assert providers.parse_device("cuda:1") == ("cuda", 1)
    assert providers.parse_device("auto") == ("auto", None)
    for bad in ("gpu", "cuda:", "cuda:x", "cuda1", ""):
        with pytest.raises(UsageError, match="auto, cpu, cuda or cuda:N"):
            providers.parse_device(bad)
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    n = providers.cuda_device_count()
    if n == 0:
        with pytest.raises(ProviderError, match="no CUDA device"):
            providers.plan_providers("cuda:0", None, available)
    else:
        request, required, _ = providers.plan_providers(f"cuda:{n - 1}", None, available)
        assert request == [("CUDAExecutionProvider", {"device_id": n - 1}), "CPUExecutionProvider"]
        assert required == ["CUDAExecutionProvider"]
        with pytest.raises(ProviderError, match=f"reports {n} CUDA device"):
            providers.plan_providers(f"cuda:{n}", None, available)


#: Runs the CLI with the train extra's packages made unimportable, as on a base install.
BASE_INSTALL = r'''
import importlib.abc, sys
class BaseInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rich", "torch", "torchvision", "timm", "onnx", "onnxscript"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, BaseInstall())
from edgeclf.cli import main
sys.exit(main(sys.argv[1:]))
'''


def test_split_and_data_run_on_the_base_install(tmp_path):
    out = tmp_path / "split.json"
    r = subprocess.run([sys.executable, "-c", BASE_INSTALL, "split", str(SAMPLE_DATA), "--out", str(out)],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "Leopards" in r.stdout and "162 (75.0%)" in r.stdout
    r = subprocess.run([sys.executable, "-c", BASE_INSTALL, "data", "caltech101", "--dest", str(tmp_path / "d"),
                        "--url", "http://127.0.0.1:9/caltech-101.zip", "--sha256", "0" * 64, "--timeout", "2"],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("edgeclf data: error: cannot reach http://127.0.0.1:9/"), r.stderr
    r = subprocess.run([sys.executable, "-c", BASE_INSTALL, "evaluate", "best.pt", "--split", str(out)],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert r.returncode == 2 and "pip install 'edgeclf[train]'" in r.stderr


def test_bench_device_cpu_skips_gpu_backends_without_a_worker(tiny_artifact):
    from edgeclf.bench.runner import run_bench

    doc = run_bench(tiny_artifact.dir, backends=["onnx-cuda", "eager-cuda"], device="cpu", end_to_end=False)
    assert doc["settings"]["device"] == "cpu" and doc["rows"] == []
    assert {n: (b["status"], b["reason"]) for n, b in doc["backends"].items()} == {
        "onnx-cuda": ("skipped", "--device cpu: GPU backends not run"),
        "eager-cuda": ("skipped", "--device cpu: GPU backends not run")}
    with pytest.raises(UsageError, match="cuda:N"):
        run_bench(tiny_artifact.dir, backends=["onnx-cuda"], device="gpu")
