"""Load benchmark of `edgeclf serve`: closed-loop HTTP clients at several concurrency levels.

``edgeclf bench serve (ARTIFACT | URL) --concurrency 1,4,16,64 [--seconds S] [--json OUT.json]``

For an artifact, the server is started twice as a subprocess on 127.0.0.1 — micro-batching on
(``--max-batch-size 32 --batch-timeout-ms 5``) and off (``--max-batch-size 1``) — and the
in-process :class:`~edgeclf.runtime.Predictor` is timed on the same images, in this process, after
the servers are stopped: ``predict`` of one image (decode + preprocess + model, like a request)
and ``predict_batch`` of 16 (throughput). For a URL, the running server is driven as it is.

Each client is a thread with its own ``requests.Session`` (keep-alive), sending one image per
request (Open Inference Protocol JSON, base64 ``image`` input, top-3) in a closed loop: the next
request leaves when the answer to the previous one is in. Per level: ``warmup_s`` untimed, then
``seconds`` timed; every request started in the timed window counts. Reported per level:
latency p50/p90/p99 (ms, per request as the client sees it), throughput (answered requests = images
per second over the window) and the error count (any non-200 answer or exception).

The clients share the machine with the server: on a small CPU they take cycles from it, which is
part of what a colocated client sees. Numbers are floats with units in the key names.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from edgeclf.runtime.errors import UsageError

DEFAULT_CONCURRENCY = (1, 4, 16, 64)
SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "caltech101_sample"
SCHEMA = "edgeclf.bench.serve"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_images(folder: str | os.PathLike = SAMPLE_DATA, count: int = 32) -> list[bytes]:
    """``count`` encoded images (bytes) spread over every class of ``folder``, in a fixed order."""
    files = sorted(p for p in Path(folder).glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise UsageError(f"{folder}: no .jpg/.png images in class folders")
    step = max(1, len(files) // count)
    return [p.read_bytes() for p in files[::step][:count]]


class ServerProcess:
    """`python -m edgeclf serve ARTIFACT --host 127.0.0.1 --no-grpc ...` on a free port, until stop()."""

    def __init__(self, artifact, flags=(), ready_timeout_s: float = 120, log_path=None):
        import requests

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path or f"/tmp/edgeclf-bench-serve-{self.port}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeclf", "serve", str(artifact), "--host", "127.0.0.1",
                 "--http-port", str(self.port), "--no-grpc", *map(str, flags)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UsageError(f"edgeclf serve exited with {self.proc.returncode}: "
                                 f"{self.log_path.read_text(errors='replace')[-500:]}")
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise UsageError(f"edgeclf serve not ready after {ready_timeout_s} s (log: {self.log_path})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def drive(url: str, images: list[bytes], concurrency: int, seconds: float, warmup_s: float = 1.0,
          model_name: str = "edgeclf", top_k: int = 3) -> dict:
    """``concurrency`` closed-loop clients on ``url`` for ``warmup_s`` + ``seconds``.

    Returns:
        ``latency_ms_p50/p90/p99/mean`` (per request), ``throughput_img_per_s``, ``requests``,
        ``errors``, ``first_error`` (text or None), ``concurrency``, ``seconds``.
    """
    import requests

    bodies = [json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                      "data": [base64.b64encode(b).decode()]}],
                          "parameters": {"top_k": top_k}}).encode() for b in images]
    endpoint = f"{url.rstrip('/')}/v2/models/{model_name}/infer"
    start_barrier = threading.Barrier(concurrency + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    window = {}

    def client(worker: int) -> None:
        session = requests.Session()
        i = worker
        start_barrier.wait()
        while True:
            now = time.perf_counter()
            if now >= window["end"]:
                break
            body = bodies[i % len(bodies)]
            i += concurrency
            t0 = time.perf_counter()
            try:
                r = session.post(endpoint, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                ok, why = r.status_code == 200, f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as err:
                ok, why = False, f"{type(err).__name__}: {err}"
            dt = (time.perf_counter() - t0) * 1000.0
            if t0 >= window["start"]:  # started inside the timed window
                with lock:
                    if ok:
                        latencies.append(dt)
                    else:
                        errors.append(why)
        session.close()

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    window["start"] = time.perf_counter() + warmup_s
    window["end"] = window["start"] + seconds
    start_barrier.wait()
    for t in threads:
        t.join(seconds + warmup_s + 120)
    elapsed = time.perf_counter() - window["start"]
    t = np.asarray(latencies, dtype=np.float64)
    pct = (lambda q: float(np.percentile(t, q))) if t.size else (lambda q: float("nan"))
    return {
        "concurrency": concurrency, "seconds": seconds,
        "latency_ms_p50": pct(50), "latency_ms_p90": pct(90), "latency_ms_p99": pct(99),
        "latency_ms_mean": float(t.mean()) if t.size else float("nan"),
        "throughput_img_per_s": t.size / elapsed if elapsed > 0 else float("nan"),
        "requests": int(t.size), "errors": len(errors), "first_error": errors[0] if errors else None,
    }


def in_process(artifact, images: list[bytes], seconds: float, threads: int | None, batch_size: int = 16) -> dict:
    """The in-process Predictor on the same images: ``predict`` p50 (one image, decode included)
    and ``predict_batch`` throughput (``batch_size`` images per call)."""
    from edgeclf.bench.timing import summarize, time_repeated
    from edgeclf.runtime import Predictor

    p = Predictor(artifact, device="cpu", intra_op_threads=threads)
    it = iter(range(10**9))
    single = time_repeated(lambda: p.predict(images[next(it) % len(images)]), warmup=10, seconds=seconds)
    batch = (images * (batch_size // len(images) + 1))[:batch_size]
    many = time_repeated(lambda: p.predict_batch(batch, batch_size=batch_size), warmup=3, seconds=seconds)
    return {"predict": summarize(single, 1), f"predict_batch_{batch_size}": summarize(many, batch_size),
            "batch_size": batch_size, "providers": p.providers, "arch": p.info.arch}


def run_serve_bench(target: str, concurrency=DEFAULT_CONCURRENCY, seconds: float = 5.0, warmup_s: float = 1.0,
                    threads: int | None = None, max_batch_size: int = 32, batch_timeout_ms: float = 5.0,
                    images_dir=SAMPLE_DATA, num_images: int = 32, model_name: str = "edgeclf",
                    progress=None) -> dict:
    """Benchmark a served model (see the module docstring); returns the result document.

    Args:
        target: an artifact directory / .onnx (servers started here) or an http(s) URL of a
            running server.
        concurrency: client counts, one level each.
        seconds: timed window per level (s); ``warmup_s`` untimed before it.
        threads: onnxruntime intra-op threads for the servers and the in-process Predictor.
    Raises:
        UsageError: bad arguments, or a server that does not start.
    """
    from edgeclf.bench.environment import collect_environment

    if not concurrency or min(concurrency) < 1:
        raise UsageError(f"concurrency={concurrency!r}: give positive client counts, e.g. 1,4,16,64")
    if not seconds > 0:
        raise UsageError(f"seconds={seconds!r}: must be > 0")
    say = progress or (lambda msg: None)
    images = sample_images(images_dir, num_images)
    doc = {"schema": SCHEMA, "schema_version": 1, "target": str(target), "environment": collect_environment(threads),
           "settings": {"concurrency": list(concurrency), "seconds": seconds, "warmup_s": warmup_s,
                        "images": len(images), "images_dir": str(images_dir), "top_k": 3,
                        "max_batch_size": max_batch_size, "batch_timeout_ms": batch_timeout_ms,
                        "request": "one image per request, Open Inference Protocol JSON, base64"},
           "served": {}}
    if str(target).startswith(("http://", "https://")):
        doc["served"]["remote"] = {}
        for c in concurrency:
            say(f"{target}: {c} clients")
            doc["served"]["remote"][str(c)] = drive(target, images, c, seconds, warmup_s, model_name)
        return doc
    if not Path(target).exists():
        raise UsageError(f"{target}: no such artifact directory or .onnx file, and not an http(s) URL")
    thread_flags = ["--threads", str(threads)] if threads else []
    modes = {"batched": ["--max-batch-size", str(max_batch_size), "--batch-timeout-ms", str(batch_timeout_ms)],
             "unbatched": ["--max-batch-size", "1"]}
    for mode, flags in modes.items():
        say(f"starting edgeclf serve ({mode})")
        server = ServerProcess(target, ["--device", "cpu", "--model-name", model_name, *thread_flags, *flags])
        try:
            doc["served"][mode] = {}
            for c in concurrency:
                say(f"{mode}: {c} clients for {seconds:g} s")
                doc["served"][mode][str(c)] = drive(server.url, images, c, seconds, warmup_s, model_name)
        finally:
            server.stop()
    say("in-process Predictor")
    doc["in_process"] = in_process(target, images, seconds, threads)
    doc["summary"] = summary(doc)
    return doc


def summary(doc: dict) -> dict:
    """The headline comparisons: served p50 at the lowest concurrency minus in-process p50 (ms);
    batched throughput at 16 clients (or the nearest level) / in-process predict_batch throughput."""
    ip = doc["in_process"]
    batch_key = next(k for k in ip if k.startswith("predict_batch_"))
    levels = sorted(int(c) for c in doc["served"]["batched"])
    lowest = str(levels[0])
    near16 = str(min(levels, key=lambda c: abs(c - 16)))
    out = {
        "concurrency_low": int(lowest), "concurrency_high": int(near16),
        "served_p50_minus_in_process_p50_ms": doc["served"]["batched"][lowest]["latency_ms_p50"] - ip["predict"]["latency_ms_p50"],
        "batched_throughput_over_in_process_batch": doc["served"]["batched"][near16]["throughput_img_per_s"]
        / ip[batch_key]["throughput_img_per_s"],
        "batched_over_unbatched_throughput": doc["served"]["batched"][near16]["throughput_img_per_s"]
        / doc["served"]["unbatched"][near16]["throughput_img_per_s"],
        "errors_total": sum(r["errors"] for m in doc["served"].values() for r in m.values()),
    }
    return out


def format_report(doc: dict) -> str:
    """The result document as a plain-text table (no rich needed)."""
    lines = [f"edgeclf bench serve: {doc['target']}  ({doc['settings']['images']} images, one per request,"
             f" {doc['settings']['seconds']:g} s per level; CPU {doc['environment']['cpu_model']},"
             f" threads {doc['environment']['threads']})",
             f"{'mode':<10} {'clients':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'img/s':>8} {'requests':>8} {'errors':>6}"]
    for mode, levels in doc["served"].items():
        for c, r in levels.items():
            lines.append(f"{mode:<10} {c:>7} {r['latency_ms_p50']:>8.2f} {r['latency_ms_p90']:>8.2f}"
                         f" {r['latency_ms_p99']:>8.2f} {r['throughput_img_per_s']:>8.1f} {r['requests']:>8} {r['errors']:>6}")
            if r["first_error"]:
                lines.append(f"    first error: {r['first_error']}")
    if "in_process" in doc:
        ip = doc["in_process"]
        for key, r in ip.items():
            if isinstance(r, dict):
                lines.append(f"{'in-proc':<10} {key:>7} {r['latency_ms_p50']:>8.2f} {r['latency_ms_p90']:>8.2f}"
                             f" {r['latency_ms_p99']:>8.2f} {r['throughput_img_per_s']:>8.1f} {r['iters']:>8} {0:>6}")
    if "summary" in doc:
        s = doc["summary"]
        lines.append(f"served p50 at {s['concurrency_low']} client(s) - in-process predict p50:"
                     f" {s['served_p50_minus_in_process_p50_ms']:+.2f} ms; batched throughput at"
                     f" {s['concurrency_high']} clients / in-process predict_batch:"
                     f" {s['batched_throughput_over_in_process_batch']:.2f}x; batched / unbatched:"
                     f" {s['batched_over_unbatched_throughput']:.2f}x; errors: {s['errors_total']}")
    return "\n".join(lines)
