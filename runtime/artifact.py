"""The export artifact: file layout, ``artifact.json`` schema and the ONNX metadata contract.

Written by ``edgeclf export`` (:mod:`export`), read by :class:`runtime.Predictor` and ``bench``.
An artifact directory holds::

    model.onnx            fp32 ONNX, input "input" float32 [N, 3, H, W], output "logits" [N, classes]
    model.torchscript.pt  TorchScript (frozen, eval), metadata JSON as extra file "edgeclf.json"
    model.fp16.onnx       optional, fp16 weights (GPU execution providers)
    model.int8.onnx       optional, static QDQ int8 (onnxruntime quantization)
    artifact.json         formats with file name/sha256/size, I/O spec, classes, preprocessing, …
    parity.json           the parity/accuracy gate report

Every ONNX file also carries the essentials in ``metadata_props`` (string key → string value), so
a bare ``.onnx`` file is usable on its own; :data:`METADATA_KEYS` lists them. JSON-valued keys hold
JSON text (e.g. ``class_names`` = ``'["Leopards", "airplanes"]'``).

``artifact.json`` is declared once, by :class:`ArtifactDescription` (and the dataclasses it
nests); :func:`load_artifact_json` validates a file against it, :func:`write_artifact_json` checks
what export writes against it, and :func:`artifact_json_schema` derives the JSON Schema shipped as
``schemas/artifact.schema.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import schema as _schema
from ._version import __version__
from .errors import ArtifactError, UsageError
from .files import atomic_write_text, json_dumps
from .preprocess import PreprocessConfig

SCHEMA = "edgeclf.artifact"
SCHEMA_VERSION = 1
ARTIFACT_JSON = "artifact.json"
PARITY_JSON = "parity.json"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: TorchScript extra file holding :meth:`ModelInfo.to_metadata` as JSON.
TORCHSCRIPT_EXTRA_FILE = "edgeclf.json"

#: format key → file name inside an artifact directory.
FORMAT_FILES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "onnx-fp16": "model.fp16.onnx",
    "onnx-int8": "model.int8.onnx",
}
#: precision name (Predictor argument) → format key.
PRECISION_FORMATS = {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}

#: Keys written to ONNX ``metadata_props`` (all values are strings).
METADATA_KEYS = (
    "edgeclf_schema_version",  # "1"
    "class_names",             # JSON list, index = output column
    "mean", "std",             # JSON lists of 3 floats, RGB
    "resize_size", "crop_size",  # decimal integers
    "interpolation",           # "bilinear"
    "color_order",             # "RGB"
    "layout",                  # "NCHW"
    "output",                  # "logits"
    "softmax_applied",         # "false"
    "arch",                    # e.g. "efficientnet_lite0"
    "source_checkpoint_sha256",
    "edgeclf_version",
)


@dataclass(frozen=True)
class ModelInfo:
    """What an application needs to use an exported model, besides the weights.

    Attributes:
        class_names: ordered labels; column ``i`` of the logits is ``class_names[i]``.
        preprocess: the :class:`PreprocessConfig` the model was trained and validated with.
        arch: backbone name from the training registry (e.g. ``"resnet50"``).
        source_checkpoint_sha256: sha256 of the ``.pt`` checkpoint the artifact came from.
        edgeclf_version: version of edgeclf that exported it.
        output: what the model outputs, always ``"logits"`` (softmax not applied).
    """

    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    arch: str
    source_checkpoint_sha256: str
    edgeclf_version: str = __version__
    output: str = "logits"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` mapping (every value a string)."""
        p = self.preprocess
        return {
            "edgeclf_schema_version": str(SCHEMA_VERSION),
            "class_names": json_dumps(list(self.class_names)),  # UTF-8-safe for non-UTF-8 folder names
            "mean": json.dumps(list(p.mean)),
            "std": json.dumps(list(p.std)),
            "resize_size": str(p.resize_size),
            "crop_size": str(p.crop_size),
            "interpolation": p.interpolation,
            "color_order": p.color_order,
            "layout": p.layout,
            "decode": p.decode,
            "output": self.output,
            "softmax_applied": "false",
            "arch": self.arch,
            "source_checkpoint_sha256": self.source_checkpoint_sha256,
            "edgeclf_version": self.edgeclf_version,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> "ModelInfo":
        """Parse ONNX ``metadata_props`` (e.g. onnxruntime's ``custom_metadata_map``).

        Raises:
            ArtifactError: keys missing or malformed; the message names ``source`` and the keys.
        """
        missing = [k for k in METADATA_KEYS if k not in meta]
        if missing:
            raise ArtifactError(
                f"{source}: ONNX file has no edgeclf metadata (missing {', '.join(missing)});"
                " export it with `edgeclf export`"
            )
        try:
            preprocess = PreprocessConfig(
                crop_size=int(meta["crop_size"]),
                resize_size=int(meta["resize_size"]),
                mean=tuple(json.loads(meta["mean"])),
                std=tuple(json.loads(meta["std"])),
                interpolation=meta["interpolation"],
                color_order=meta["color_order"],
                layout=meta["layout"],
                decode=meta.get("decode", "exact"),  # not written before the decode option existed
            )
            class_names = json.loads(meta["class_names"])
            if not isinstance(class_names, list) or not class_names or \
                    not all(isinstance(c, str) and c for c in class_names):
                raise ValueError(f"class_names must be a list of non-empty strings, got {meta['class_names']!r:.80}")
            class_names = tuple(class_names)
        except (ValueError, TypeError, UsageError) as err:
            raise ArtifactError(f"{source}: malformed edgeclf metadata ({err})") from err
        if meta["output"] != "logits" or meta["softmax_applied"] != "false":
            raise ArtifactError(f"{source}: output {meta['output']!r} is not raw logits")
        return cls(
            class_names=class_names,
            preprocess=preprocess,
            arch=meta["arch"],
            source_checkpoint_sha256=meta["source_checkpoint_sha256"],
            edgeclf_version=meta["edgeclf_version"],
        )


# -- artifact.json -------------------------------------------------------------------------------

#: ``$id`` of the shipped JSON Schema of ``artifact.json``.
ARTIFACT_SCHEMA_ID = f"urn:edgeclf:schema:{SCHEMA}:{SCHEMA_VERSION}"
#: Where the generated schema ships (package data of ``edgeclf.runtime``).
ARTIFACT_SCHEMA_FILE = Path(__file__).parent / "schemas" / "artifact.schema.json"


@dataclass(frozen=True, kw_only=True)
class FormatFile:
    """One model file of the artifact (an entry of ``formats``)."""

    file: str = field(metadata={"doc": "file name inside the artifact directory"})
    sha256: str
    size_bytes: int
    precision: Literal["fp32", "fp16", "int8"]
    opset: int | None = None
    exporter: str | None = None
    converter: str | None = None
    io_dtype: str | None = None
    loader: str | None = None
    extra_file: str | None = None
    frozen: bool | None = None
    quantization: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """The model's input or output tensor: name, dtype and shape (``"N"`` = any batch size)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    layout: str | None = None
    color_order: str | None = None
    meaning: str | None = None
    softmax_applied: bool | None = None


@dataclass(frozen=True, kw_only=True)
class SourceCheckpoint:
    """The training checkpoint the artifact was exported from."""

    path: str
    sha256: str
    split_sha256: str
    epoch: int | None = None
    weights: str | None = None


@dataclass(frozen=True, kw_only=True)
class GateSummary:
    """One format's gate result, summarised (the full numbers are in ``parity.json``)."""

    gate: Literal["parity", "accuracy"]
    max_abs_prob_diff: float
    top1_agreement: float
    top1_accuracy: float | None = None
    accuracy_drop_points: float | None = None


@dataclass(frozen=True, kw_only=True)
class ParitySummary:
    """The export gates, summarised; ``report`` names the full report file (``parity.json``)."""

    passed: bool
    images: int
    batch_sizes: tuple[int, ...]
    max_abs_prob_diff_tolerance: float
    formats: dict[str, GateSummary]
    report: str = PARITY_JSON


@dataclass(frozen=True, kw_only=True)
class ArtifactDescription:
    """``artifact.json`` (schema ``edgeclf.artifact``): what ``edgeclf export`` wrote and how to use it.

    Attributes:
        formats: format key (:data:`FORMAT_FILES`) → its file, sha256, size and precision.
        input, output: tensor specs (``input`` float32 [N, 3, H, W], ``output`` logits [N, C]).
        class_names: ordered labels, index = logits column; ``num_classes`` their count.
        preprocess: the model's :class:`PreprocessConfig`.
        arch: backbone name; ``metadata``: the ONNX ``metadata_props`` written.
        source_checkpoint: where the weights came from; ``opset``: ONNX opset (``None``
            without ONNX); ``parity``: gate summary; ``versions``: library versions at export;
        created_utc: ISO 8601 time; ``export_seconds``: wall time of the export.
    """

    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    created_utc: str
    formats: dict[str, FormatFile]
    input: TensorSpec
    output: TensorSpec
    class_names: tuple[str, ...]
    num_classes: int
    preprocess: PreprocessConfig
    arch: str
    metadata: dict[str, str]
    source_checkpoint: SourceCheckpoint
    opset: int | None
    parity: ParitySummary
    versions: dict[str, str] = field(default_factory=dict)
    export_seconds: float | None = None

    def __post_init__(self):
        if self.num_classes != len(self.class_names):
            raise ValueError(f"num_classes {self.num_classes} but {len(self.class_names)} class_names")
        if not self.formats:
            raise ValueError("formats is empty: the artifact has no model file")
        unknown = sorted(set(self.formats) - set(FORMAT_FILES))
        if unknown:
            raise ValueError(f"formats has unknown keys {unknown}; known: {', '.join(FORMAT_FILES)}")

    def to_dict(self) -> dict:
        """The JSON-able dict written as ``artifact.json``."""
        return _schema.to_dict(self)


def artifact_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``artifact.json``, derived from :class:`ArtifactDescription`."""
    return _schema.json_schema(ArtifactDescription, schema_id=ARTIFACT_SCHEMA_ID, title="edgeclf artifact.json",
                               consts={"schema": SCHEMA, "schema_version": SCHEMA_VERSION})


def parse_artifact_description(d: Any, source: str, strict: bool = False) -> ArtifactDescription:
    """Validate parsed ``artifact.json`` content; see :func:`load_artifact_json` for the errors."""
    _schema.check_header(d, source, SCHEMA, SCHEMA_VERSION, ArtifactError,
                         fix="re-export the checkpoint with this edgeclf (`edgeclf export`)")
    return _schema.from_dict(ArtifactDescription, d, source=source, error=ArtifactError, strict=strict)


def load_artifact_json(artifact_dir: str | os.PathLike) -> ArtifactDescription:
    """Read and validate ``ARTIFACT_DIR/artifact.json``.

    Returns:
        The :class:`ArtifactDescription`.
    Raises:
        ArtifactError: missing folder or file; empty, truncated or malformed JSON; another schema;
            an older or newer ``schema_version``; a missing field or one of the wrong type. The
            one-line message names the file and the field (e.g.
            ``…/artifact.json: field 'preprocess': missing``).
    """
    if not Path(artifact_dir).is_dir():
        raise ArtifactError(f"{artifact_dir}: no such artifact directory; create one with `edgeclf export`",
                            source=str(artifact_dir))
    path = Path(artifact_dir) / ARTIFACT_JSON
    d = _schema.read_json(path, ArtifactError, "artifact description",
                          "; is this an edgeclf artifact directory (made by `edgeclf export`)?")
    return parse_artifact_description(d, str(path))


def write_artifact_json(artifact_dir: str | os.PathLike, description: dict) -> ArtifactDescription:
    """Check ``description`` against :class:`ArtifactDescription` (no undeclared keys either), then
    write it as ``ARTIFACT_DIR/artifact.json`` atomically, keys in the given order.

    Raises:
        ArtifactError: ``description`` does not match the declaration (a bug in the writer).
    """
    checked = parse_artifact_description(description, f"{ARTIFACT_JSON} (being written)", strict=True)
    atomic_write_text(Path(artifact_dir) / ARTIFACT_JSON,
                      json_dumps(description, indent=2) + "\n")
    return checked


def resolve_model_file(artifact: str | os.PathLike, precision: str = "fp32") -> Path:
    """Find the ONNX file for ``precision`` in an artifact directory, or accept an ``.onnx`` path.

    Args:
        artifact: an artifact directory or a ``.onnx`` file.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (ignored for a file path).
    Raises:
        UsageError: unknown precision.
        ArtifactError: the directory lacks that ONNX file (the message lists what it has).
    """
    if precision not in PRECISION_FORMATS:
        raise UsageError(f"precision={precision!r}: use one of {', '.join(PRECISION_FORMATS)}")
    if not isinstance(artifact, (str, os.PathLike)) or not os.fspath(artifact):
        raise UsageError(f"artifact={artifact!r}: give an artifact directory (edgeclf export) or an .onnx file")
    artifact = Path(artifact)
    if artifact.is_file():
        return artifact
    if not artifact.exists():
        raise ArtifactError(f"{artifact}: no such artifact directory or .onnx file")
    fmt = PRECISION_FORMATS[precision]
    path = artifact / FORMAT_FILES[fmt]
    if not path.is_file():
        present = sorted(p.name for p in artifact.iterdir())
        hint = f" (re-export with --{precision})" if precision != "fp32" else ""
        if "best.pt" in present or "last.pt" in present:
            hint += (f"; this looks like a training run folder: create an artifact with"
                     f" `edgeclf export {artifact / 'best.pt'} --out ARTIFACT_DIR`")
        raise ArtifactError(f"{artifact}: missing {path.name}{hint}; the directory holds {present or 'nothing'}")
    return path
