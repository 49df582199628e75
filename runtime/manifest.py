"""The split manifest (``split.json``): which file is in train / val / test, and why others are not.

Written by ``edgeclf split`` (:mod:`train.split`), read by training, evaluation, export parity
gates and the benchmark. It is self-describing JSON with a schema version, so any later stage can
run from it on another machine (pass ``data_root=`` when the images moved).

Schema (version 1)::

    {
      "schema": "edgeclf.split", "schema_version": 1,
      "data_root": "/abs/path/101_ObjectCategories",
      "classes": ["Leopards", "airplanes", ...],          # index = label
      "seed": 0, "ratios": {"train": 0.75, "val": 0.125, "test": 0.125},
      "splits": {"train": [{"path": "Leopards/image_0001.jpg", "label": 0,
                             "sha256": "…"}, …], "val": […], "test": […]},
      "counts": {"Leopards": {"train": 150, "val": 25, "test": 25}, …},
      "excluded": [{"path": "camera/.DS_Store", "reason": "hidden"}, …],
      "excluded_counts": {"hidden": 1, …}
    }

Paths are relative to ``data_root`` with ``/`` separators, sorted within each split.
:class:`SplitManifest` is the one typed definition of this file; :func:`load_manifest` validates
every field against it (:mod:`edgeclf.runtime.schema`) and names the file and the field of the
first problem.
A path that is not valid UTF-8 on disk is written with JSON ``\\udcXX`` escapes for its undecodable bytes
(Python's PEP 383 ``surrogateescape``, what ``os.fsdecode`` gives; ``json.loads`` +
``os.fsencode`` give the original bytes back), so the file stays valid UTF-8 and lossless.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import schema as _schema
from .errors import ManifestError, UsageError
from .files import atomic_write_bytes, file_sha256, json_dumps  # noqa: F401  (file_sha256: re-exported)

SCHEMA = "edgeclf.split"
SCHEMA_VERSION = 1
SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestEntry:
    """One image of a split: ``path`` relative to the data root, integer ``label``, file ``sha256``."""

    path: str
    label: int
    sha256: str


class ManifestFile(tuple):
    """One ``(absolute path, label)`` pair of :meth:`SplitManifest.files` (unpacks as a 2-tuple),
    carrying the file's recorded ``sha256`` (hex) so readers can verify what they read."""

    def __new__(cls, path: Path, label: int, sha256: str | None = None):
        obj = super().__new__(cls, (path, label))
        obj.sha256 = sha256
        return obj


@dataclass(frozen=True)
class SplitManifest:
    """``split.json`` (schema ``edgeclf.split`` v1); see the module docstring for the layout.

    Attributes:
        data_root: folder the entry paths are relative to.
        classes: ordered class names; a label is an index into this list.
        seed: the split's random seed.
        ratios: requested shares ``{"train": 0.75, "val": 0.125, "test": 0.125}``.
        splits: ``{"train": [...], "val": [...], "test": [...]}`` of :class:`ManifestEntry`.
        counts: images per class and subset.
        excluded: files left out, each ``{"path", "reason", ...}``.
        excluded_counts: excluded files per reason.
        sha256: hex digest of the manifest file's bytes (``""`` if not read from a file); not
            stored in the file.
    """

    data_root: Path
    classes: list[str]
    seed: int
    ratios: dict[str, float]
    splits: dict[str, list[ManifestEntry]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    excluded_counts: dict[str, int] = field(default_factory=dict)
    sha256: str = field(default="", compare=False, metadata={"json": False})

    def entries(self, subset: str) -> list[ManifestEntry]:
        """Entries of ``subset`` (``train``, ``val`` or ``test``); ``UsageError`` for another name."""
        if subset not in SUBSETS:
            raise UsageError(f"subset={subset!r}: use one of {', '.join(SUBSETS)}")
        return self.splits[subset]

    def files(self, subset: str) -> list[ManifestFile]:
        """(absolute path, label) pairs of ``subset``, in manifest order, each with ``.sha256``."""
        return [ManifestFile(self.data_root / e.path, e.label, e.sha256) for e in self.entries(subset)]

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "data_root": str(self.data_root),
            "classes": list(self.classes),
            "seed": self.seed,
            "ratios": dict(self.ratios),
            "splits": {
                s: [{"path": e.path, "label": e.label, "sha256": e.sha256} for e in self.splits[s]]
                for s in SUBSETS
            },
            "counts": self.counts,
            "excluded": self.excluded,
            "excluded_counts": self.excluded_counts,
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, 1-space indent, trailing newline): byte-stable.

        Always valid UTF-8: a file name that is not valid UTF-8 (byte 0xE9) is written as the
        JSON escape ``\\udce9`` of its PEP 383 surrogate, which reads back to the same ``str``
        (:func:`runtime.files.json_dumps`)."""
        return json_dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"


def write_manifest(manifest: SplitManifest, out: str | os.PathLike) -> str:
    """Write ``manifest`` to ``out`` atomically (temp file + rename); return its sha256.

    Raises:
        UsageError: ``out``'s folder does not exist or is not writable (nothing is written).
    """
    out = Path(out)
    text = manifest.to_json().encode("utf-8")
    try:
        atomic_write_bytes(out, text)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write the manifest ({err.strerror or err})") from err
    return hashlib.sha256(text).hexdigest()


def load_manifest(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> SplitManifest:
    """Read and validate a ``split.json``.

    Args:
        path: the manifest file.
        data_root: override the recorded data root (the images were moved or copied elsewhere).
    Raises:
        ManifestError: missing/unreadable file, empty/truncated/invalid JSON, another schema, an
            older or newer schema version, a missing field or one of the wrong type, duplicate or
            fewer than 2 classes, or entries whose label is outside the class list. The one-line
            message names the file and the field.
    """
    path = Path(path)
    hint = "; create one with `edgeclf split`"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"{path}: cannot read split manifest ({err.strerror or err}){hint}",
                            source=str(path)) from err
    d = _schema.parse_json(raw, path, ManifestError, "split manifest")
    _schema.check_header(d, str(path), SCHEMA, SCHEMA_VERSION, ManifestError, fix="re-run `edgeclf split`")
    if data_root is not None:
        d = {**d, "data_root": str(data_root)}
    manifest = _schema.from_dict(SplitManifest, d, source=str(path), error=ManifestError)
    manifest = replace(manifest, sha256=hashlib.sha256(raw).hexdigest())
    classes = manifest.classes
    missing = [s for s in SUBSETS if s not in manifest.splits]
    if missing:
        raise ManifestError(f"{path}: field 'splits.{missing[0]}': missing", source=str(path), field=f"splits.{missing[0]}")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise ManifestError(f"{path}: class names {duplicates} appear more than once; re-run `edgeclf split`",
                            source=str(path), field="classes")
    if len(classes) < 2:
        raise ManifestError(f"{path}: {len(classes)} class(es) {classes}; a classifier needs at least 2",
                            source=str(path), field="classes")
    for s in SUBSETS:
        for e in manifest.splits[s]:
            if not 0 <= e.label < len(classes):
                raise ManifestError(f"{path}: entry {e.path} has label {e.label} outside 0..{len(classes) - 1}",
                                    source=str(path), field=f"splits.{s}")
    return manifest
