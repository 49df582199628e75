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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ._version import __version__
from .errors import ArtifactError, UsageError
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
            "class_names": json.dumps(list(self.class_names), ensure_ascii=False),
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
            class_names = tuple(json.loads(meta["class_names"]))
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


def load_artifact_json(artifact_dir: str | os.PathLike) -> dict:
    """Read ``ARTIFACT_DIR/artifact.json``.

    Raises:
        ArtifactError: missing folder or file, invalid JSON, or another schema; names the path.
    """
    path = Path(artifact_dir) / ARTIFACT_JSON
    if not Path(artifact_dir).is_dir():
        raise ArtifactError(f"{artifact_dir}: no such artifact directory; create one with `edgeclf export`")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read ({err.strerror or err}); is this an edgeclf artifact directory?") from err
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: invalid JSON ({err})") from err
    if d.get("schema") != SCHEMA or d.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: not an edgeclf artifact description (schema {SCHEMA!r} v{SCHEMA_VERSION})")
    return d


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
