"""`edgeclf serve`: a real server subprocess queried with tritonclient (HTTP, gRPC) and requests."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from _serve_server import tiny_server  # noqa: F401
from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import NINE_CLASSES, SAMPLE_DATA

import tritonclient.grpc as grpcclient  # noqa: E402  (after the importorskip in _serve_server)
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

#: One real Caltech test image per class.
NINE_IMAGES = [SAMPLE_DATA / c / "image_0001.jpg" for c in NINE_CLASSES]


@pytest.fixture(scope="module")
def local(tiny_artifact):  # noqa: F811
    from edgeclf.runtime import Predictor

    return Predictor(tiny_artifact.dir, device="cpu", intra_op_threads=1)


def assert_same(got_labels, got_probs, expected):
    """Server answer (labels, probabilities of one image) == the in-process Predictor's."""
    assert [g.decode() if isinstance(g, bytes) else g for g in got_labels] == [p.label for p in expected]
    np.testing.assert_allclose(np.asarray(got_probs, dtype=np.float64), [p.probability for p in expected],
                               rtol=0, atol=1e-6)


def v2_json(images, top_k=None, name="image"):
    body = {"inputs": [{"name": name, "datatype": "BYTES", "shape": [len(images)],
                        "data": [base64.b64encode(b).decode() for b in images]}]}
    if top_k is not None:
        body["parameters"] = {"top_k": top_k}
    return body


def test_nine_real_images_with_tritonclient_http_equal_the_local_predictor(tiny_server, local):  # noqa: F811
    blobs = [p.read_bytes() for p in NINE_IMAGES]
    expected = local.predict_batch(NINE_IMAGES, top_k=3)
    client = httpclient.InferenceServerClient(tiny_server.http_address)
    for binary, payload in ((False, "base64"), (True, "base64"), (True, "raw")):
        elements = [base64.b64encode(b) if payload == "base64" else b for b in blobs]
        inp = httpclient.InferInput("image", [9], "BYTES")
        inp.set_data_from_numpy(np.array(elements, dtype=np.object_), binary_data=binary)
        result = client.infer("edgeclf", [inp], parameters={"top_k": 3})
        labels, probs, index = (result.as_numpy(n) for n in ("label", "probability", "index"))
        assert labels.shape == probs.shape == index.shape == (9, 3)
        assert probs.dtype == np.float32 and index.dtype == np.int64
        for i in range(9):
            assert_same(labels[i], probs[i], expected[i])
            assert list(index[i]) == [p.index for p in expected[i]]


def test_nine_real_images_with_plain_requests_v2_and_v1(tiny_server, local):  # noqa: F811
    blobs = [p.read_bytes() for p in NINE_IMAGES]
    expected = local.predict_batch(NINE_IMAGES, top_k=3)
    r = requests.post(f"{tiny_server.url}/v2/models/edgeclf/infer", json=v2_json(blobs), timeout=60)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["label"]["shape"] == [9, 3] and out["probability"]["datatype"] == "FP32"
    labels = np.array(out["label"]["data"]).reshape(9, 3)
    probs = np.array(out["probability"]["data"]).reshape(9, 3)
    for i in range(9):
        assert_same(labels[i], probs[i], expected[i])

    r = requests.post(f"{tiny_server.url}/v1/models/edgeclf:predict", timeout=60,
                      json={"instances": [{"b64": base64.b64encode(b).decode()} for b in blobs]})
    assert r.status_code == 200, r.text
    # the same body as curl -d sends it, without Content-Type: application/json
    bare = requests.post(f"{tiny_server.url}/v1/models/edgeclf:predict", timeout=60,
                         data=json.dumps({"instances": [{"b64": base64.b64encode(b).decode()} for b in blobs]}))
    assert bare.status_code == 200, bare.text
    assert bare.json() == r.json()
    for got, exp in zip(r.json()["predictions"], expected):
        assert [g["label"] for g in got] == [p.label for p in exp]
        assert [g["index"] for g in got] == [p.index for p in exp]
        np.testing.assert_allclose([g["probability"] for g in got], [p.probability for p in exp], atol=1e-6, rtol=0)


