"""export_checkpoint on a random-init EfficientNet-Lite0 (64 px) over real Caltech JPEGs.

One export (TorchScript + ONNX + fp16 + int8) is shared by the module's tests; they check the gate
numbers in parity.json, artifact.json, the dynamic batch axis and the metadata read back without
edgeclf.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _export_data import CLASSES, SMALL, make_checkpoint, make_split

from edgeclf.runtime.artifact import ARTIFACT_JSON, FORMAT_FILES, PARITY_JSON, SCHEMA, ModelInfo
from edgeclf.runtime.image import load_image
from edgeclf.runtime.manifest import file_sha256, load_manifest
from edgeclf.runtime.preprocess import preprocess


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(artifact_dir, checkpoint, split, description) of one full export, built once."""
    from edgeclf.export import export_checkpoint

    root = tmp_path_factory.mktemp("export")
    split = make_split(root / "split.json")
    ckpt = make_checkpoint(root / "best.pt", split)
    # random weights: accuracy is chance, so the accuracy gate is opened wide here (it is tested below)
    desc = export_checkpoint(ckpt, root / "artifact", fp16=True, int8=True, max_accuracy_drop=100.0)
    return root / "artifact", ckpt, split, desc


def _test_inputs(split):
    manifest = load_manifest(split)
    files = manifest.files("test")
    x = np.stack([preprocess(load_image(p), SMALL) for p, _ in files])
    return x, np.array([label for _, label in files])


def _eager(ckpt, x):
    import torch

    from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(ckpt))
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_artifact_directory_contents(exported):
    art, ckpt, split, desc = exported
    names = sorted(p.name for p in art.iterdir())
    assert names == sorted([*FORMAT_FILES.values(), ARTIFACT_JSON, PARITY_JSON])
    assert not [p for p in art.parent.iterdir() if p.name.startswith(".artifact.")]  # no temp sibling left
    on_disk = json.loads((art / ARTIFACT_JSON).read_text())
    assert on_disk == desc
    # both files follow their declared formats; artifact.json also the shipped JSON Schema
    from edgeclf.export.parity import load_parity_json
    from edgeclf.runtime.artifact import ARTIFACT_SCHEMA_FILE, load_artifact_json
    from test_formats import validate

    validate(on_disk, json.loads(ARTIFACT_SCHEMA_FILE.read_text()))
    assert load_artifact_json(art).formats["onnx-int8"].precision == "int8"
    assert load_parity_json(art).passed is True
    assert desc["schema"] == SCHEMA and desc["schema_version"] == 1
    for key, entry in desc["formats"].items():
        path = art / entry["file"]
        assert entry["file"] == FORMAT_FILES[key]
        assert entry["sha256"] == file_sha256(path) and entry["size_bytes"] == path.stat().st_size
    assert {k: e["precision"] for k, e in desc["formats"].items()} == {
        "torchscript": "fp32", "onnx": "fp32", "onnx-fp16": "fp16", "onnx-int8": "int8"}
    # fp16 weights halve the file, int8 quarters it (give or take graph overhead)
    fp32 = desc["formats"]["onnx"]["size_bytes"]
    assert 0.45 < desc["formats"]["onnx-fp16"]["size_bytes"] / fp32 < 0.55
    assert 0.2 < desc["formats"]["onnx-int8"]["size_bytes"] / fp32 < 0.32
    assert desc["input"] == {"name": "input", "dtype": "float32", "shape": ["N", 3, 64, 64],
                             "layout": "NCHW", "color_order": "RGB"}
    assert desc["output"]["name"] == "logits" and desc["output"]["shape"] == ["N", 3]
    assert desc["output"]["softmax_applied"] is False
    assert desc["class_names"] == CLASSES and desc["arch"] == "efficientnet_lite0"
    assert desc["preprocess"] == SMALL.to_dict()
    assert desc["source_checkpoint"]["sha256"] == file_sha256(ckpt)
    assert desc["source_checkpoint"]["split_sha256"] == file_sha256(split)
    assert desc["opset"] == 18 and desc["formats"]["onnx"]["opset"] == 18
    assert set(desc["versions"]) >= {"torch", "onnx", "onnxruntime", "edgeclf"}
    assert desc["parity"]["passed"] is True
    assert desc["formats"]["onnx-int8"]["quantization"]["calibration_images"] == 18  # 6 train images x 3


