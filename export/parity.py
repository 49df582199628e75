"""The gates: fp32 parity (equality within tolerance) and reduced-precision accuracy.

All comparisons are on logits of shape (N, C) float32 produced from the same preprocessed images.
Probabilities and top-k come from the runtime's own :func:`edgeclf.runtime.inference.softmax`
(float64) and :func:`~edgeclf.runtime.inference.top_k`, the code ``Predictor`` ships with. Every
number lands in ``parity.json``; :func:`failures` lists what failed, so the caller can check everything and raise
once.

fp32 gate (each of TorchScript, TorchScript after ``optimize_for_inference``, ONNX under
onnxruntime's default graph optimisations, and ONNX with them disabled, i.e. the graph exactly as
written), at every batch size in :data:`PARITY_BATCH_SIZES`:  max |Δ softmax probability| <= :data:`MAX_ABS_PROB_DIFF` and
the same top-1 class for every image.

Accuracy gate (onnx-fp16, onnx-int8): top-1 accuracy on the test split, in percentage points,
at most ``max_accuracy_drop`` below the fp32 ONNX model's on the same images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from edgeclf.runtime import schema as _schema
from edgeclf.runtime.artifact import PARITY_JSON
from edgeclf.runtime.errors import ArtifactError
from edgeclf.runtime.files import atomic_write_text
from edgeclf.runtime.inference import softmax, top_k

#: Tolerance of the fp32 gate on softmax probabilities (absolute, in [0, 1]).
MAX_ABS_PROB_DIFF = 1e-4
#: Batch sizes the gate runs each format at; none equals the export batch size (2).
PARITY_BATCH_SIZES = (1, 5)
TOPK = 3
PARITY_SCHEMA = "edgeclf.parity"
PARITY_SCHEMA_VERSION = 1


# -- parity.json -----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class GateRow:
    """One format's gate numbers (see :func:`parity_entry` and :func:`accuracy_entry`)."""

    gate: Literal["parity", "accuracy"]
    precision: Literal["fp32", "fp16", "int8"]
    images: int
    batch_sizes: tuple[int, ...]
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    top1_agreement: float
    top3_agreement: float
    top1_mismatches: int
    passed: bool
    provider: str | None = None
    #: per test image, the largest |Δ probability| against eager over its classes (and batch sizes)
    max_abs_prob_diff_per_image: tuple[float, ...] = ()
    #: int8 rows: ``target``, ``activation_type``, ``weight_type``, ``float_nodes`` (see artifact.json)
    quantization: dict[str, Any] | None = None
    # parity gate
    max_abs_prob_diff_tolerance: float | None = None
    errors: tuple[str, ...] = ()
    by_batch_size: dict[str, dict[str, Any]] = field(default_factory=dict)
    # accuracy gate
    top1_accuracy: float | None = None
    fp32_top1_accuracy: float | None = None
    accuracy_drop_points: float | None = None
    max_accuracy_drop_points: float | None = None
    top1_agreement_with_fp32: float | None = None


@dataclass(frozen=True, kw_only=True)
class GateImages:
    """The test images the gates ran on."""

    split: str
    split_sha256: str
    split_matches_checkpoint: bool
    subset: str
    count: int
    test_subset_size: int
    paths: tuple[str, ...]
    accuracy_gate_count: int


@dataclass(frozen=True, kw_only=True)
class GateTolerances:
    """The tolerances applied."""

    max_abs_prob_diff: float
    top1: str
    max_accuracy_drop_points: float


@dataclass(frozen=True, kw_only=True)
class ParityReport:
    """``parity.json`` (schema ``edgeclf.parity`` v1): every gate number of an export."""

    schema: str = PARITY_SCHEMA
    schema_version: int = PARITY_SCHEMA_VERSION
    passed: bool
    failures: tuple[str, ...]
    images: GateImages
    tolerances: GateTolerances
    export_batch_size: int
    batch_sizes: tuple[int, ...]
    reference: str
    provider: str
    formats: dict[str, GateRow]


def parse_parity_report(d: Any, source: str, strict: bool = False) -> ParityReport:
    """Validate parsed ``parity.json`` content; errors as :func:`load_parity_json`."""
    _schema.check_header(d, source, PARITY_SCHEMA, PARITY_SCHEMA_VERSION, ArtifactError,
                         fix="re-export the checkpoint with this edgeclf (`edgeclf export`)")
    return _schema.from_dict(ParityReport, d, source=source, error=ArtifactError, strict=strict)