def test_top_k_parameter_and_preprocessed_input_tensor(tiny_server, local):  # noqa: F811
    blob = NINE_IMAGES[3].read_bytes()
    r = requests.post(f"{tiny_server.url}/v2/models/edgeclf/infer", json=v2_json([blob], top_k=9), timeout=30)
    assert r.status_code == 200, r.text
    assert {o["name"]: o["shape"] for o in r.json()["outputs"]}["label"] == [1, 9]

    from edgeclf.runtime import load_image, preprocess

    x = preprocess(load_image(blob), local.preprocess_config)[None]
    client = httpclient.InferenceServerClient(tiny_server.http_address)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    logits = client.infer("edgeclf", [inp]).as_numpy("logits")
    np.testing.assert_allclose(logits, local.logits(x), atol=1e-5, rtol=0)


def test_grpc_round_trip(tiny_server, local):  # noqa: F811
    client = grpcclient.InferenceServerClient(tiny_server.grpc_address)
    assert client.is_server_ready() and client.is_model_ready("edgeclf")
    blobs = [p.read_bytes() for p in NINE_IMAGES[:2]]
    expected = local.predict_batch(NINE_IMAGES[:2], top_k=2)
    for elements in ([base64.b64encode(b) for b in blobs], blobs):  # base64 text and raw bytes
        inp = grpcclient.InferInput("image", [2], "BYTES")
        inp.set_data_from_numpy(np.array(elements, dtype=np.object_))
        result = client.infer("edgeclf", [inp], parameters={"top_k": 2})
        for i in range(2):
            assert_same(result.as_numpy("label")[i], result.as_numpy("probability")[i], expected[i])
    from edgeclf.runtime import load_image, preprocess

    x = np.stack([preprocess(load_image(b), local.preprocess_config) for b in blobs])  # (2, 3, 224, 224)
    tensor = grpcclient.InferInput("input", [1, 3, 224, 224], "FP32")
    tensor.set_data_from_numpy(x[:1])
    np.testing.assert_allclose(client.infer("edgeclf", [tensor]).as_numpy("logits"), local.logits(x[:1]),
                               atol=1e-5, rtol=0)
    tensor = grpcclient.InferInput("input", list(x.shape), "FP32")  # 1.2 MB: over the 1 MiB limit
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as err:
        client.infer("edgeclf", [tensor])
    assert err.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    with pytest.raises(InferenceServerException) as err:
        inp = grpcclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
        client.infer("edgeclf", [inp])
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT" and "element 0" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        client.infer("nope", [inp])
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_health_metadata_and_metrics(tiny_server):  # noqa: F811
    assert requests.get(f"{tiny_server.url}/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(f"{tiny_server.url}/v2/health/ready", timeout=10).json() == {"ready": True}
    meta = requests.get(f"{tiny_server.url}/v2/models/edgeclf", timeout=10).json()
    assert meta["parameters"]["class_names"] == NINE_CLASSES
    assert meta["parameters"]["preprocess"]["crop_size"] == 224
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"image": "BYTES", "input": "FP32"}
    assert {o["name"] for o in meta["outputs"]} == {"label", "probability", "index", "logits"}
    metrics = requests.get(f"{tiny_server.url}/metrics", timeout=10)
    assert metrics.status_code == 200 and "request_predict_seconds" in metrics.text
    assert "edgeclf serve: http://127.0.0.1:" in tiny_server.output()
    assert "CPUExecutionProvider" in tiny_server.output()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GOOD = _b64((SAMPLE_DATA / "camera" / "image_0001.jpg").read_bytes())
