"""``run_bench``: every backend x batch size, side by side in one run, with accuracy and costs.

Methodology (what makes the numbers comparable):

* each backend runs in a fresh subprocess (:mod:`bench.worker`), one after another, never
  concurrently, so cold start and peak RSS are its own and backends do not compete for cores;
* every CPU backend gets the same intra-op thread count (default: physical cores), set through
  ``torch.set_num_threads`` / ``SessionOptions.intra_op_num_threads`` and ``OMP_NUM_THREADS``,
  inter-op threads 1, and the count is recorded;
* every backend times the same input batch (real preprocessed test images when a split is
  given), ``warmup`` untimed calls first, then ``iters`` (or ``seconds`` of) timed calls
  (:mod:`bench.timing`); GPU backends synchronise after each call;
* accuracy is computed by each backend on the same preprocessed test images, and top-1
  agreement is measured against the eager backend's predictions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeclf.runtime.artifact import ArtifactDescription, load_artifact_json
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, normalize, preprocess_batch, resize_and_crop

from .backends import BACKENDS, CPU_BACKENDS
from .document import SCHEMA, SCHEMA_VERSION
from .environment import collect_environment, physical_cores
from .timing import Samples, summarize

DEFAULT_BATCH_SIZES = (1, 8, 32)
#: Seconds one backend's subprocess may take before it is reported as failed.
WORKER_TIMEOUT_S = 1800


def parse_backends(value: str | None) -> list[str]:
    """``"eager,onnx-cpu"`` → ["eager", "onnx-cpu"]; None → all of :data:`BACKENDS`.

    Raises:
        UsageError: an unknown name (the message lists the valid ones).
    """
    if value is None:
        return list(BACKENDS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise UsageError(f"--backends {value!r}: unknown {unknown or 'empty'}; choose from {', '.join(BACKENDS)}")
    return names


def _source_checkpoint(artifact: ArtifactDescription, artifact_dir: Path) -> Path | None:
    """The checkpoint the artifact was exported from, as recorded in artifact.json (if it still exists)."""
    path = artifact.source_checkpoint.path
    if not path:
        return None
    path = Path(path)
    if not path.is_absolute():
        path = (artifact_dir / path).resolve()
    return path if path.is_file() else None


def _test_images(split: str | os.PathLike, class_names: list[str], max_images: int | None):
    from edgeclf.runtime.manifest import load_manifest

    manifest = load_manifest(split)
    if list(manifest.classes) != list(class_names):
        raise UsageError(f"--split {split}: its classes {manifest.classes} differ from the artifact's {class_names}")
    files = manifest.files("test")
    return files[:max_images] if max_images else files


def measure_preprocessing(paths: list[Path], cfg: PreprocessConfig, repeats: int = 3) -> dict:
    """Per-image cost of the runtime's torch-free preprocessing, ms (medians over images x repeats).

    Returns ``decode_ms_p50`` (read + decode + EXIF + RGB), ``resize_normalize_ms_p50``
    (resize, centre crop, scale, normalise) and ``preprocess_ms_p50`` (their per-call sum's median).
    """
    decode, rest, total = [], [], []
    for _ in range(repeats):
        for p in paths:
            t0 = time.perf_counter_ns()
            img = load_image(p)
            t1 = time.perf_counter_ns()
            normalize(np.asarray(resize_and_crop(img, cfg)), cfg)
            t2 = time.perf_counter_ns()
            decode.append((t1 - t0) / 1e6)
            rest.append((t2 - t1) / 1e6)
            total.append((t2 - t0) / 1e6)
    return {"decode_ms_p50": float(np.median(decode)), "resize_normalize_ms_p50": float(np.median(rest)),
            "preprocess_ms_p50": float(np.median(total)), "images": len(paths), "repeats": repeats}


def measure_end_to_end(artifact_dir: Path, paths: list[Path], threads: int, warmup: int = 3, repeats: int = 3) -> dict:
    """``runtime.Predictor(...).predict(path)`` latency from an image file to top-3, CPU fp32, ms."""
    from edgeclf.runtime import Predictor

    predictor = Predictor(artifact_dir, device="cpu", intra_op_threads=threads)
    for p in paths[:warmup]:
        predictor.predict(p)
    times = []
    for _ in range(repeats):
        for p in paths:
            t0 = time.perf_counter_ns()
            predictor.predict(p)
            times.append((time.perf_counter_ns() - t0) / 1e6)
    s = summarize(Samples(np.asarray(times), warmup), 1)
    return {"latency_ms_p50": s["latency_ms_p50"], "latency_ms_p90": s["latency_ms_p90"],
            "latency_ms_p99": s["latency_ms_p99"], "latency_ms_mean": s["latency_ms_mean"],
            "images": len(paths), "providers": list(predictor.providers)}


def _run_worker(request: dict, workdir: Path, threads: int) -> dict:
    req_path = workdir / f"req-{request['backend']}.json"
    out_path = workdir / f"res-{request['backend']}.json"
    req_path.write_text(json.dumps(request))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeclf.bench.worker", str(req_path), str(out_path)],
                              env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"backend": request["backend"], "status": "failed", "rows": [],
                "reason": f"worker exceeded {WORKER_TIMEOUT_S} s"}
    if not out_path.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"backend": request["backend"], "status": "failed", "rows": [],
                "reason": f"worker exited {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(out_path.read_text())


def run_bench(
    artifact_dir: str | os.PathLike,
    *,
    backends: list[str] | None = None,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    warmup: int = 10,
    iters: int | None = 100,
    seconds: float | None = None,
    threads: int | None = None,
    split: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    max_images: int | None = None,
    end_to_end: bool = True,
    progress=None,
) -> dict:
    """Benchmark an artifact's formats; return the result document (schema ``edgeclf.bench`` v1).

    Args:
        artifact_dir: an ``edgeclf export`` directory.
        backends: names from :data:`bench.backends.BACKENDS` (default: all; unavailable ones are
            reported as skipped with the reason).
        batch_sizes: batch sizes timed for every backend.
        warmup, iters, seconds: see :func:`bench.timing.time_repeated`.
        threads: intra-op threads for every CPU backend (default: physical cores).
        split: a split manifest; its test images give accuracy and agreement per backend.
        checkpoint: the eager backend's checkpoint (default: the one recorded in artifact.json).
        max_images: use at most this many test images.
        end_to_end: also time ``runtime.Predictor.predict`` from image files.
        progress: optional ``callable(str)`` told which backend starts.
    Returns:
        ``{"schema", "schema_version", "created_utc", "artifact", "settings", "environment",
        "backends": {name: {...}}, "rows": [...], "preprocessing": {...}, "end_to_end": {...}}``.
        Rows hold ``latency_ms_p50/p90/p99/mean`` (per batch), ``latency_ms_per_image_p50``,
        ``throughput_img_per_s`` per (backend, batch size).
    Raises:
        ArtifactError, ManifestError, UsageError: unusable artifact, split or arguments.
    """
    artifact_dir = Path(artifact_dir)
    artifact = load_artifact_json(artifact_dir)
    names = backends or list(BACKENDS)
    if not batch_sizes or min(batch_sizes) < 1:
        raise UsageError(f"--batch-sizes {batch_sizes}: give positive integers")
    if warmup < 0:
        raise UsageError(f"--warmup {warmup}: must be >= 0")
    threads = threads or physical_cores()
    cfg = artifact.preprocess
    class_names = list(artifact.class_names)
    ckpt = Path(checkpoint) if checkpoint else _source_checkpoint(artifact, artifact_dir)

    with tempfile.TemporaryDirectory(prefix="edgeclf-bench-") as tmp:
        workdir = Path(tmp)
        inputs_path, labels, files = None, None, []
        if split is not None:
            files = _test_images(split, class_names, max_images)
            x = preprocess_batch((load_image(p) for p, _ in files), cfg)  # (N, 3, H, W) float32
            labels = np.asarray([lbl for _, lbl in files], dtype=np.int64)
            # .npy files, memory-mapped by the workers: a backend's peak RSS then counts the pages
            # it touches for its timed batch, not the whole evaluation set.
            inputs_path = workdir / "inputs"
            np.save(workdir / "inputs.x.npy", x)
            np.save(workdir / "inputs.labels.npy", labels)
        sample_paths = [p for p, _ in files[:16]] or _sample_images(16)

        results = {}
        for name in names:
            if progress:
                progress(name)
            request = {"backend": name, "artifact_dir": str(artifact_dir.resolve()),
                       "checkpoint": str(ckpt) if ckpt else None, "batch_sizes": list(batch_sizes),
                       "warmup": warmup, "iters": iters, "seconds": seconds, "threads": threads,
                       "inputs": str(inputs_path) if inputs_path else None,
                       "input_shape": list(cfg.input_shape)}
            results[name] = _run_worker(request, workdir, threads)

    eager = results.get("eager", {})
    rows, summary = [], {}
    for name, res in results.items():
        info = {k: v for k, v in res.items() if k not in ("rows", "predictions_top1")}
        if res.get("predictions_top1") is not None and eager.get("predictions_top1") is not None:
            a, b = np.asarray(res["predictions_top1"]), np.asarray(eager["predictions_top1"])
            info["top1_agreement_with_eager"] = float((a == b).mean())
        summary[name] = info
        for row in res.get("rows", []):
            rows.append({"backend": name, **row})

    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "artifact": {"dir": str(artifact_dir.resolve()), "arch": artifact.arch,
                     "num_classes": len(class_names), "checkpoint": str(ckpt) if ckpt else None},
        "settings": {"backends": names, "batch_sizes": list(batch_sizes), "warmup": warmup,
                     "iters": None if seconds else iters, "seconds": seconds, "threads": threads,
                     "cpu_backends_share_threads": [n for n in names if n in CPU_BACKENDS],
                     "split": str(split) if split else None, "test_images": len(files)},
        "environment": collect_environment(threads),
        "backends": summary,
        "rows": rows,
        "preprocessing": measure_preprocessing(sample_paths, cfg) if sample_paths else None,
    }
    if end_to_end and sample_paths:
        doc["end_to_end"] = measure_end_to_end(artifact_dir, sample_paths, threads)
    return doc


def _sample_images(n: int) -> list[Path]:
    """Up to ``n`` images from the sample shipped with edgeclf (for preprocessing/e2e timing)."""
    from . import SAMPLE_DATA

    from edgeclf.runtime.walk import walk

    paths = [Path(p) for p in walk(SAMPLE_DATA).files] if SAMPLE_DATA.is_dir() else []
    return paths[:: max(1, len(paths) // n)][:n]