def load_parity_json(path: str | os.PathLike) -> ParityReport:
    """Read and validate a ``parity.json`` (or the one inside an artifact directory).

    Raises:
        ArtifactError: missing, empty, truncated or malformed file; another schema; an older or
            newer ``schema_version``; a missing field or one of the wrong type. The one-line
            message names the file and the field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PARITY_JSON
    return parse_parity_report(_schema.read_json(path, ArtifactError, "parity report"), str(path))


def write_parity_json(path: str | os.PathLike, report: dict) -> ParityReport:
    """Check ``report`` against :class:`ParityReport` (no undeclared keys), then write it atomically.

    Raises:
        ArtifactError: the report does not match the declaration (a bug in the writer).
    """
    checked = parse_parity_report(report, f"{PARITY_JSON} (being written)", strict=True)
    atomic_write_text(Path(path), json.dumps(report, indent=2) + "\n")
    return checked


def run_batched(fn: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Apply ``fn`` ((B, 3, H, W) float32 → (B, C) logits) over ``inputs`` in batches of ``batch_size``.

    The last batch may be smaller. Returns float32 (N, C).
    """
    outs = [np.asarray(fn(np.ascontiguousarray(inputs[i:i + batch_size])), dtype=np.float32)
            for i in range(0, len(inputs), batch_size)]
    return np.concatenate(outs, axis=0)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Differences of ``candidate`` logits from ``reference`` logits, both (N, C).

    Returns:
        ``max_abs_logit_diff``, ``mean_abs_logit_diff``, ``max_abs_prob_diff``,
        ``mean_abs_prob_diff`` (floats), ``top1_agreement``, ``top3_agreement`` (fractions in
        [0, 1]; top-3 agrees when the same k = min(3, C) classes come first, in any order),
        ``top1_mismatches`` (count), ``images`` and ``max_abs_prob_diff_per_image`` (N floats:
        each image's largest |Δ softmax probability| over the classes, 3 significant digits — the
        distribution ``edgeclf report`` plots).
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"logits shapes differ: {reference.shape} vs {candidate.shape}")
    k = min(TOPK, reference.shape[1])
    dl = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    dp = np.abs(softmax(reference) - softmax(candidate))
    top1 = top_k(reference, 1)[:, 0] == top_k(candidate, 1)[:, 0]
    top3 = np.all(np.sort(top_k(reference, k), axis=1) == np.sort(top_k(candidate, k), axis=1), axis=1)
    return {
        "images": int(len(reference)),
        "max_abs_logit_diff": float(dl.max()) if dl.size else 0.0,
        "mean_abs_logit_diff": float(dl.mean()) if dl.size else 0.0,
        "max_abs_prob_diff": float(dp.max()) if dp.size else 0.0,
        "mean_abs_prob_diff": float(dp.mean()) if dp.size else 0.0,
        "top1_agreement": float(top1.mean()) if top1.size else 1.0,
        "top3_agreement": float(top3.mean()) if top3.size else 1.0,
        "top1_mismatches": int((~top1).sum()),
        "max_abs_prob_diff_per_image": _per_image(dp),
    }


def _per_image(dp: np.ndarray) -> list[float]:
    """Largest |Δ probability| of each row of a (N, C) array, rounded to 3 significant digits."""
    if not dp.size:
        return []
    return [float(f"{v:.3g}") for v in dp.max(axis=1)]


