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
  agreement is measured against the eager backend's predictions;
* each worker reports the environment and the intra-op thread count it really ran with
  (``backends[name]["worker"]``); ``environment.env`` is what the workers were given;
* a row whose ``latency_ms_p99 / latency_ms_p50`` exceeds :data:`BUSY_SPREAD` is flagged
  ``busy``: on an idle machine a model's per-call times spread by a few percent, so a tail that
  long means other processes took the cores during the measurement — rerun before trusting it;
* int8 rows carry the quantization types (``quantization``: target, activation/weight types)
  and the CPU flags that decide int8 speed are in ``environment.cpu_flags``.

Beyond model-only rows: ``files_to_topk`` times the whole path from image files to top-k through
``runtime.Predictor.predict_batch``, serial and with its decode thread pool, next to the bound
``cores / (preprocess ms + inference ms per image)``; ``large_photos`` (opt-in) times
``Predictor.predict`` on test images upscaled to ~12 megapixels (JPEG, made on the fly) with
``decode="exact"`` and ``"draft"`` and reports the top-1 agreement between the two.
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

from edgeclf.progress import Progress, as_progress
from edgeclf.runtime.artifact import ArtifactDescription, load_artifact_json
from edgeclf.runtime.schema import to_dict
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, decode_size, normalize, preprocess_batch, resize_and_crop
from edgeclf.runtime.providers import parse_device

from .backends import BACKENDS, CPU_BACKENDS
from .document import SCHEMA, SCHEMA_VERSION
from .environment import collect_environment, physical_cores
from .timing import Samples, summarize

DEFAULT_BATCH_SIZES = (1, 8, 32)
#: p99/p50 latency ratio above which a row is flagged ``busy`` (see the module docstring).
BUSY_SPREAD = 1.5
#: Pixels of the large-photo set's images (a 12-megapixel phone camera: 4000 x 3000).
LARGE_PHOTO_PIXELS = 12_000_000
#: Images per ``predict_batch`` call in the files → top-k measurement.
FILES_BATCH_SIZE = 32
#: Sample images used for files → top-k (and large photos) when no split is given.
FILES_SAMPLE_IMAGES = 64
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
            img = load_image(p, draft_to=decode_size(cfg))
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


