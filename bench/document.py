"""``bench.json`` (schema ``edgeclf.bench`` v1): the one typed definition of a bench result.

:func:`bench.runner.run_bench` builds the document, :func:`bench.report.write_json` checks it
against :class:`BenchDocument` before writing, :func:`load_bench_json` validates a file (a missing
field, a wrong type, an older or newer ``schema_version`` → one :class:`FormatError` line naming
the file and the field), and :func:`bench_json_schema` derives the JSON Schema shipped as
``schemas/bench.schema.json``. Units are in the key names (``_ms``, ``_mib``, ``_img_per_s``);
accuracies and agreements are fractions in [0, 1].

Torch-free: imports only the runtime's schema helpers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgeclf.runtime import schema as _schema
from edgeclf.runtime.errors import FormatError

SCHEMA = "edgeclf.bench"
SCHEMA_VERSION = 1
#: ``$id`` of the shipped JSON Schema of ``bench.json``.
BENCH_SCHEMA_ID = f"urn:edgeclf:schema:{SCHEMA}:{SCHEMA_VERSION}"
#: Where the generated schema ships (package data of ``edgeclf.bench``).
BENCH_SCHEMA_FILE = Path(__file__).parent / "schemas" / "bench.schema.json"


@dataclass(frozen=True, kw_only=True)
class BenchArtifact:
    """The artifact benchmarked."""

    dir: str
    arch: str | None
    num_classes: int
    checkpoint: str | None


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """How the run was made (identical for every backend)."""

    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    warmup: int
    iters: int | None
    seconds: float | None
    threads: int
    cpu_backends_share_threads: tuple[str, ...]
    split: str | None
    test_images: int
    #: ``--device``: ``auto``, ``cpu`` (GPU backends skipped), ``cuda`` or ``cuda:N``
    device: str = "auto"


@dataclass(frozen=True, kw_only=True)
class BenchEnvironment:
    """The machine and libraries the numbers were measured on."""

    cpu_model: str
    cpu_logical_cores: int | None
    cpu_physical_cores: int | None
    gpus: tuple[dict[str, Any], ...]
    platform: str
    python: str
    versions: dict[str, str | None]
    onnxruntime_available_providers: tuple[str, ...]
    threads: int
    env: dict[str, str]
    #: CPU features that decide int8 speed (avx2, avx512f, avx512_vnni, avx_vnni, amx_*, ARM dotprod/i8mm)
    cpu_flags: dict[str, bool] = field(default_factory=dict)
    #: timing variables of the calling shell that differ from what the workers got
    caller_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BackendResult:
    """One backend: status (``ok``, ``skipped`` with the reason, ``failed``), cold start, memory, accuracy."""

    backend: str | None = None
    status: Literal["ok", "skipped", "failed"]
    reason: str | None = None
    import_ms: float | None = None
    load_ms: float | None = None
    providers: tuple[str, ...] | None = None
    device: str | None = None
    first_inference_ms: float | None = None
    peak_rss_mib: float | None = None
    peak_gpu_mem_mib: float | None = None
    accuracy_top1: float | None = None
    num_images: int | None = None
    top1_agreement_with_eager: float | None = None
    traceback: str | None = None
    #: what the worker process really ran with: ``env`` (timing variables), ``threads_used``
    #: (read back from the framework), ``pid``
    worker: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class BenchRow:
    """Latency percentiles (per batch, ms) and throughput of one (backend, batch size)."""

    backend: str
    batch_size: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_mean: float
    latency_ms_min: float
    latency_ms_per_image_p50: float
    throughput_img_per_s: float
    iters: int
    warmup: int
    #: p99 / p50; ``busy`` when above the threshold (the machine was not quiet during the row)
    p99_over_p50: float | None = None
    busy: bool = False
    precision: str = "fp32"
    #: int8 rows: ``target``, ``activation_type``, ``weight_type``, ``float_nodes``
    quantization: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class PreprocessingTiming:
    """Per-image cost of the runtime's preprocessing, medians in ms."""

    decode_ms_p50: float
    resize_normalize_ms_p50: float
    preprocess_ms_p50: float
    images: int
    repeats: int


@dataclass(frozen=True, kw_only=True)
class EndToEnd:
    """``Predictor.predict`` from an image file to top-3, ms."""

    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_mean: float
    images: int
    providers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class BenchDocument:
    """``bench.json``: every backend x batch size of one run, side by side, with its environment."""

    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    created_utc: str
    artifact: BenchArtifact
    settings: BenchSettings
    environment: BenchEnvironment
    backends: dict[str, BackendResult]
    rows: tuple[BenchRow, ...]
    preprocessing: PreprocessingTiming | None
    end_to_end: EndToEnd | None = None
    #: image files → top-3 through Predictor.predict_batch, serial and pipelined, with the bound
    #: (see :func:`edgeclf.bench.runner.measure_files_to_topk`)
    files_to_topk: dict[str, Any] | None = None
    #: ~12-MP JPEGs, decode exact vs draft (see :func:`edgeclf.bench.runner.measure_large_photos`)
    large_photos: dict[str, Any] | None = None

    def __post_init__(self):
        unknown = sorted({r.backend for r in self.rows} - set(self.backends))
        if unknown:
            raise ValueError(f"rows name backends {unknown} that are not in 'backends'")

    def to_dict(self) -> dict:
        """The plain JSON-able dict (what ``bench.json`` holds)."""
        return _schema.to_dict(self)


def bench_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``bench.json``, derived from :class:`BenchDocument`."""
    return _schema.json_schema(BenchDocument, schema_id=BENCH_SCHEMA_ID, title="edgeclf bench.json",
                               consts={"schema": SCHEMA, "schema_version": SCHEMA_VERSION})


def parse_bench_document(d: Any, source: str, strict: bool = False) -> BenchDocument:
    """Validate a parsed bench document; errors as :func:`load_bench_json`."""
    _schema.check_header(d, source, SCHEMA, SCHEMA_VERSION, FormatError,
                         fix="re-run `edgeclf bench` with this edgeclf")
    return _schema.from_dict(BenchDocument, d, source=source, strict=strict)


def load_bench_json(path: str | os.PathLike) -> BenchDocument:
    """Read and validate a ``bench.json`` written by ``edgeclf bench --json``.

    Raises:
        FormatError: missing, empty, truncated or malformed file; another schema; an older or
            newer ``schema_version``; a missing field or one of the wrong type. The one-line
            message names the file and the field.
    """
    return parse_bench_document(_schema.read_json(path, FormatError, "bench result",
                                                  "; write one with `edgeclf bench ARTIFACT_DIR --json FILE`"),
                                str(path))


def schema_files() -> dict[Path, str]:
    """The shipped JSON Schema files and the text the code generates for each today."""
    from edgeclf.runtime.artifact import ARTIFACT_SCHEMA_FILE, artifact_json_schema

    return {ARTIFACT_SCHEMA_FILE: _schema.schema_text(artifact_json_schema()),
            BENCH_SCHEMA_FILE: _schema.schema_text(bench_json_schema())}


def write_schema_files() -> list[Path]:
    """Regenerate ``runtime/schemas/artifact.schema.json`` and ``bench/schemas/bench.schema.json``
    from the dataclass definitions (``python -m edgeclf.bench.document``); return the paths."""
    from edgeclf.runtime.files import atomic_write_text

    for path, text in schema_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return list(schema_files())


if __name__ == "__main__":
    for p in write_schema_files():
        print(p)
