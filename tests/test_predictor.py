"""runtime.Predictor: same answers as the eager torch model, every input kind, batches, threads,
execution providers, and every kind of unusable artifact."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from _bad_inputs import png_bytes, serve
from _tiny_artifact import CLASS_NAMES, build_tiny_artifact, export_onnx_bytes, build_model, tiny_artifact, write_onnx  # noqa: F401
from conftest import REPO_ROOT, SAMPLE_DATA, cli_env
from edgeclf.runtime import Prediction, Predictor
from edgeclf.runtime.artifact import ModelInfo
from edgeclf.runtime.errors import ArtifactError, ImageNotFoundError, InvalidImageError, ProviderError, UsageError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.inference import softmax
from edgeclf.runtime.preprocess import PreprocessConfig, preprocess
from edgeclf.runtime.providers import cuda_device_count
from test_runtime_import import BLOCKER

SAMPLE = sorted(SAMPLE_DATA.glob("*/*.jpg"))
HAS_CUDA = cuda_device_count() > 0


@pytest.fixture(scope="module")
def predictor(tiny_artifact):
    return Predictor(tiny_artifact.dir, device="cpu")


def as_tuples(preds):
    return [(p.label, p.index, p.probability) for p in preds]


# -- answers ---------------------------------------------------------------------------------------

def test_top3_matches_the_eager_torch_model_on_every_sample_image(predictor, tiny_artifact):
    assert len(SAMPLE) == 216
    batch = np.stack([preprocess(load_image(p), predictor.preprocess_config) for p in SAMPLE])
    expected = tiny_artifact.torch_probs(batch)  # (216, 9) float64
    worst = 0.0
    for path, probs in zip(SAMPLE, expected):
        got = predictor.predict(path, top_k=3)
        order = np.argsort(-probs, kind="stable")
        assert np.diff(-probs[order[:4]]).min() > 1e-4  # ranks 1-4 well apart: the order is not float noise
        assert [p.index for p in got] == list(order[:3]), path
        assert [p.label for p in got] == [CLASS_NAMES[i] for i in order[:3]]
        worst = max(worst, max(abs(p.probability - probs[p.index]) for p in got))
    assert worst < 1e-5
    # the model really discriminates: the top-1 label varies across images
    assert len({predictor.predict(p, top_k=1)[0].label for p in SAMPLE}) >= 3


def test_prediction_shape_and_order(predictor):
    preds = predictor.predict(SAMPLE[0], top_k=9)
    assert all(isinstance(p, Prediction) for p in preds) and len(preds) == 9
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1.0) < 1e-12
    assert sorted(p.index for p in preds) == list(range(9))
    assert all(isinstance(p.probability, float) and isinstance(p.index, int) for p in preds)
    assert predictor.predict(SAMPLE[0], top_k=50) == preds  # capped at the number of classes
    assert preds[0].to_dict() == {"label": preds[0].label, "index": preds[0].index, "probability": probs[0]}
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match="top_k"):
            predictor.predict(SAMPLE[0], top_k=bad)


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    path = SAMPLE[5]
    expected = as_tuples(predictor.predict(path))
    data = path.read_bytes()
    rgb = np.asarray(load_image(path))
    with open(path, "rb") as fp:
        from_fp = predictor.predict(fp)
    with serve({"/photo.jpg": (200, "image/jpeg", data, None)}) as base:
        from_url = predictor.predict(base + "/photo.jpg")
    for got in (predictor.predict(str(path)), predictor.predict(data), from_fp, predictor.predict(io.BytesIO(data)),
                predictor.predict(Image.open(path)), predictor.predict(rgb), from_url):
        assert as_tuples(got) == expected


def test_bare_onnx_file_and_repr(tiny_artifact, predictor):
    bare = Predictor(tiny_artifact.onnx_path, device="cpu")
    assert bare.class_names == CLASS_NAMES and bare.info.arch == "tiny-test"
    assert as_tuples(bare.predict(SAMPLE[1])) == as_tuples(predictor.predict(SAMPLE[1]))
    assert "tiny-test" in repr(bare) and "CPUExecutionProvider" in repr(bare)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], np.float32))
    assert p.dtype == np.float64 and np.isfinite(p).all()
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-15)


# -- batches ---------------------------------------------------------------------------------------

def test_predict_batch_equals_predict(predictor):
    paths = SAMPLE[:23]
    single = [as_tuples(predictor.predict(p)) for p in paths]
    for batch_size in (1, 7, 32):
        batched = predictor.predict_batch(paths, batch_size=batch_size)
        assert [[(l, i) for l, i, _ in s] for s in single] == [[(p.label, p.index) for p in b] for b in batched]
        diff = max(abs(a[2] - b.probability) for s, bb in zip(single, batched) for a, b in zip(s, bb))
        assert diff < 1e-6
    assert predictor.predict_batch(iter(paths[:3]), top_k=1, batch_size=2) == \
        [predictor.predict_batch([p], top_k=1)[0] for p in paths[:3]]  # any iterable
    assert predictor.predict_batch([]) == []


def test_one_bad_image_in_a_batch(predictor, tmp_path):
    missing = tmp_path / "gone.jpg"
    inputs = [SAMPLE[0], b"", SAMPLE[1], missing, np.zeros((5, 5), np.float32), SAMPLE[2]]
    with pytest.raises(InvalidImageError, match=r"images\[1\] \(<0 bytes>\): empty"):
        predictor.predict_batch(inputs)
    with pytest.raises(ImageNotFoundError, match=r"images\[3\] \(.*gone\.jpg\): no such file"):
        predictor.predict_batch([SAMPLE[0], SAMPLE[1], SAMPLE[2], missing], batch_size=2)
    out = predictor.predict_batch(inputs, batch_size=4, on_error="return")
    assert [type(r).__name__ if isinstance(r, Exception) else "ok" for r in out] == \
        ["ok", "InvalidImageError", "ok", "ImageNotFoundError", "InvalidImageError", "ok"]
    for i, src in ((0, SAMPLE[0]), (2, SAMPLE[1]), (5, SAMPLE[2])):
        assert [p.label for p in out[i]] == [p.label for p in predictor.predict(src)]
    assert all(isinstance(r, InvalidImageError) for r in (out[1], out[3], out[4]))
    with pytest.raises(UsageError, match="on_error"):
        predictor.predict_batch(inputs, on_error="skip")
    with pytest.raises(UsageError, match="batch_size"):
        predictor.predict_batch(inputs, batch_size=0)


def test_static_batch_model(tmp_path, predictor):
    static = build_tiny_artifact(tmp_path / "static", fixed_batch=1)
    p = Predictor(static.dir, device="cpu")
    out = p.predict_batch(SAMPLE[:5], batch_size=4)
    assert [[x.label for x in r] for r in out] == [[x.label for x in predictor.predict(s)] for s in SAMPLE[:5]]


# -- threads ---------------------------------------------------------------------------------------

def test_concurrent_predict_matches_sequential(predictor):
    paths = SAMPLE[::4] * 2  # 108 calls
    sequential = [as_tuples(predictor.predict(p)) for p in paths]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(lambda p: as_tuples(predictor.predict(p)), paths))
        batches = list(pool.map(lambda i: predictor.predict_batch(paths[i:i + 9]), range(0, len(paths), 9)))
    for s, c in zip(sequential, concurrent):
        assert [x[:2] for x in s] == [x[:2] for x in c]
        assert max(abs(a[2] - b[2]) for a, b in zip(s, c)) < 1e-6
    flat = [as_tuples(r) for b in batches for r in b]
    assert [[x[:2] for x in r] for r in flat] == [[x[:2] for x in s] for s in sequential]


# -- providers -------------------------------------------------------------------------------------

def test_cpu_and_auto_report_the_active_providers(tiny_artifact):
    cpu = Predictor(tiny_artifact.dir, device="cpu", intra_op_threads=1)
    assert cpu.providers == ["CPUExecutionProvider"] and cpu.device == "cpu" and cpu.device_note is None
    auto = Predictor(tiny_artifact.dir)  # device="auto"
    assert auto.providers == auto.session.get_providers()
    if not HAS_CUDA:
        assert auto.providers == ["CPUExecutionProvider"] and auto.device == "cpu"
        assert auto.device_note  # why CUDA was not used
    explicit = Predictor(tiny_artifact.dir, providers=["CPUExecutionProvider"])
    assert explicit.providers == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA device; see test_cuda_is_really_used")
def test_cuda_without_a_device_raises(tiny_artifact):
    with pytest.raises(ProviderError, match="device='cuda'"):
        Predictor(tiny_artifact.dir, device="cuda")


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine where CUDA cannot activate")
def test_silent_cpu_fallback_is_detected(tiny_artifact, monkeypatch):
    """Pretend the driver reports a GPU: onnxruntime-gpu then tries CUDA, fails to load its
    libraries, and silently runs on the CPU. device='cuda' must refuse; 'auto' must say why."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime build without the CUDA provider")
    monkeypatch.setattr("edgeclf.runtime.providers.cuda_device_count", lambda: 1)
    with pytest.raises(ProviderError, match=r"requested CUDAExecutionProvider is not active, the session runs on CPUExecutionProvider"):
        Predictor(tiny_artifact.dir, device="cuda")
    auto = Predictor(tiny_artifact.dir, device="auto")
    assert auto.providers == ["CPUExecutionProvider"] and auto.device == "cpu"
    assert "did not activate" in auto.device_note
    with pytest.raises(ProviderError, match="not active"):
        Predictor(tiny_artifact.dir, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device reported by the NVIDIA driver")
def test_cuda_is_really_used(tiny_artifact, predictor):
    gpu = Predictor(tiny_artifact.dir, device="cuda")
    assert gpu.providers[0] == "CUDAExecutionProvider" and gpu.device == "cuda"
    for path in SAMPLE[::20]:
        a, b = predictor.predict(path), gpu.predict(path)
        assert [p.label for p in a] == [p.label for p in b]
        assert max(abs(x.probability - y.probability) for x, y in zip(a, b)) < 1e-4
    assert Predictor(tiny_artifact.dir).device == "cuda"  # auto picks it


def test_bad_device_and_provider_arguments(tiny_artifact):
    with pytest.raises(UsageError, match="device='tpu'"):
        Predictor(tiny_artifact.dir, device="tpu")
    with pytest.raises(UsageError, match="providers"):
        Predictor(tiny_artifact.dir, providers=[])
    with pytest.raises(ProviderError, match="FooExecutionProvider"):
        Predictor(tiny_artifact.dir, providers=["FooExecutionProvider"])
    with pytest.raises(UsageError, match="intra_op_threads"):
        Predictor(tiny_artifact.dir, intra_op_threads=0)


# -- unusable artifacts ----------------------------------------------------------------------------

def test_artifact_dir_missing_its_onnx_file(tmp_path, tiny_artifact):
    d = tmp_path / "art"
    d.mkdir()
    (d / "artifact.json").write_text((tiny_artifact.dir / "artifact.json").read_text())
    with pytest.raises(ArtifactError, match=r"art: missing model\.onnx; the directory holds \['artifact\.json'\]"):
        Predictor(d)
    with pytest.raises(ArtifactError, match=r"missing model\.int8\.onnx \(re-export with --int8\)"):
        Predictor(tiny_artifact.dir, precision="int8")
    with pytest.raises(UsageError, match="precision='fp8'"):
        Predictor(tiny_artifact.dir, precision="fp8")
    with pytest.raises(ArtifactError, match="no such artifact directory or .onnx file"):
        Predictor(tmp_path / "nowhere")


def test_onnx_without_edgeclf_metadata(tmp_path, tiny_artifact):
    path = write_onnx(tmp_path / "plain.onnx", tiny_artifact.onnx_path.read_bytes(), None)
    with pytest.raises(ArtifactError, match=r"plain\.onnx: ONNX file has no edgeclf metadata \(missing edgeclf_schema_version"):
        Predictor(path)
    meta = tiny_artifact.info.to_metadata() | {"class_names": "not json"}
    path = write_onnx(tmp_path / "malformed.onnx", tiny_artifact.onnx_path.read_bytes(), meta)
    with pytest.raises(ArtifactError, match=r"malformed\.onnx: malformed edgeclf metadata"):
        Predictor(path)


def test_metadata_that_does_not_fit_the_model(tmp_path, tiny_artifact):
    onnx_bytes = tiny_artifact.onnx_path.read_bytes()
    ten = ModelInfo(class_names=tuple(f"c{i}" for i in range(10)), preprocess=PreprocessConfig(),
                    arch="tiny-test", source_checkpoint_sha256="0" * 64)
    with pytest.raises(ArtifactError, match=r"metadata names 10 classes, so expected \[N, 10\]"):
        Predictor(write_onnx(tmp_path / "ten.onnx", onnx_bytes, ten.to_metadata()))
    static = export_onnx_bytes(build_model(9), 224, fixed_batch=1)
    small = ModelInfo(class_names=CLASS_NAMES, preprocess=PreprocessConfig(crop_size=160, resize_size=182),
                      arch="tiny-test", source_checkpoint_sha256="0" * 64)
    with pytest.raises(ArtifactError, match=r"input 'input' has shape \[1, 3, 224, 224\]; the metadata says \[N, 3, 160, 160\]"):
        Predictor(write_onnx(tmp_path / "crop.onnx", static, small.to_metadata()))


def test_files_that_are_not_onnx(tmp_path, tiny_artifact):
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not a protobuf")
    with pytest.raises(ArtifactError, match=r"model\.onnx: onnxruntime cannot load it"):
        Predictor(fake)
    with pytest.raises(ArtifactError, match=r"model\.onnx: onnxruntime cannot load it"):
        Predictor(tmp_path)  # the directory form
    pt = tmp_path / "model.torchscript.pt"
    pt.write_bytes(b"PK")
    with pytest.raises(ArtifactError, match=r"not an \.onnx file"):
        Predictor(pt)


# -- torch-free ------------------------------------------------------------------------------------

def test_prediction_in_a_process_that_cannot_import_torch(tiny_artifact, predictor, tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes(np.asarray(load_image(SAMPLE[9]))))
    code = BLOCKER + (
        "import json, sys\n"
        "from edgeclf.runtime import Predictor\n"
        f"p = Predictor({str(tiny_artifact.dir)!r}, device='auto')\n"
        f"preds = p.predict({str(image)!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY or m.startswith(HEAVY_OURS))\n"
        "print(json.dumps({'preds': [x.to_dict() for x in preds], 'heavy': heavy, 'providers': p.providers}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                       env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert [d["label"] for d in out["preds"]] == [p.label for p in predictor.predict(image)]
    assert max(abs(d["probability"] - p.probability) for d, p in zip(out["preds"], predictor.predict(image))) < 1e-6


def test_float16_model_input_is_cast(tmp_path):
    """An fp16 model whose input stays float16 (no keep_io_types) gets a float16 tensor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((3, 9)) * 5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input"], ["x32"], to=TensorProto.FLOAT),
         helper.make_node("GlobalAveragePool", ["x32"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "fp16_in", [helper.make_tensor_value_info("input", TensorProto.FLOAT16, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 9])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(class_names=CLASS_NAMES, preprocess=PreprocessConfig(), arch="fp16-test",
                     source_checkpoint_sha256="0" * 64)
    path = write_onnx(tmp_path / "model.fp16.onnx", model.SerializeToString(), info.to_metadata())
    p = Predictor(tmp_path, precision="fp16", device="cpu")
    assert p.model_path == path
    x = preprocess(load_image(SAMPLE[3]), p.preprocess_config)
    expected = softmax((x.astype(np.float16).astype(np.float64).mean(axis=(1, 2)) @ w.astype(np.float64))[None])[0]
    got = p.predict(SAMPLE[3], top_k=9)
    assert [q.index for q in got] == list(np.argsort(-expected, kind="stable"))
    assert max(abs(q.probability - expected[q.index]) for q in got) < 1e-4


def test_batch_keeps_going_past_an_empty_path_and_refuses_a_bare_string(predictor, tmp_path):
    """An empty path inside a batch is that input's error (on_error="return"), not the whole call's;
    a single str given as the batch is a usage error, not a batch of its characters."""
    from edgeclf.runtime.errors import UsageError

    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(np.asarray(load_image(SAMPLE[9]))))
    out = predictor.predict_batch(["", good, None], on_error="return", decode_threads=0)
    assert isinstance(out[0], UsageError) and "empty path" in str(out[0])
    assert [p.label for p in out[1]] == [p.label for p in predictor.predict(good)]
    assert isinstance(out[2], InvalidImageError)
    with pytest.raises(UsageError, match=r"^images\[0\]: empty path"):
        predictor.predict_batch(["", good])
    with pytest.raises(UsageError, match="give a list"):
        predictor.predict_batch(str(good))


def test_hand_edited_metadata_and_empty_artifacts_are_refused(tmp_path):
    """NaN normalisation or class names that are not a list of strings are refused when the model
    loads, not discovered as NaN probabilities or one-letter labels; an empty artifact path is a
    usage error, not the current folder."""
    import onnx

    from _tiny_artifact import build_tiny_artifact

    art = build_tiny_artifact(tmp_path / "art")
    for key, value, message in (("std", "[NaN, 1, 1]", "3 finite values"),
                                ("class_names", '"abcdefghi"', "list of non-empty strings")):
        proto = onnx.load(str(art.onnx_path))
        for p in proto.metadata_props:
            if p.key == key:
                p.value = value
        bad = tmp_path / f"bad-{key}.onnx"
        onnx.save(proto, str(bad))
        with pytest.raises(ArtifactError, match=message):
            Predictor(bad, device="cpu")
    for empty in ("", None):
        with pytest.raises(UsageError, match="give an artifact directory"):
            Predictor(empty)