def worker_env(threads: int) -> dict[str, str]:
    """Environment variables every worker gets on top of the caller's: the thread count for
    OpenMP/MKL/OpenBLAS, so no library spawns more threads than the backends were given."""
    return {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _worker_env(threads: int) -> dict:
    """The environment of a worker: the caller's, with every OpenMP/BLAS pool pinned to ``threads``."""
    return {**os.environ, **worker_env(threads)}


class _WorkerProgress:
    """Turns a worker's progress events (JSON lines, :class:`bench.worker.Events`) into stages:
    ``onnx-cpu: load``, ``onnx-cpu batch 8`` (count of timed calls, current p50), ``onnx-cpu: accuracy``."""

    def __init__(self, name: str, events: Path, progress: Progress):
        self.name, self.events, self.progress = name, events, progress
        self._offset = 0
        # Shown from the moment the worker is spawned (a fresh interpreter takes a while to start).
        self._key = ("start", None)
        self._stage = progress.start(f"{name}: starting", log=False)

    def poll(self) -> None:
        try:
            with open(self.events, "rb") as fp:
                fp.seek(self._offset)
                chunk = fp.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            self._handle(json.loads(line))

    def _handle(self, event: dict) -> None:
        step = event.get("step")
        key = (step, event.get("batch_size"))
        if key != self._key:
            self.close()
            label = f"{self.name} batch {event['batch_size']}" if step == "batch" else f"{self.name}: {step}"
            self._key, self._stage = key, self.progress.start(label, total=event.get("total"))
        if step == "batch":
            p50 = event.get("latency_ms_p50")
            self._stage.update(completed=event.get("done", 0),
                               note=f"p50 {p50:,.2f} ms" if p50 is not None else "warm-up")

    def close(self, ok: bool = True) -> None:
        if self._stage is not None:
            self.progress.finish(self._stage, ok)
            self._key, self._stage = None, None


def _run_worker(request: dict, workdir: Path, threads: int, progress: Progress | None = None) -> dict:
    """Run one backend's worker subprocess (reporting its progress) and return its result dict;
    a worker that crashes or exceeds :data:`WORKER_TIMEOUT_S` gives a ``failed`` result."""
    name = request["backend"]
    req_path, out_path = workdir / f"req-{name}.json", workdir / f"res-{name}.json"
    events = workdir / f"events-{name}.jsonl"
    req_path.write_text(json.dumps({**request, "events": str(events)}))
    watcher = _WorkerProgress(name, events, as_progress(progress))
    log_path = workdir / f"log-{name}.txt"
    with open(log_path, "w+", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen([sys.executable, "-m", "edgeclf.bench.worker", str(req_path), str(out_path)],
                                env=_worker_env(threads), stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                watcher.poll()
                time.sleep(0.1)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                watcher.close(ok=False)
                return {"backend": name, "status": "failed", "rows": [], "reason": f"worker exceeded {WORKER_TIMEOUT_S} s"}
        except BaseException:  # Ctrl-C: do not leave the worker running
            proc.kill()
            proc.wait()
            watcher.close(ok=False)
            raise
        watcher.poll()
        if not out_path.is_file():
            watcher.close(ok=False)
            log.seek(0)
            tail = log.read().strip().splitlines()[-3:]
            return {"backend": name, "status": "failed", "rows": [],
                    "reason": f"worker exited {proc.returncode}: {' | '.join(tail)}"}
    result = json.loads(out_path.read_text())
    watcher.close(ok=result.get("status") != "failed")
    if result.get("status") != "ok":
        as_progress(progress).log(f"{name}: {result.get('status')} — {short_reason(result.get('reason'))}")
    return result


def short_reason(reason: str | None, limit: int = 40) -> str:
    """The first clause of a skip/failure reason, at most ``limit`` characters (tables show this;
    the JSON keeps the whole reason)."""
    text = (reason or "").strip().splitlines()[0] if (reason or "").strip() else ""
    cuts = [i for i in (text.find(sep) for sep in (" (", ": ", "; ")) if i > 0]
    text = text[: min(cuts)] if cuts else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_settings(batch_sizes: tuple[int, ...], warmup: int) -> None:
    if not batch_sizes or min(batch_sizes) < 1:
        raise UsageError(f"--batch-sizes {batch_sizes}: give positive integers")
    if warmup < 0:
        raise UsageError(f"--warmup {warmup}: must be >= 0")


def _save_eval_inputs(files: list, cfg: PreprocessConfig, workdir: Path, progress: Progress) -> Path:
    """Preprocess the test images once for every backend; return the ``.npy`` prefix the workers
    memory-map (a backend's peak RSS then counts the pages it touches for its timed batch, not
    the whole evaluation set)."""
    with progress.stage(f"preprocessing {len(files)} test images", total=len(files)) as st:
        def images():
            for p, _ in files:
                yield load_image(p, draft_to=decode_size(cfg))
                st.advance()

        x = preprocess_batch(images(), cfg)  # (N, 3, H, W) float32
    labels = np.asarray([lbl for _, lbl in files], dtype=np.int64)
    np.save(workdir / "inputs.x.npy", x)
    np.save(workdir / "inputs.labels.npy", labels)
    return workdir / "inputs"


def _run_backends(names: list[str], request: dict, workdir: Path, threads: int, progress: Progress) -> dict:
    """Each backend in its own worker, one after another (never concurrently): name → result.
    With ``request["gpu"]`` None (``--device cpu``) the GPU backends are skipped without a worker."""
    results = {}
    for name in names:
        if request.get("gpu") is None and name not in CPU_BACKENDS:
            results[name] = {"backend": name, "status": "skipped", "rows": [],
                             "reason": "--device cpu: GPU backends not run"}
            continue
        results[name] = _run_worker({**request, "backend": name}, workdir, threads, progress)
    return results


def _agreement_with_eager(results: dict, artifact: dict) -> tuple[dict, list]:
    """Per-backend summaries (with ``top1_agreement_with_eager`` where both predicted) and the
    flat timing rows ``{"backend", "batch_size", ...}`` with their notes (:func:`_row_notes`)."""
    eager = results.get("eager", {})
    rows, summary = [], {}
    for name, res in results.items():
        info = {k: v for k, v in res.items() if k not in ("rows", "predictions_top1")}
        if res.get("predictions_top1") is not None and eager.get("predictions_top1") is not None:
            a, b = np.asarray(res["predictions_top1"]), np.asarray(eager["predictions_top1"])
            info["top1_agreement_with_eager"] = float((a == b).mean())
        summary[name] = info
        rows.extend({"backend": name, **row, **_row_notes(name, row, artifact)} for row in res.get("rows", []))
    return summary, rows


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
    device: str = "auto",
    files_to_topk: bool = True,
    decode_threads: int | None = None,
    large_photos: int = 0,
    progress: Progress | None = None,
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
        files_to_topk: also time ``Predictor.predict_batch`` over the test (or sample) image
            files, serial and with ``decode_threads`` decode threads (:func:`measure_files_to_topk`).
        decode_threads: the pipelined run's thread count (default: the runtime's default).
        large_photos: this many test (or sample) images, upscaled to ~12 MP, timed with
            ``decode="exact"`` and ``"draft"`` (:func:`measure_large_photos`); 0: skip.
        device: where the GPU backends run: ``auto`` or ``cuda`` (GPU 0), ``cuda:N`` (GPU N), or
            ``cpu`` (GPU backends skipped). CPU backends always run on the CPU.
        progress: an :class:`edgeclf.progress.Progress`: one stage per backend x batch size (timed
            calls done, current p50), plus loading, accuracy, preprocessing and end-to-end stages.
    Returns:
        ``{"schema", "schema_version", "created_utc", "artifact", "settings", "environment",
        "backends": {name: {...}}, "rows": [...], "preprocessing": {...}, "end_to_end": {...}}``.
        Rows hold ``latency_ms_p50/p90/p99/mean`` (per batch), ``latency_ms_per_image_p50``,
        ``throughput_img_per_s``, ``p99_over_p50``, ``busy``, ``precision`` and (int8)
        ``quantization`` per (backend, batch size). Also ``files_to_topk`` and ``large_photos``
        when measured.
    Raises:
        ArtifactError, ManifestError, UsageError: unusable artifact, split or arguments.
    """
    progress = as_progress(progress)
    artifact_dir = Path(artifact_dir)
    artifact = load_artifact_json(artifact_dir)
    names = backends or list(BACKENDS)
    _check_settings(batch_sizes, warmup)
    kind, index = parse_device(device)
    gpu = None if kind == "cpu" else (index or 0)
    threads = threads or physical_cores()
    cfg = artifact.preprocess
    class_names = list(artifact.class_names)
    ckpt = Path(checkpoint) if checkpoint else _source_checkpoint(artifact, artifact_dir)
    files = _test_images(split, class_names, max_images) if split is not None else []

    with tempfile.TemporaryDirectory(prefix="edgeclf-bench-") as tmp:
        workdir = Path(tmp)
        inputs_path = _save_eval_inputs(files, cfg, workdir, progress) if files else None
        request = {"artifact_dir": str(artifact_dir.resolve()), "checkpoint": str(ckpt) if ckpt else None,
                   "batch_sizes": list(batch_sizes), "warmup": warmup, "iters": iters, "seconds": seconds,
                   "threads": threads, "inputs": str(inputs_path) if inputs_path else None,
                   "input_shape": list(cfg.input_shape), "gpu": gpu}
        results = _run_backends(names, request, workdir, threads, progress)
    summary, rows = _agreement_with_eager(results, to_dict(artifact))
    sample_paths = [p for p, _ in files[:16]] or _sample_images(16)

    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "artifact": {"dir": str(artifact_dir.resolve()), "arch": artifact.arch,
                     "num_classes": len(class_names), "checkpoint": str(ckpt) if ckpt else None},
        "settings": {"backends": names, "batch_sizes": list(batch_sizes), "warmup": warmup,
                     "iters": None if seconds else iters, "seconds": seconds, "threads": threads,
                     "device": device,
                     "cpu_backends_share_threads": [n for n in names if n in CPU_BACKENDS],
                     "split": str(split) if split else None, "test_images": len(files)},
        "environment": collect_environment(threads, worker_env(threads)),
        "backends": summary,
        "rows": rows,
        "preprocessing": None,
    }
    if sample_paths:
        with progress.stage(f"preprocessing cost ({len(sample_paths)} images)"):
            doc["preprocessing"] = measure_preprocessing(sample_paths, cfg)
        if end_to_end:
            with progress.stage("end to end (Predictor.predict from a file)") as st:
                doc["end_to_end"] = measure_end_to_end(artifact_dir, sample_paths, threads)
                st.update(note=f"p50 {doc['end_to_end']['latency_ms_p50']:,.2f} ms")
    all_paths = [p for p, _ in files] or _sample_images(FILES_SAMPLE_IMAGES)
    if files_to_topk and all_paths:
        with progress.stage(f"files→top-k (predict_batch, {len(all_paths)} files, serial and pipelined)"):
            doc["files_to_topk"] = measure_files_to_topk(artifact_dir, all_paths, threads, decode_threads)
    if large_photos:
        with progress.stage(f"large photos ({large_photos} x ~12 MP, decode exact and draft)"):
            items = files[:large_photos] if files else [(p, None) for p in all_paths[:large_photos]]
            doc["large_photos"] = measure_large_photos(artifact_dir, items, threads)
    return doc


def _row_notes(backend: str, row: dict, artifact: dict) -> dict:
    """The spread flag and the precision/quantization types of one result row."""
    from .backends import BACKEND_FORMATS

    spread = row["latency_ms_p99"] / row["latency_ms_p50"] if row.get("latency_ms_p50") else None
    fmt = (artifact.get("formats") or {}).get(BACKEND_FORMATS.get(backend) or "", {})
    notes = {"p99_over_p50": spread, "busy": bool(spread is not None and spread > BUSY_SPREAD),
             "precision": fmt.get("precision", "fp32")}
    quant = fmt.get("quantization")
    if quant:
        notes["quantization"] = {k: quant.get(k) for k in ("target", "activation_type", "weight_type",
                                                           "float_nodes")}
    return notes


def measure_files_to_topk(artifact_dir: Path, paths: list[Path], threads: int, decode_threads: int | None = None,
                          batch_size: int = FILES_BATCH_SIZE, repeats: int = 2) -> dict:
    """Image files → top-3 through ``runtime.Predictor.predict_batch`` (onnxruntime, CPU, fp32),
    serial (``decode_threads=0``) and pipelined, best of ``repeats`` passes each, plus the bound.

    Returns:
        ``serial_img_per_s``, ``pipelined_img_per_s``, ``speedup`` (pipelined / serial),
        ``decode_threads``, ``intra_op_threads``, ``batch_size``, ``images``; the CPU work per image
        on one thread: ``preprocess_ms`` (decode + preprocess, median) and
        ``inference_ms_per_image`` (model only at ``batch_size`` with one intra-op thread, median),
        ``bound_img_per_s`` = cores x 1000 / (their sum) — no schedule of the two over the cores
        can beat it — and ``pipelined_over_bound``; ``model_only_img_per_s`` (model only at
        ``batch_size`` with ``threads``); ``same_predictions`` (the two paths agree exactly).
    """
    from edgeclf.runtime import Predictor

    predictor = Predictor(artifact_dir, device="cpu", intra_op_threads=threads, decode_threads=decode_threads)
    predictor.predict_batch(paths[:batch_size], batch_size=batch_size)  # warm-up: pages, session

    def best(n_threads):
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = predictor.predict_batch(paths, batch_size=batch_size, on_error="return", decode_threads=n_threads)
            times.append(time.perf_counter() - t0)
        return len(paths) / min(times), out

    serial, serial_out = best(0)
    pipelined, pipelined_out = best(predictor.decode_threads)
    prep = []
    for p in paths[:64]:
        t0 = time.perf_counter_ns()
        predictor.prepare(p)
        prep.append((time.perf_counter_ns() - t0) / 1e6)
    x = np.stack([predictor.prepare(p) for p in paths[:batch_size]])

    def model_ms_per_image(p, repeats=5):
        p.logits(x)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            p.logits(x)
            times.append((time.perf_counter_ns() - t0) / 1e6 / len(x))
        return float(np.median(times))

    model_only = 1000.0 / model_ms_per_image(predictor)
    infer_ms = model_ms_per_image(Predictor(artifact_dir, device="cpu", intra_op_threads=1))
    prep_ms = float(np.median(prep))
    cores = physical_cores()
    bound = cores * 1000.0 / (prep_ms + infer_ms)
    return {"serial_img_per_s": serial, "pipelined_img_per_s": pipelined, "speedup": pipelined / serial,
            "decode_threads": predictor.decode_threads, "intra_op_threads": threads, "batch_size": batch_size,
            "images": len(paths), "repeats": repeats, "cores": cores, "preprocess_ms": prep_ms,
            "inference_ms_per_image": infer_ms, "bound_img_per_s": bound, "pipelined_over_bound": pipelined / bound,
            "model_only_img_per_s": model_only,
            "same_predictions": serial_out == pipelined_out}


def make_large_photo(src: Path, dst: Path, pixels: int = LARGE_PHOTO_PIXELS) -> tuple[int, int]:
    """Upscale image ``src`` (same aspect ratio, bicubic) to about ``pixels`` pixels and save it as a
    quality-90 JPEG at ``dst``, like a phone camera's photo; returns its (width, height)."""
    from PIL import Image

    img = load_image(src)
    scale = (pixels / (img.width * img.height)) ** 0.5
    big = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    big.save(dst, "JPEG", quality=90)
    return big.size


def measure_large_photos(artifact_dir: Path, items: list[tuple[Path, int | None]], threads: int,
                         warmup: int = 2) -> dict:
    """``Predictor.predict`` latency on ~12-MP JPEGs (``items``' images upscaled on the fly), with
    ``decode="exact"`` and ``decode="draft"`` (the mode the model was not trained with is forced
    with ``allow_decode_override``), and the top-1 agreement between the two.

    Returns:
        ``exact``/``draft``: ``latency_ms_p50``, ``latency_ms_p99``, ``top1_accuracy`` (None without
        labels); ``draft_over_exact_p50``; ``top1_agreement``; ``images``; ``megapixels``;
        ``model_decode`` (the mode the model was trained with).
    """
    from edgeclf.runtime import Predictor

    with tempfile.TemporaryDirectory(prefix="edgeclf-large-") as tmp:
        photos, sizes = [], []
        for i, (src, _) in enumerate(items):
            dst = Path(tmp) / f"photo_{i:04d}.jpg"
            sizes.append(make_large_photo(Path(src), dst))
            photos.append(dst)
        out, top1 = {}, {}
        model_decode = None
        for mode in ("exact", "draft"):
            predictor = Predictor(artifact_dir, device="cpu", intra_op_threads=threads, decode=mode,
                                  allow_decode_override=True)
            model_decode = predictor.info.preprocess.decode
            for p in photos[:warmup]:
                predictor.predict(p)
            times, preds = [], []
            for p in photos:
                t0 = time.perf_counter_ns()
                preds.append(predictor.predict(p, top_k=1)[0].index)
                times.append((time.perf_counter_ns() - t0) / 1e6)
            labels = [lbl for _, lbl in items]
            acc = (float(np.mean([a == b for a, b in zip(preds, labels)])) if None not in labels else None)
            out[mode] = {"latency_ms_p50": float(np.median(times)), "latency_ms_p99": float(np.percentile(times, 99)),
                         "top1_accuracy": acc}
            top1[mode] = preds
    agreement = float(np.mean([a == b for a, b in zip(top1["exact"], top1["draft"])]))
    return {**out, "draft_over_exact_p50": out["draft"]["latency_ms_p50"] / out["exact"]["latency_ms_p50"],
            "top1_agreement": agreement, "images": len(photos), "model_decode": model_decode,
            "megapixels": float(np.median([w * h for w, h in sizes]) / 1e6), "intra_op_threads": threads}


def _sample_images(n: int) -> list[Path]:
    """Up to ``n`` images from the sample shipped with edgeclf (for preprocessing/e2e timing)."""
    from . import SAMPLE_DATA

    from edgeclf.runtime.walk import walk

    paths = [Path(p) for p in walk(SAMPLE_DATA).files] if SAMPLE_DATA.is_dir() else []
    return paths[:: max(1, len(paths) // n)][:n]