BAD_REQUESTS = [
    # (id, path, body, expected status, words expected in the error)
    ("undecodable-bytes", "v2", v2_json([b"\xff\xd8\xff broken jpeg"] * 1), 400, ["element 0", "JPEG"]),
    ("second-element-bad", "v2", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                              "data": [GOOD, _b64(b"hello")]}]}, 400, ["element 1", "not an image"]),
    ("wrong-datatype", "v2", {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
     400, ["inputs[0]", "BYTES"]),
    ("wrong-shape", "v2", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1], "data": [GOOD]}]},
     400, ["inputs[0]", "shape"]),
    ("shape-data-mismatch", "v2", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3], "data": [GOOD]}]},
     400, ["3 elements", "has 1"]),
    ("tensor-wrong-shape", "v2", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8],
                                              "data": [0.0] * 192}]}, 400, ["[N, 3, 224, 224]"]),
    ("tensor-not-numbers", "v2", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                                              "data": ["x"]}]}, 400, ["inputs[0]", "data"]),
    ("unknown-input", "v2", {"inputs": [{"name": "pixels", "datatype": "BYTES", "shape": [1], "data": [GOOD]}]},
     400, ["'image'", "pixels"]),
    ("top-k-zero", "v2", dict(v2_json([b"x"]), parameters={"top_k": 0}), 400, ["top_k", "1 to 9"]),
    ("top-k-too-big", "v2", dict(v2_json([b"x"]), parameters={"top_k": 10}), 400, ["top_k", "1 to 9"]),
    ("top-k-text", "v2", dict(v2_json([b"x"]), parameters={"top_k": "three"}), 400, ["top_k"]),
    ("no-inputs", "v2", {"inputs": []}, 400, ["inputs"]),
    ("not-an-object", "v2", [1, 2], 400, ["JSON object"]),
    ("unknown-output", "v2", dict(v2_json([b"x"]), outputs=[{"name": "scores"}]), 400, ["scores"]),
    ("v1-not-base64", "v1", {"instances": [{"b64": "%%%"}]}, 400, ["instances[0]", "base64"]),
    ("v1-undecodable", "v1", {"instances": [{"b64": _b64(b"GIF89a junk")}]}, 400, ["instances element 0", "GIF"]),
    ("v1-no-instances", "v1", {"inputs": []}, 400, ["instances"]),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_400_with_a_one_line_reason(tiny_server, case):  # noqa: F811
    _, path, body, status, words = case
    url = (f"{tiny_server.url}/v2/models/edgeclf/infer" if path == "v2"
           else f"{tiny_server.url}/v1/models/edgeclf:predict")
    r = requests.post(url, data=json.dumps(body), timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert "\n" not in error
    for word in words:
        assert word in error, error


def test_malformed_bodies_unknown_model_and_body_limit(tiny_server):  # noqa: F811
    infer = f"{tiny_server.url}/v2/models/edgeclf/infer"
    r = requests.post(infer, data=b"\x00\x01 not json", timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = requests.post(infer, data=b'{"inputs": []}', headers={"Inference-Header-Content-Length": "999"}, timeout=10)
    assert r.status_code == 400 and "inference-header-content-length" in r.json()["error"]
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": 50}}]}).encode()
    r = requests.post(infer, data=header + b"\x05\x00\x00\x00ab", timeout=10,
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 400 and "binary_data_size" in r.json()["error"]
    for url in (f"{tiny_server.url}/v2/models/nope/infer", f"{tiny_server.url}/v1/models/nope:predict",
                f"{tiny_server.url}/v2/models/nope"):
        r = requests.post(url, json=v2_json([b"x"]), timeout=10) if "infer" in url or "predict" in url \
            else requests.get(url, timeout=10)
        assert r.status_code == 404 and "nope" in r.json()["error"], url
    big = b"x" * (1024 * 1024 + 1)  # the fixture's limit is 1 MiB
    r = requests.post(infer, data=big, timeout=30)
    assert r.status_code == 413 and "exceeds the limit of 1,048,576 bytes" in r.json()["error"]
    r = requests.post(infer, data=iter([big[:600_000], big[600_000:]]), timeout=30)  # chunked, no length
    assert r.status_code == 413
    r = requests.post(f"{tiny_server.url}/v1/models/edgeclf:predict", data=big, timeout=30)
    assert r.status_code == 413
    assert requests.get(f"{tiny_server.url}/v2/health/ready", timeout=10).status_code == 200
    # a client's mistakes do not write tracebacks into the server's log
    assert "Traceback" not in tiny_server.output()


def batch_counts(server) -> tuple[float, float]:
    """(merged onnxruntime calls, images run) so far, from the server's Prometheus histogram."""
    lines = requests.get(f"{server.url}/metrics", timeout=10).text.splitlines()
    value = lambda name: sum(float(x.split()[-1]) for x in lines if x.startswith(name))  # noqa: E731
    return value("edgeclf_microbatch_images_count"), value("edgeclf_microbatch_images_sum")


def test_32_concurrent_clients_each_get_their_own_answer(tiny_server, local):  # noqa: F811
    images = sorted(SAMPLE_DATA.glob("*/*.jpg"))[::6][:32]  # 32 distinct real images, every class
    assert len(images) == 32
    expected = {str(p): local.predict(p) for p in images}
    before = batch_counts(tiny_server)
    session_local = threading.local()

    def one(path):
        s = getattr(session_local, "s", None) or requests.Session()
        session_local.s = s
        r = s.post(f"{tiny_server.url}/v2/models/edgeclf/infer", json=v2_json([path.read_bytes()]), timeout=120)
        return path, r

    def bad(i):
        return None, requests.post(f"{tiny_server.url}/v2/models/edgeclf/infer", json=v2_json([b"junk %d" % i]),
                                   timeout=120)

    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(one, p) for p in images] + [pool.submit(bad, i) for i in range(8)]
        results = [f.result() for f in futures]
    errors = [r.text for p, r in results if p is not None and r.status_code != 200]
    assert errors == []
    # The single-image requests were merged: fewer onnxruntime calls than images.
    calls, images_run = (a - b for a, b in zip(batch_counts(tiny_server), before))
    assert images_run == 32 and 0 < calls < 32, (calls, images_run)
    for path, r in results:
        if path is None:
            assert r.status_code == 400 and "element 0" in r.json()["error"]
            continue
        out = {o["name"]: o["data"] for o in r.json()["outputs"]}
        assert_same(out["label"], out["probability"], expected[str(path)])


def test_micro_batcher_merges_concurrent_calls_and_returns_each_its_rows():
    import time

    from edgeclf.microbatch import MicroBatcher

    calls = []

    def run(x):
        calls.append(len(x))
        time.sleep(0.02)
        return x[:, :2, 0, 0] * 10  # (B, 2): rows identify their inputs

    batcher = MicroBatcher(run, max_batch_size=8, timeout_ms=50)
    inputs = [np.full((1, 3, 2, 2), i, dtype=np.float32) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        outs = list(pool.map(lambda x: batcher.submit(x).result(timeout=30), inputs))
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, [[10 * i, 10 * i]])
    assert sum(calls) == 20 and max(calls) <= 8 and len(calls) < 20
    # Adaptive wait: nobody announced → a lone request runs at once, not after the 60 s timeout;
    # an announced caller is waited for and shares the call.
    patient = MicroBatcher(run, max_batch_size=8, timeout_ms=60_000)
    calls.clear()
    np.testing.assert_array_equal(patient.submit(inputs[1]).result(timeout=20), [[10, 10]])
    patient.reserve()
    first = patient.submit(inputs[2])
    time.sleep(0.05)
    second = patient.submit(inputs[3], reserved=True)
    assert first.result(timeout=20).tolist() == [[20, 20]] and second.result(timeout=20).tolist() == [[30, 30]]
    assert calls == [1, 2]
    # A failing run fails only the callers of that batch, and the batcher keeps working.
    failing = MicroBatcher(lambda x: (_ for _ in ()).throw(RuntimeError("boom")), 4, 1)
    with pytest.raises(RuntimeError, match="boom"):
        failing.submit(inputs[0]).result(timeout=10)
    batcher.close()


def test_serve_help_and_unusable_artifact(run_cli, tmp_path):
    r = run_cli("serve", "--help", timeout=60)
    assert r.returncode == 0 and "examples:" in r.stdout and "--max-batch-size" in r.stdout
    r = run_cli("serve", tmp_path / "missing", "--http-port", "1", timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "edgeclf serve: error:" in r.stderr and "missing" in r.stderr


def test_serve_and_client_import_no_torch():
    import subprocess
    import sys

    from conftest import REPO_ROOT, cli_env
    from test_runtime_import import BLOCKER

    # kserve and tritonclient.grpc cannot share a process (both register the inference.* protos):
    # the server and the client are checked apart, as they run.
    for imports in ("import edgeclf.serve, edgeclf.commands.serve", "import tritonclient.http, tritonclient.grpc\n"
                    "from edgeclf.runtime import RemotePredictor\nimport edgeclf.runtime.remote"):
        code = (f"import sys\n{imports}\n"
                "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm'))\n"
                "print('loaded:', bad)\n")
        r = subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, cwd=REPO_ROOT,
                           env=cli_env(), timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("loaded: []"), r.stdout


def test_a_request_larger_than_the_batch_runs_in_chunks_and_long_echoes_are_cut(tiny_server, local):  # noqa: F811
    """20 images in one request (the server's --max-batch-size is 8): 20 answers, equal to the
    in-process ones, with no model call above 8 images; line-wrapped base64 is accepted; an error
    quoting a huge client value is cut to a bounded line."""
    blobs = [NINE_IMAGES[i % 9].read_bytes() for i in range(20)]
    calls_before, _ = batch_counts(tiny_server)
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [20],
                        "data": [base64.encodebytes(b).decode() for b in blobs]}]}  # MIME: 76-char lines
    r = requests.post(f"{tiny_server.url}/v2/models/edgeclf/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    labels = np.array({o["name"]: o for o in r.json()["outputs"]}["label"]["data"]).reshape(20, 3)
    expected = local.predict_batch([NINE_IMAGES[i % 9] for i in range(20)], top_k=3)
    assert [list(row) for row in labels] == [[p.label for p in e] for e in expected]
    calls_after, _ = batch_counts(tiny_server)
    assert calls_after - calls_before >= 3  # 20 images, at most 8 per model call
    lines = requests.get(f"{tiny_server.url}/metrics", timeout=10).text.splitlines()
    bucket = lambda le: sum(float(x.split()[-1]) for x in lines  # noqa: E731
                            if x.startswith("edgeclf_microbatch_images_bucket") and f'le="{le}"' in x)
    assert bucket("8.0") == bucket("+Inf") > 0  # no model call ever took more than 8 images

    r = requests.post(f"{tiny_server.url}/v2/models/edgeclf/infer", timeout=30,
                      json={"inputs": [{"name": "x" * 100_000, "datatype": "BYTES", "shape": [1], "data": ["a"]}]})
    assert r.status_code == 400 and len(r.text) < 1000 and "characters)" in r.json()["error"]


def test_a_port_in_use_is_a_one_line_usage_error(run_cli, tiny_server, tiny_artifact):  # noqa: F811
    r = run_cli("serve", tiny_artifact.dir, "--host", "127.0.0.1", "--http-port", tiny_server.http_port,
                "--no-grpc", timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"edgeclf serve: error: --http-port {tiny_server.http_port}: cannot listen on"
                                f" 127.0.0.1:{tiny_server.http_port} (Address already in use); choose another port or --host")