def parity_entry(reference: dict[int, np.ndarray], candidate: dict[int, "np.ndarray | str"],
                 tolerance: float = MAX_ABS_PROB_DIFF) -> dict:
    """fp32 gate for one format: compare at each batch size, then summarise (worst case).

    Args:
        reference: batch size → eager logits (N, C) computed at that batch size.
        candidate: batch size → the format's logits (N, C) at that batch size, or the error text
            if it failed to run at that batch size (e.g. a batch axis that is not really dynamic).
        tolerance: maximum allowed |Δ softmax probability|.
    Returns:
        The worst-case metrics over batch sizes (see :func:`compare`) plus ``gate`` = "parity",
        ``precision`` = "fp32", ``batch_sizes``, ``max_abs_prob_diff_per_image`` (per image, the
        largest over batch sizes), ``by_batch_size`` (per-size metrics, or
        ``{"error": text}``), ``errors`` (list), ``max_abs_prob_diff_tolerance`` and ``passed``.
    """
    per = {str(b): ({"error": c} if isinstance(c, str) else compare(reference[b], c))
           for b, c in sorted(candidate.items())}
    rows = [r for r in per.values() if "error" not in r]
    errors = [f"batch {b}: {r['error']}" for b, r in per.items() if "error" in r]
    nan = float("nan")
    entry = {
        "gate": "parity", "precision": "fp32",
        "images": int(len(next(iter(reference.values())))),
        "batch_sizes": sorted(candidate),
        "max_abs_logit_diff": max((r["max_abs_logit_diff"] for r in rows), default=nan),
        "mean_abs_logit_diff": float(np.mean([r["mean_abs_logit_diff"] for r in rows])) if rows else nan,
        "max_abs_prob_diff": max((r["max_abs_prob_diff"] for r in rows), default=nan),
        "mean_abs_prob_diff": float(np.mean([r["mean_abs_prob_diff"] for r in rows])) if rows else nan,
        "top1_agreement": min((r["top1_agreement"] for r in rows), default=0.0),
        "top3_agreement": min((r["top3_agreement"] for r in rows), default=0.0),
        "top1_mismatches": max((r["top1_mismatches"] for r in rows), default=0),
        "max_abs_prob_diff_tolerance": tolerance,
        "max_abs_prob_diff_per_image": ([max(v) for v in zip(*(r["max_abs_prob_diff_per_image"] for r in rows))]
                                        if rows else []),
        "errors": errors,
        "by_batch_size": per,
    }
    entry["passed"] = bool(not errors and entry["max_abs_prob_diff"] <= tolerance and entry["top1_mismatches"] == 0)
    return entry


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent (0-100) of (N, C) logits against (N,) integer labels."""
    if len(labels) == 0:
        return 0.0
    return float((top_k(logits, 1)[:, 0] == np.asarray(labels)).mean() * 100.0)


def accuracy_entry(fp32_logits: np.ndarray, logits: np.ndarray, labels: np.ndarray, precision: str,
                   max_accuracy_drop: float, batch_size: int) -> dict:
    """Accuracy gate for a reduced-precision model against the fp32 ONNX model on the same images.

    Args:
        fp32_logits, logits: (N, C) logits of the fp32 and the reduced-precision model.
        labels: (N,) true class indices from the split manifest.
        precision: ``"fp16"`` or ``"int8"``.
        max_accuracy_drop: allowed drop of top-1 accuracy, in percentage points.
        batch_size: the batch size used (recorded).
    Returns:
        :func:`compare` metrics vs fp32 plus ``top1_accuracy``, ``fp32_top1_accuracy``,
        ``accuracy_drop_points`` (fp32 − this, may be negative), ``max_accuracy_drop_points``,
        ``top1_agreement_with_fp32``, ``gate`` = "accuracy" and ``passed``.
    """
    entry = {"gate": "accuracy", "precision": precision, "batch_sizes": [batch_size],
             **compare(fp32_logits, logits)}
    acc, ref = accuracy(logits, labels), accuracy(fp32_logits, labels)
    entry.update({
        "top1_accuracy": acc,
        "fp32_top1_accuracy": ref,
        "accuracy_drop_points": ref - acc,
        "max_accuracy_drop_points": float(max_accuracy_drop),
        "top1_agreement_with_fp32": entry["top1_agreement"],
    })
    # a small epsilon so that a drop of exactly the limit (e.g. 1.0 with float rounding) passes
    entry["passed"] = bool(entry["accuracy_drop_points"] <= max_accuracy_drop + 1e-9)
    return entry


def failures(formats: dict[str, dict]) -> list[str]:
    """One text per failing format: what was measured and the tolerance, e.g.
    ``"onnx: max |Δp| 3.1e-02 > 1e-04, top-1 differs on 5/64 images"``."""
    out = []
    for name, e in formats.items():
        if e.get("passed", True):
            continue
        if e["gate"] == "parity":
            parts = list(e.get("errors", []))
            if not e["max_abs_prob_diff"] <= e["max_abs_prob_diff_tolerance"] and not e.get("errors"):  # NaN too
                parts.append(f"max |Δp| {e['max_abs_prob_diff']:.2e} > {e['max_abs_prob_diff_tolerance']:.0e}")
            if e["top1_mismatches"]:
                parts.append(f"top-1 differs on {e['top1_mismatches']}/{e['images']} images")
            out.append(f"{name}: {', '.join(parts)} (batch sizes {e['batch_sizes']})")
        else:
            out.append(f"{name}: top-1 {e['top1_accuracy']:.2f}% vs fp32 {e['fp32_top1_accuracy']:.2f}%,"
                       f" drop {e['accuracy_drop_points']:.2f} > {e['max_accuracy_drop_points']:.2f} points")
    return out


def render_table(report: dict):
    """A ``rich.table.Table`` of the report's formats (one row each) for the terminal.

    Fits 80 columns: the largest differences, top-1/top-3 agreement with the eager model, and for
    accuracy gates top-1 accuracy vs fp32 ONNX in % (the means are in parity.json); long format
    names are folded; each gate's images and batch sizes are in the caption.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    ok = report.get("passed")
    gates: dict[str, str] = {}
    for e in report["formats"].values():
        gates.setdefault(e["gate"], f"{e['gate']} gate: {e['images']} test images, batch sizes"
                                    f" {','.join(map(str, e['batch_sizes']))}")
    table = Table(title=f"export gates — {'PASSED' if ok else 'FAILED'}", title_justify="left",
                  caption=" · ".join(gates.values()), caption_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    table.add_column("format", overflow="fold")
    for col in ("gate", "max Δp", "max Δlogit", "top-1", "top-3", "acc/fp32 %", "result"):
        table.add_column(col, justify="left" if col in ("gate", "result") else "right", no_wrap=True)
    for name, e in report["formats"].items():
        acc = f"{e['top1_accuracy']:.1f}/{e['fp32_top1_accuracy']:.1f}" if e["gate"] == "accuracy" else ""
        table.add_row(
            name, e["gate"], f"{e['max_abs_prob_diff']:.1e}", f"{e['max_abs_logit_diff']:.1e}",
            f"{e['top1_agreement'] * 100:.1f}%", f"{e['top3_agreement'] * 100:.1f}%", acc,
            Text("pass", style="green") if e["passed"] else Text("FAIL", style="red"),
        )
    return table
