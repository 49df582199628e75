"""Declared file formats: split.json, artifact.json, parity.json, bench.json and the checkpoint dict
each have one typed definition and a validating loader; the shipped JSON Schemas are what the code
generates and accept real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import SAMPLE_DATA
from edgeclf.runtime.errors import ArtifactError, EdgeclfError, FormatError, ManifestError
from train_support import write_split

# -- helpers ---------------------------------------------------------------------------------------


def mutate(d: dict, dotted: str, value=..., delete: bool = False) -> dict:
    """A deep copy of ``d`` with ``dotted`` (e.g. "preprocess.crop_size") set or deleted."""
    d = json.loads(json.dumps(d))
    *parents, last = dotted.split(".")
    node = d
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return d


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def validate(instance, schema: dict, root: dict | None = None, where: str = "$") -> None:
    """A small JSON Schema (2020-12) check of the keywords our generator emits."""
    root = root or schema
    if "$ref" in schema:
        return validate(instance, root["$defs"][schema["$ref"].split("/")[-1]], root, where)
    if "const" in schema:
        assert instance == schema["const"], where
    if "enum" in schema:
        assert instance in schema["enum"], where
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                return validate(instance, option, root, where)
            except AssertionError as err:
                errors.append(err)
        raise AssertionError(f"{where}: no anyOf branch matches ({errors})")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None),
                 "array": list, "object": dict}
        ok = any(isinstance(instance, kinds[n]) and not (n in ("integer", "number") and isinstance(instance, bool))
                 for n in names)
        assert ok, f"{where}: {instance!r} is not {names}"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            assert key in instance, f"{where}: missing {key}"
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                validate(value, props[key], root, f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(value, schema["additionalProperties"], root, f"{where}.{key}")
            else:
                assert schema.get("additionalProperties", True) is not False, f"{where}: unexpected {key}"
    if isinstance(instance, list):
        for i, item in enumerate(instance):
            prefix = schema.get("prefixItems")
            sub = prefix[i] if prefix and i < len(prefix) else schema.get("items")
            if sub is not None:
                validate(item, sub, root, f"{where}[{i}]")
        if "minItems" in schema:
            assert schema["minItems"] <= len(instance) <= schema["maxItems"], where


# -- split.json ------------------------------------------------------------------------------------

@pytest.fixture
def split_json(tmp_path):
    return json.loads(write_split(SAMPLE_DATA, tmp_path / "split.json", limit=4).read_text())


@pytest.mark.parametrize("change, field_name, message", [
    (lambda d: mutate(d, "classes", delete=True), "classes", "field 'classes': missing"),
    (lambda d: mutate(d, "seed", "0"), "seed", "field 'seed': expected integer, got string '0'"),
    (lambda d: mutate(d, "splits.train.0.label", 1.5), "splits.train[0].label", "expected integer, got number 1.5"),
    (lambda d: mutate(d, "splits.val", delete=True), "splits.val", "field 'splits.val': missing"),
    (lambda d: mutate(d, "schema_version", 2), "schema_version", "schema_version 2 is newer than this edgeclf reads (1)"),
    (lambda d: mutate(d, "schema_version", 0), "schema_version", "is older than this edgeclf reads (1); re-run `edgeclf split`"),
    (lambda d: mutate(d, "schema", "edgeclf.other"), "schema", "not an edgeclf.split file"),
])
def test_split_json_errors_name_the_file_and_the_field(tmp_path, split_json, change, field_name, message):
    from edgeclf.runtime.manifest import load_manifest

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(change(split_json)))
    with pytest.raises(ManifestError) as err:
        load_manifest(bad)
    assert message in one_line(err.value) and str(bad) in str(err.value)
    assert err.value.field == field_name and err.value.source == str(bad)


def test_split_json_truncated_and_valid(tmp_path, split_json):
    from edgeclf.runtime.manifest import SplitManifest, load_manifest

    good = tmp_path / "good.json"
    good.write_text(json.dumps(split_json))
    m = load_manifest(good)
    assert isinstance(m, SplitManifest) and m.classes == split_json["classes"] and len(m.sha256) == 64
    with pytest.raises(Exception, match="frozen|cannot assign"):
        m.seed = 1
    bad = tmp_path / "cut.json"
    bad.write_text(good.read_text()[:200])
    with pytest.raises(ManifestError, match=r"cut\.json: truncated JSON, not a valid split manifest"):
        load_manifest(bad)


# -- artifact.json ---------------------------------------------------------------------------------

@pytest.fixture
def artifact_copy(tiny_artifact, tmp_path):
    out = tmp_path / "art"
    shutil.copytree(tiny_artifact.dir, out)
    return out


def write_artifact(d: Path, doc) -> Path:
    (d / "artifact.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return d


@pytest.mark.parametrize("change, field_name, message", [
    (lambda d: mutate(d, "preprocess", delete=True), "preprocess", "field 'preprocess': missing"),
    (lambda d: mutate(d, "preprocess.crop_size", "224"), "preprocess.crop_size",
     "field 'preprocess.crop_size': expected integer, got string '224'"),
    (lambda d: mutate(d, "class_names", "Leopards"), "class_names", "expected array, got string 'Leopards'"),
    (lambda d: mutate(d, "formats.onnx.size_bytes", None), "formats.onnx.size_bytes", "expected integer, got null"),
    (lambda d: mutate(d, "num_classes", 3), None, "num_classes 3 but 9 class_names"),
    (lambda d: mutate(d, "schema_version", 2), "schema_version", "schema_version 2 is newer than this edgeclf reads (1); upgrade edgeclf"),
])
def test_artifact_json_errors_name_the_file_and_the_field(artifact_copy, change, field_name, message):
    from edgeclf.runtime.artifact import load_artifact_json

    doc = json.loads((artifact_copy / "artifact.json").read_text())
    write_artifact(artifact_copy, change(doc))
    with pytest.raises(ArtifactError) as err:
        load_artifact_json(artifact_copy)
    assert message in one_line(err.value) and str(artifact_copy / "artifact.json") in str(err.value)
    assert err.value.field == field_name


@pytest.mark.parametrize("text, message", [
    ("", "truncated JSON"), ('{"schema": "edgeclf.artifact", "schema_ver', "truncated JSON"),
    ("{'schema': 1}", "malformed JSON"), ("[1, 2]", "a JSON object expected, got array"),
])
def test_artifact_json_unparseable(artifact_copy, text, message):
    from edgeclf.runtime.artifact import load_artifact_json

    write_artifact(artifact_copy, text)
    with pytest.raises(ArtifactError, match=message):
        load_artifact_json(artifact_copy)


def test_artifact_json_loads_typed(tiny_artifact):
    from edgeclf.runtime.artifact import ArtifactDescription, load_artifact_json

    art = load_artifact_json(tiny_artifact.dir)
    assert isinstance(art, ArtifactDescription)
    assert art.preprocess == tiny_artifact.info.preprocess and art.class_names == tiny_artifact.info.class_names
    assert art.formats["onnx"].file == "model.onnx" and art.formats["onnx"].precision == "fp32"
    assert art.to_dict()["preprocess"]["mean"] == list(art.preprocess.mean)


def test_bench_on_an_artifact_json_without_preprocess_is_a_one_line_error(artifact_copy, run_cli):
    from edgeclf.bench.runner import run_bench

    doc = json.loads((artifact_copy / "artifact.json").read_text())
    write_artifact(artifact_copy, mutate(doc, "preprocess", delete=True))
    with pytest.raises(ArtifactError, match=r"artifact\.json: field 'preprocess': missing"):
        run_bench(artifact_copy, backends=["onnx-cpu"], end_to_end=False)
    r = run_cli("bench", artifact_copy, "--backends", "onnx-cpu", timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "KeyError" not in r.stderr
    assert r.stderr.strip() == (f"edgeclf bench: error: {artifact_copy / 'artifact.json'}: field 'preprocess': missing")


# -- parity.json -----------------------------------------------------------------------------------

def parity_report() -> dict:
    from edgeclf.export import parity

    rng = np.random.default_rng(0)
    ref = {b: rng.standard_normal((4, 3)).astype(np.float32) for b in (1, 5)}
    ref[5] = ref[1]
    labels = np.array([0, 1, 2, 0])
    rows = {"onnx": {**parity.parity_entry(ref, {1: ref[1] + 1e-7, 5: ref[5]}), "provider": "CPUExecutionProvider"},
            "onnx-int8": {**parity.accuracy_entry(ref[1], ref[1] * 0.9, labels, "int8", 1.0, 16),
                          "provider": "CPUExecutionProvider"}}
    return {
        "schema": parity.PARITY_SCHEMA, "schema_version": 1, "passed": True, "failures": parity.failures(rows),
        "images": {"split": "/x/split.json", "split_sha256": "0" * 64, "split_matches_checkpoint": True,
                   "subset": "test", "count": 4, "test_subset_size": 4, "paths": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
                   "accuracy_gate_count": 4},
        "tolerances": {"max_abs_prob_diff": 1e-4, "top1": "identical", "max_accuracy_drop_points": 1.0},
        "export_batch_size": 2, "batch_sizes": [1, 5], "reference": "eager PyTorch model (eval mode, CPU, float32)",
        "provider": "CPUExecutionProvider", "formats": rows,
    }


def test_parity_json_round_trip_and_errors(tmp_path):
    from edgeclf.export.parity import ParityReport, load_parity_json, write_parity_json

    report = parity_report()
    write_parity_json(tmp_path / "parity.json", report)
    loaded = load_parity_json(tmp_path)  # the artifact directory works too
    assert isinstance(loaded, ParityReport) and loaded.formats["onnx-int8"].gate == "accuracy"
    assert loaded.formats["onnx"].max_abs_prob_diff == report["formats"]["onnx"]["max_abs_prob_diff"]
    cases = [
        (mutate(report, "tolerances", delete=True), "field 'tolerances': missing"),
        (mutate(report, "formats.onnx.top1_mismatches", "0"), "field 'formats.onnx.top1_mismatches': expected integer"),
        (mutate(report, "formats.onnx.gate", "speed"), "field 'formats.onnx.gate': expected 'parity' or 'accuracy'"),
        (mutate(report, "schema_version", 2), "parity schema_version 2 is newer than this edgeclf reads (1)"),
    ]
    for doc, message in cases:
        (tmp_path / "parity.json").write_text(json.dumps(doc))
        with pytest.raises(ArtifactError) as err:
            load_parity_json(tmp_path / "parity.json")
        assert message in one_line(err.value) and "parity.json" in str(err.value)
    with pytest.raises(ArtifactError, match=r"being written\): field 'formats\.onnx\.extra': unknown|unknown keys \['extra'\]"):
        write_parity_json(tmp_path / "p2.json", mutate(report, "formats.onnx.extra", 1))
    assert not (tmp_path / "p2.json").exists()


# -- bench.json ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench_doc(tiny_artifact):
    from edgeclf.bench.runner import run_bench

    return run_bench(tiny_artifact.dir, backends=["onnx-cpu", "onnx-cuda"], batch_sizes=(1,), warmup=0, iters=3,
                     threads=1, end_to_end=False)


def test_bench_json_round_trip_and_schema(bench_doc, tmp_path):
    from edgeclf.bench.document import BenchDocument, bench_json_schema, load_bench_json
    from edgeclf.bench.report import load_bench_json as load_plain, write_json

    write_json(bench_doc, tmp_path / "bench.json")
    doc = load_bench_json(tmp_path / "bench.json")
    assert isinstance(doc, BenchDocument) and doc.backends["onnx-cpu"].status == "ok"
    assert doc.rows[0].backend == "onnx-cpu" and doc.rows[0].iters == 3 and doc.rows[0].latency_ms_p50 > 0
    assert doc.backends["onnx-cuda"].status in ("ok", "skipped")
    validate(json.loads((tmp_path / "bench.json").read_text()), bench_json_schema())
    assert load_plain(tmp_path / "bench.json")["rows"][0]["batch_size"] == 1


@pytest.mark.parametrize("change, message", [
    (lambda d: mutate(d, "settings", delete=True), "field 'settings': missing"),
    (lambda d: mutate(d, "rows.0.latency_ms_p50", "fast"), "field 'rows[0].latency_ms_p50': expected number, got string 'fast'"),
    (lambda d: mutate(d, "backends.onnx-cpu.status", "great"), "field 'backends.onnx-cpu.status': expected 'ok' or 'skipped' or 'failed'"),
    (lambda d: mutate(d, "schema_version", 2), "schema_version 2 is newer than this edgeclf reads (1)"),
])
def test_bench_json_errors_name_the_file_and_the_field(bench_doc, tmp_path, change, message):
    from edgeclf.bench.document import load_bench_json

    bad = tmp_path / "bench.json"
    bad.write_text(json.dumps(change(bench_doc)))
    with pytest.raises(FormatError) as err:
        load_bench_json(bad)
    assert message in one_line(err.value) and str(bad) in str(err.value)


def test_bench_compare_on_a_bad_file_is_a_one_line_error(bench_doc, tmp_path, run_cli):
    from edgeclf.bench.report import write_json

    write_json(bench_doc, tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps(mutate(bench_doc, "rows", delete=True)))
    r = run_cli("bench", "compare", tmp_path / "a.json", tmp_path / "b.json", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"edgeclf bench compare: error: {tmp_path / 'b.json'}: field 'rows': missing"


# -- checkpoint ------------------------------------------------------------------------------------

def test_checkpoint_dict_errors_name_the_file_and_the_field(tmp_path):
    import torch

    from edgeclf.runtime.preprocess import PreprocessConfig
    from edgeclf.train.checkpoint import CheckpointInfo, checkpoint_info, load_checkpoint, save_checkpoint
    from edgeclf.train.errors import CheckpointError

    good = {"arch": "resnet50", "num_classes": 2, "class_names": ["a", "b"],
            "preprocess": PreprocessConfig().to_dict(), "model_state": {"w": torch.zeros(2)},
            "split_sha256": "0" * 64, "epoch": 3, "val_acc": 0.5}
    path = save_checkpoint(good, tmp_path / "best.pt")
    assert load_checkpoint(path)["epoch"] == 3
    info = checkpoint_info(load_checkpoint(path), str(path))
    assert isinstance(info, CheckpointInfo) and info.class_names == ("a", "b") and info.preprocess == PreprocessConfig()
    cases = [
        ({k: v for k, v in good.items() if k != "split_sha256"}, "split_sha256", "field 'split_sha256': missing"),
        ({**good, "num_classes": "2"}, "num_classes", "field 'num_classes': expected integer, got string '2'"),
        ({**good, "preprocess": {**good["preprocess"], "mean": [0.5, 0.5]}}, "preprocess.mean",
         "field 'preprocess.mean': expected an array of 3 items, got 2"),
        ({**good, "schema_version": 2}, "schema_version", "schema_version 2 is newer than this edgeclf reads (1)"),
    ]
    for state, field_name, message in cases:
        bad = tmp_path / "bad.pt"
        torch.save({"format": "edgeclf.checkpoint", "schema_version": 1, **state}, bad)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(bad)
        assert message in one_line(err.value) and str(bad) in str(err.value) and err.value.field == field_name
        assert isinstance(err.value, FormatError) and isinstance(err.value, EdgeclfError)


# -- shipped JSON Schemas --------------------------------------------------------------------------

def test_shipped_schemas_equal_what_the_code_generates():
    from edgeclf.bench.document import schema_files

    files = schema_files()
    assert {p.name for p in files} == {"artifact.schema.json", "bench.schema.json"}
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path} is stale; regenerate with `python -m edgeclf.bench.document`"


def test_artifact_schema_accepts_a_real_artifact_json_and_rejects_a_bad_one(tiny_artifact):
    from edgeclf.runtime.artifact import ARTIFACT_SCHEMA_FILE

    schema = json.loads(ARTIFACT_SCHEMA_FILE.read_text())
    doc = json.loads((tiny_artifact.dir / "artifact.json").read_text())
    validate(doc, schema)
    assert "preprocess" in schema["required"] and schema["properties"]["schema"] == {"const": "edgeclf.artifact"}
    with pytest.raises(AssertionError, match="missing preprocess"):
        validate(mutate(doc, "preprocess", delete=True), schema)
    with pytest.raises(AssertionError, match="crop_size"):
        validate(mutate(doc, "preprocess.crop_size", "224"), schema)
