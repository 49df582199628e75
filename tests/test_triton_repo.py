"""`edgeclf triton`: the model repository parses as Triton's ModelConfig and runs as declared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import NINE_CLASSES, SAMPLE_DATA

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="needs the client extra (Triton's ModelConfig protobuf)")


def test_repository_config_parses_and_model_runs_with_the_declared_names_and_shapes(tiny_artifact, tmp_path, run_cli):  # noqa: F811
    import onnxruntime as ort
    from google.protobuf import text_format

    from edgeclf.runtime import Predictor, load_image, preprocess_batch

    r = run_cli("triton", tiny_artifact.dir, "--out", tmp_path / "repo", "--max-batch-size", "16",
                "--instance-kind", "gpu", "--instance-count", "2", timeout=120)
    assert r.returncode == 0, r.stderr
    model_dir = tmp_path / "repo" / "edgeclf"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == \
        ["1", "1/model.onnx", "config.pbtxt", "labels.txt"]
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "edgeclf" and config.backend == "onnxruntime" and config.max_batch_size == 16
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 5000
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and group.count == 2
    [inp], [out] = config.input, config.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("input", model_config_pb2.TYPE_FP32, [3, 224, 224])
    assert (out.name, out.data_type, list(out.dims)) == ("logits", model_config_pb2.TYPE_FP32, [9])
    assert out.label_filename == "labels.txt"
    assert (model_dir / "labels.txt").read_text().splitlines() == NINE_CLASSES
    assert json.loads(config.parameters["edgeclf_class_names"].string_value) == NINE_CLASSES
    assert json.loads(config.parameters["edgeclf_preprocess"].string_value)["crop_size"] == 224

    # Run the repository's ONNX exactly as Triton would: batch of 5 + the declared dims and names.
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    images = [load_image(p) for p in sorted(SAMPLE_DATA.glob("*/image_0001.jpg"))[:5]]
    local = Predictor(tiny_artifact.dir, device="cpu")
    x = preprocess_batch(images, local.preprocess_config)
    assert list(x.shape) == [5] + list(inp.dims)
    [logits] = session.run([out.name], {inp.name: x})
    assert list(logits.shape) == [5] + list(out.dims)
    np.testing.assert_allclose(logits, local.logits(x), atol=1e-6, rtol=0)

    r = run_cli("triton", tiny_artifact.dir, "--out", tmp_path / "repo", timeout=120)
    assert r.returncode == 2 and "--force" in r.stderr
    r = run_cli("triton", tiny_artifact.dir, "--out", tmp_path / "repo", "--force", timeout=120)
    assert r.returncode == 0, r.stderr


def test_cpu_instances_by_default_and_bad_arguments(tiny_artifact, tmp_path):  # noqa: F811
    from google.protobuf import text_format

    from edgeclf.export.triton import write_triton_repository
    from edgeclf.runtime.errors import ArtifactError, UsageError

    target = write_triton_repository(tiny_artifact.dir, tmp_path, name="tiny")
    config = text_format.Parse((target / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "tiny" and config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    with pytest.raises(UsageError, match="max_batch_size"):
        write_triton_repository(tiny_artifact.dir, tmp_path, name="x", max_batch_size=0)
    with pytest.raises(UsageError, match="instance_kind"):
        write_triton_repository(tiny_artifact.dir, tmp_path, name="x", instance_kind="tpu")
    with pytest.raises(ArtifactError):
        write_triton_repository(tmp_path / "missing", tmp_path, name="x")
    assert not (tmp_path / "x").exists()
