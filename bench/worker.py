"""One backend, benchmarked in a fresh process: ``python -m edgeclf.bench.worker REQUEST.json RESULT.json``.

Each backend runs in its own process so that its cold start (framework import, model/session
load, first inference) and its peak RSS are its own, not inherited from a backend measured
before it. The parent (:mod:`bench.runner`) writes the request and reads the result; both are
JSON. Thread counts are fixed through the environment before torch/onnxruntime load.

Request keys: ``backend``, ``artifact_dir``, ``checkpoint`` (or null), ``batch_sizes``,
``warmup``, ``iters``, ``seconds``, ``threads``, ``inputs`` (a path prefix P: ``P.x.npy`` holds
float32 (N, 3, H, W) preprocessed images, ``P.labels.npy`` int64 (N,) labels; or null),
``input_shape`` [3, H, W], ``gpu`` (GPU number of the GPU backends, default 0), ``events`` (optional path: progress events are appended to it as JSON
lines, ``{"step": "load"|"batch"|"accuracy", ...}``, read live by the parent).

The result also says what the worker really ran with (``worker``): the timing-related environment
variables *as this process saw them* and the intra-op thread count read back from the framework,
so ``bench.json`` never reports the caller's shell settings in place of the measured ones.

``peak_rss_mib`` is read after the timed loops and before the accuracy pass, and the images are
memory-mapped, so it measures the backend (framework, model, one batch), not the evaluation set.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    Linux: ``VmHWM`` from /proc/self/status — per address space, so it starts afresh at exec.
    (``getrusage().ru_maxrss`` does not: Linux carries it across fork + exec, so a worker started
    by a 2 GiB parent would report 2 GiB.) Elsewhere: ``ru_maxrss`` (KiB on Linux/BSD, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20


def bench_input(x_eval: np.ndarray | None, batch_size: int, input_shape) -> np.ndarray:
    """The timed batch: real preprocessed images (tiled to ``batch_size``) if given, else seeded
    N(0, 1) noise. float32 (batch_size, 3, H, W); identical for every backend."""
    if x_eval is not None and len(x_eval):
        idx = np.arange(batch_size) % len(x_eval)
        return np.ascontiguousarray(x_eval[idx])
    return np.random.default_rng(0).standard_normal((batch_size, *input_shape), dtype=np.float32)


class Events:
    """Progress events for the parent, appended as JSON lines to ``path`` (nothing if ``None``).

    ``sample(times)`` (a :func:`bench.timing.time_repeated` ``on_sample``) reports the running p50
    at most every ``interval_s`` seconds.
    """

    def __init__(self, path: str | None, interval_s: float = 0.25):
        self.fp = open(path, "a", encoding="utf-8") if path else None
        self.interval_s = interval_s
        self._last = 0.0
        self._batch: dict = {}

    def emit(self, **event) -> None:
        if self.fp is not None:
            self.fp.write(json.dumps(event) + "\n")
            self.fp.flush()

    def batch(self, batch_size: int, total: int | None) -> None:
        self._batch = {"step": "batch", "batch_size": batch_size, "total": total}
        self.emit(**self._batch, done=0)

    def sample(self, times: list) -> None:
        now = time.perf_counter()
        if self.fp is not None and now - self._last >= self.interval_s:
            self._last = now
            self.emit(**self._batch, done=len(times), latency_ms_p50=float(np.median(times)))


def worker_settings(backend) -> dict:
    """What this worker process really runs with: ``env`` (the timing-related environment
    variables set in this process), ``threads_used`` (read back from the framework), ``pid``."""
    import os

    from .environment import TIMING_ENV_VARS

    return {"env": {k: os.environ[k] for k in TIMING_ENV_VARS if k in os.environ},
            "threads_used": backend.threads_used, "pid": os.getpid()}


def run_request(req: dict, events: Events | None = None) -> dict:
    """Measure one backend as ``req`` says; return the result dict (see :mod:`bench.runner`)."""
    from .backends import Skip, make_backend
    from .timing import summarize, time_repeated

    events = events or Events(req.get("events"))
    events.emit(step="load")
    name = req["backend"]
    result: dict = {"backend": name, "status": "ok", "reason": None, "rows": []}
    t0 = time.perf_counter()
    framework = {"onnx": "onnxruntime", "openvino": "openvino"}.get(name.split("-")[0], "torch")
    __import__(framework)
    if framework == "torch":
        import torch

        torch.set_num_threads(req["threads"])
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    result["import_ms"] = (time.perf_counter() - t0) * 1000
    backend = make_backend(name, Path(req["artifact_dir"]),
                           Path(req["checkpoint"]) if req.get("checkpoint") else None, req["threads"],
                           gpu=req.get("gpu") or 0)
    try:
        t0 = time.perf_counter()
        backend.load()
        result["load_ms"] = (time.perf_counter() - t0) * 1000
    except Skip as skip:
        result.update(status="skipped", reason=str(skip))
        return result
    result["providers"] = backend.providers
    result["device"] = backend.device
    result["worker"] = worker_settings(backend)

    x_eval = np.load(req["inputs"] + ".x.npy", mmap_mode="r") if req.get("inputs") else None
    shape = tuple(req["input_shape"])

    first = bench_input(x_eval, 1, shape)
    run, sync = backend.prepare(first)
    t0 = time.perf_counter()
    run()
    if sync:
        sync()
    result["first_inference_ms"] = (time.perf_counter() - t0) * 1000

    for bs in req["batch_sizes"]:
        events.batch(bs, None if req.get("seconds") else req.get("iters"))
        run, sync = backend.prepare(bench_input(x_eval, bs, shape))
        samples = time_repeated(run, warmup=req["warmup"], iters=req.get("iters"),
                                seconds=req.get("seconds"), sync=sync, on_sample=events.sample)
        result["rows"].append({"batch_size": bs, **summarize(samples, bs)})
        events.emit(**events._batch, done=int(samples.times_ms.size),
                    latency_ms_p50=result["rows"][-1]["latency_ms_p50"])

    result["peak_rss_mib"] = _peak_rss_mib()
    result["peak_gpu_mem_mib"] = backend.peak_gpu_mem_mib()
    if x_eval is not None:
        events.emit(step="accuracy", total=int(len(x_eval)))
        labels = np.load(req["inputs"] + ".labels.npy")
        from edgeclf.runtime.inference import top_k

        logits = np.concatenate([backend.logits(np.array(x_eval[i:i + 32])) for i in range(0, len(x_eval), 32)])
        preds = top_k(logits, 1)[:, 0]
        result["predictions_top1"] = preds.tolist()
        result["accuracy_top1"] = float((preds == labels).mean())
        result["num_images"] = int(len(x_eval))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    req_path, out_path = Path(argv[0]), Path(argv[1])
    req = json.loads(req_path.read_text())
    try:
        result = run_request(req)
    except Exception as err:  # reported to the parent as a failed row, with the traceback's tail
        result = {"backend": req.get("backend"), "status": "failed",
                  "reason": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:], "rows": []}
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
