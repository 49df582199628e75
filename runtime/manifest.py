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

Paths are relative to ``data_root`` with ``/`` separators, sorted within each split. A path that
is not valid UTF-8 on disk is written with JSON ``\\udcXX`` escapes for its undecodable bytes
(Python's PEP 383 ``surrogateescape``, what ``os.fsdecode`` gives; ``json.loads`` +
``os.fsencode`` give the original bytes back), so the file stays valid UTF-8 and lossless.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class SplitManifest:
    """In-memory form of ``split.json``; see the module docstring for the schema.

    Attributes:
        data_root: folder the entry paths are relative to.
        classes: ordered class names; a label is an index into this list.
        splits: ``{"train": [...], "val": [...], "test": [...]}`` of :class:`ManifestEntry`.
        sha256: hex digest of the manifest file's bytes (``""`` if not read from / written to a file).
    """

    data_root: Path
    classes: list[str]
    seed: int
    ratios: dict[str, float]
    splits: dict[str, list[ManifestEntry]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: list[dict] = field(default_factory=list)
    excluded_counts: dict[str, int] = field(default_factory=dict)
    sha256: str = ""

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
    manifest.sha256 = hashlib.sha256(text).hexdigest()
    return manifest.sha256


def load_manifest(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> SplitManifest:
    """Read and validate a ``split.json``.

    Args:
        path: the manifest file.
        data_root: override the recorded data root (the images were moved or copied elsewhere).
    Raises:
        ManifestError: missing/unreadable file, invalid JSON, another schema or version, or
            entries whose label is outside the class list. The message names the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"{path}: cannot read split manifest ({err.strerror or err}); create one with `edgeclf split`") from err
    try:
        d = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: not a JSON split manifest ({err})") from err
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: not an edgeclf split manifest (schema {SCHEMA!r} expected)")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{path}: split manifest schema_version {d.get('schema_version')!r} is not supported"
            f" (this edgeclf reads {SCHEMA_VERSION}); re-run `edgeclf split`"
        )
    try:
        classes = list(d["classes"])
        splits = {
            s: [ManifestEntry(str(e["path"]), int(e["label"]), str(e["sha256"])) for e in d["splits"][s]]
            for s in SUBSETS
        }
        manifest = SplitManifest(
            data_root=Path(data_root if data_root is not None else d["data_root"]),
            classes=classes,
            seed=int(d["seed"]),
            ratios={k: float(v) for k, v in d["ratios"].items()},
            splits=splits,
            counts=d.get("counts", {}),
            excluded=d.get("excluded", []),
            excluded_counts=d.get("excluded_counts", {}),
            sha256=hashlib.sha256(raw).hexdigest(),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"{path}: malformed split manifest ({type(err).__name__}: {err})") from err
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise ManifestError(f"{path}: class names {duplicates} appear more than once; re-run `edgeclf split`")
    if len(classes) < 2:
        raise ManifestError(f"{path}: {len(classes)} class(es) {classes}; a classifier needs at least 2")
    for s in SUBSETS:
        for e in splits[s]:
            if not 0 <= e.label < len(classes):
                raise ManifestError(f"{path}: entry {e.path} has label {e.label} outside 0..{len(classes) - 1}")
    return manifest