def test_parity_numbers(exported):
    art, ckpt, split, _ = exported
    report = json.loads((art / PARITY_JSON).read_text())
    assert report["passed"] is True and report["failures"] == []
    assert report["images"]["count"] == 12 and len(report["images"]["paths"]) == 12
    assert report["images"]["split_matches_checkpoint"] is True
    assert report["batch_sizes"] == [1, 5] and report["export_batch_size"] not in report["batch_sizes"]
    rows = report["formats"]
    fp32_rows = ("torchscript", "torchscript+optimize_for_inference", "onnx", "onnx+ort_optimizations_disabled")
    assert set(rows) == {*fp32_rows, "onnx-fp16", "onnx-int8"}
    for name in fp32_rows:
        r = rows[name]
        assert r["gate"] == "parity" and r["passed"] is True and r["images"] == 12
        assert sorted(r["by_batch_size"]) == ["1", "5"]
        # float32 re-orderings only: far inside the 1e-4 tolerance
        assert 0 <= r["max_abs_prob_diff"] < 1e-5 and r["max_abs_logit_diff"] < 1e-3
        assert r["mean_abs_prob_diff"] <= r["max_abs_prob_diff"]
        assert r["top1_agreement"] == 1.0 and r["top3_agreement"] == 1.0 and r["top1_mismatches"] == 0
    assert rows["onnx"]["provider"] == "CPUExecutionProvider"

    # accuracy rows: recompute the fp32 accuracy from the eager model on the same 12 test images
    x, labels = _test_inputs(split)
    eager_acc = float((_eager(ckpt, x).argmax(1) == labels).mean() * 100)
    for name in ("onnx-fp16", "onnx-int8"):
        r = rows[name]
        assert r["gate"] == "accuracy" and r["images"] == 12 and r["passed"] is True
        assert r["fp32_top1_accuracy"] == pytest.approx(eager_acc)
        assert r["accuracy_drop_points"] == pytest.approx(r["fp32_top1_accuracy"] - r["top1_accuracy"])
        assert r["max_accuracy_drop_points"] == 100.0
        assert 0.0 <= r["top1_agreement_with_fp32"] <= 1.0
    # fp16 weights: small but non-zero differences; int8: larger
    assert 0 < rows["onnx-fp16"]["max_abs_logit_diff"] < rows["onnx-int8"]["max_abs_logit_diff"]


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_dynamic_batch(exported, batch):
    """TorchScript and every ONNX file answer at batch sizes they were not exported with."""
    import onnxruntime as ort

    from edgeclf.export.torchscript import load_torchscript

    art, ckpt, split, _ = exported
    x, _ = _test_inputs(split)
    x = x[np.arange(batch) % len(x)]
    expected = _eager(ckpt, x)
    module, _ = load_torchscript(art / FORMAT_FILES["torchscript"])
    import torch

    with torch.inference_mode():
        got = module(torch.from_numpy(x)).numpy()
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    for key, atol in (("onnx", 1e-4), ("onnx-fp16", 0.05), ("onnx-int8", None)):
        sess = ort.InferenceSession(str(art / FORMAT_FILES[key]), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape == ["N", 3, 64, 64] and sess.get_outputs()[0].shape[0] == "N"
        out = sess.run(None, {"input": x})[0]
        assert out.shape == (batch, 3) and out.dtype == np.float32
        if atol is not None:
            np.testing.assert_allclose(out, expected, atol=atol, rtol=0)


READ_BACK = textwrap.dedent("""
    import json, sys
    import numpy as np, onnx, onnxruntime as ort, torch
    art = sys.argv[1]
    out = {}
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx"):
        proto = onnx.load(f"{art}/{name}")
        sess = ort.InferenceSession(f"{art}/{name}", providers=["CPUExecutionProvider"])
        x = np.zeros((3, 3, 64, 64), np.float32)
        out[name] = {"props": {p.key: p.value for p in proto.metadata_props},
                     "ort": dict(sess.get_modelmeta().custom_metadata_map),
                     "shape": list(sess.run(None, {"input": x})[0].shape)}
    extra = {"edgeclf.json": ""}
    m = torch.jit.load(f"{art}/model.torchscript.pt", _extra_files=extra)
    out["ts"] = {"meta": json.loads(extra["edgeclf.json"]), "shape": list(m(torch.zeros(3, 3, 64, 64)).shape)}
    banned = sorted(k for k in sys.modules if k.split(".")[0] in ("edgeclf", "runtime", "train", "export", "timm"))
    out["banned"] = banned
    print(json.dumps(out))
""")


def test_metadata_read_back_without_edgeclf(exported, tmp_path):
    """A plain onnx/onnxruntime/torch program, with no edgeclf on its path, reads the metadata."""
    art, ckpt, _, _ = exported
    r = subprocess.run([sys.executable, "-c", READ_BACK, str(art)], capture_output=True, text=True,
                       cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["banned"] == []
    expected = ModelInfo(class_names=tuple(CLASSES), preprocess=SMALL, arch="efficientnet_lite0",
                         source_checkpoint_sha256=file_sha256(ckpt)).to_metadata()
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx"):
        assert got[name]["props"] == expected and got[name]["ort"] == expected
        assert got[name]["shape"] == [3, 3]
    assert got["ts"]["meta"] == expected and got["ts"]["shape"] == [3, 3]
    # and the runtime's parser accepts it
    info = ModelInfo.from_metadata(got["model.onnx"]["props"], "model.onnx")
    assert info.class_names == tuple(CLASSES) and info.preprocess == SMALL


@pytest.mark.slow
def test_broken_export_is_caught_and_leaves_nothing(tmp_path, monkeypatch):
    """A model exported with its head Dropout left in train mode: every format fails the gate."""
    import copy

    from edgeclf.export import onnx as export_onnx_module
    from edgeclf.export import torchscript as export_ts_module
    from edgeclf.export import GateError, export_checkpoint

    split = make_split(tmp_path / "split.json")
    ckpt = make_checkpoint(tmp_path / "best.pt", split)

    def in_train_mode(fn):
        def wrapper(model, *args, **kwargs):
            broken = copy.deepcopy(model)
            broken.head[2].train()  # nn.Dropout(0.4) active, the rest in eval mode
            return fn(broken, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(export_ts_module, "export_torchscript", in_train_mode(export_ts_module.export_torchscript))
    monkeypatch.setattr(export_onnx_module, "export_onnx", in_train_mode(export_onnx_module.export_onnx))
    out = tmp_path / "artifact"
    with pytest.raises(GateError) as info:
        export_checkpoint(ckpt, out)
    report = info.value.report
    assert report["passed"] is False
    failed = {name for name, row in report["formats"].items() if not row["passed"]}
    # onnxruntime's optimiser deletes the Dropout node, so the optimised ONNX session looks fine;
    # the unoptimised session runs the graph as written (as other runtimes would) and fails.
    assert failed == {"torchscript", "torchscript+optimize_for_inference", "onnx+ort_optimizations_disabled"}
    for name in failed:
        assert report["formats"][name]["max_abs_prob_diff"] > 1e-4
        assert name + ":" in str(info.value)
    assert "1e-04" in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "split.json"]  # no temp sibling


def test_export_refuses_split_with_other_classes(tmp_path):
    from edgeclf.export import export_checkpoint
    from edgeclf.runtime.errors import ManifestError

    split = make_split(tmp_path / "split.json")
    ckpt = make_checkpoint(tmp_path / "best.pt", split)
    other = make_split(tmp_path / "other.json", classes=["Leopards", "airplanes", "camera"])
    with pytest.raises(ManifestError, match="other.json"):
        export_checkpoint(ckpt, tmp_path / "artifact", split=other)
    assert not (tmp_path / "artifact").exists()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device for onnxruntime's CUDAExecutionProvider")
def test_fp16_on_cuda_provider_agrees_with_fp32(exported):
    """fp16 is meant for GPU providers: on CUDA it must run on CUDA (no silent CPU fallback) and agree."""
    import onnxruntime as ort

    art, ckpt, split, _ = exported
    x, _ = _test_inputs(split)
    sess = ort.InferenceSession(str(art / FORMAT_FILES["onnx-fp16"]),
                                providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    got = sess.run(None, {"input": x})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.argmax(1), _eager(ckpt, x).argmax(1))
