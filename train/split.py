"""Reproducible, stratified, read-only train / val / test split of an ImageFolder tree.

:func:`split_dataset` walks ``DATA_DIR/<class>/...``, checks every file (hidden? image suffix?
zero bytes? decodes?), hashes the usable ones and assigns them to train / val / test. It returns a
:class:`runtime.manifest.SplitManifest`; :func:`runtime.manifest.write_manifest` writes it. Files
are only ever opened with ``"rb"``: nothing in the tree is moved, copied, renamed or written.

Determinism. The result depends only on the bytes and relative paths of the files, the seed and
the ratios — never on the order the filesystem lists files in, the machine, or numpy's RNG:

* files are identified by their path relative to ``DATA_DIR`` (``/`` separators) and sorted;
* byte-identical files of a class form one *group* (same sha256), the unit of assignment, so all
  copies of an image land in the same split (no leakage between train and test);
* groups are shuffled by sorting on ``sha256("edgeclf-split\\0{seed}\\0{class}\\0{content sha256}")``
  (a keyed hash shuffle): stable across Python/numpy versions and platforms, and a class's split
  does not change when other classes are added or removed, or when its files are renamed;
* the first ``n_train`` shuffled groups go to train, the next ``n_val`` to val, the rest to test.

Rounding rule (:func:`allocate`). A class with ``n`` groups gets ``floor(n * ratio)`` groups per
split; the groups left over go, one each, to the splits with the largest fractional remainders
(ties: train, then val, then test) — the largest-remainder (Hamilton) method. Then every split
must hold at least one group: a split at 0 takes one from the split holding most (ties: train
first). So every class with >= 3 distinct usable images has >= 1 train, >= 1 val and >= 1 test
image; e.g. n=3 → 1/1/1, n=50 → 38/6/6, n=91 → 68/12/11, n=200 → 150/25/25 at 0.75/0.125/0.125.

Classes. Default: every sub-folder of ``DATA_DIR`` sorted by name (Python string order, as
torchvision's ``ImageFolder``), except hidden folders (``.x``), ``__MACOSX`` and
``BACKGROUND_Google`` (Caltech 101's clutter folder), which are classes only when named in
``classes``. With ``classes`` the label order is the order given. Files in nested sub-folders of a
class folder belong to that class (as in ``ImageFolder``).

Excluded files (reported in the manifest's ``excluded`` / ``excluded_counts``, never fatal).
Folders are walked by :func:`runtime.walk.walk` — the walker every stage shares: links are
followed, each real folder is walked once, the image extensions are Pillow's:

=========================  ==================================================================
reason                     what
=========================  ==================================================================
hidden                     a name (or a folder on its path) starting with ``.``: ``.DS_Store``,
                           AppleDouble ``._x.jpg``, ``.ipynb_checkpoints/...``
unsupported_extension      an extension Pillow does not open here (:func:`runtime.walk.image_extensions`):
                           ``Thumbs.db``, ``notes.txt``; the detail names the extension
empty                      zero bytes
undecodable                does not decode with Pillow: truncated, corrupt, not really an image
too_large                  more than :data:`runtime.image.DEFAULT_MAX_PIXELS` pixels
extreme_aspect_ratio       longer / shorter side above :data:`runtime.image.MAX_ASPECT_RATIO`
                           (e.g. a 1 x 20,000 strip): resizing it would need gigabytes
duplicate_across_classes   the same bytes in two or more class folders: the label is ambiguous,
                           so every copy is excluded (within a class copies are kept, grouped)
outside_class_folder       a file directly in ``DATA_DIR`` rather than in a class folder
dangling_link              a symbolic link whose target does not exist (e.g. git-annex/DataLad
                           content never fetched)
link_loop                  a link to a folder that contains it (``cat/loop -> ..``), or an
                           endless chain of links
duplicate_folder           a link to a folder already walked through another path
not_a_file                 a FIFO, socket or device (reading it could block)
unreadable                 a file or folder that cannot be read (permissions, I/O error)
=========================  ==================================================================

File names that are not valid UTF-8 are kept exactly (PEP 383 surrogate escapes, written to
the manifest as JSON ``\\udcXX`` escapes; see :func:`runtime.files.json_dumps`).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edgeclf.runtime.errors import ImageAspectRatioError, ImageTooLargeError, InvalidImageError, UsageError
from edgeclf.runtime.image import DEFAULT_MAX_PIXELS, check_size, load_image
from edgeclf.runtime.walk import walk
from edgeclf.runtime.files import FileTooLargeError, read_bounded
from edgeclf.runtime.manifest import SUBSETS, ManifestEntry, SplitManifest

from .errors import DatasetError

#: Default shares of train / val / test.
DEFAULT_RATIOS = (0.75, 0.125, 0.125)
#: Folders that are not classes unless named explicitly (besides hidden ``.x`` folders).
NON_CLASS_FOLDERS = ("BACKGROUND_Google", "__MACOSX")
#: Exclusion reasons, in report order.
REASONS = ("hidden", "unsupported_extension", "empty", "undecodable", "too_large", "extreme_aspect_ratio",
           "duplicate_across_classes", "outside_class_folder", "dangling_link", "link_loop", "duplicate_folder",
           "not_a_file", "unreadable")
#: Fewest distinct usable images a class may have (one each for train, val and test).
MIN_IMAGES_PER_CLASS = 3

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class _Checked:
    """Result of checking one file: ``reason`` is None for a usable image (then sha256 is set)."""

    rel: str
    cls: str
    reason: str | None = None
    detail: str = ""
    sha256: str = ""


def validate_ratios(ratios: Sequence[float]) -> dict[str, float]:
    """Check train/val/test shares and return them as ``{"train": .., "val": .., "test": ..}``.

    Args:
        ratios: three floats (fractions, not percent), each > 0, summing to 1 (within 1e-6).
    Raises:
        UsageError: not three numbers, a share <= 0 or not finite, or a sum other than 1.
    """
    ratios = list(ratios)
    if len(ratios) != 3:
        raise UsageError(f"--ratios takes 3 numbers (train val test), got {len(ratios)}: e.g. 0.75 0.125 0.125")
    shown = " ".join(f"{r:g}" for r in ratios)
    for name, r in zip(SUBSETS, ratios):
        if not math.isfinite(r) or r <= 0:
            raise UsageError(f"--ratios {shown}: the {name} share is {r:g}; every split needs a share > 0"
                             " (e.g. 0.75 0.125 0.125)")
    total = sum(ratios)
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"--ratios {shown} sum to {total:g}; they must sum to 1 (e.g. 0.75 0.125 0.125)")
    return {name: float(r) for name, r in zip(SUBSETS, ratios)}


def allocate(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """Split ``n`` items into (train, val, test) counts by the module's rounding rule.

    Largest remainder on ``n * ratio``, then each split raised to at least 1 by taking from the
    largest. Args: ``n`` >= 3 items; ``ratios`` as returned by :func:`validate_ratios` (values).
    Returns: three ints summing to ``n``, each >= 1.
    Raises: ValueError if ``n`` < 3 (callers report the class; see :func:`split_dataset`).
    """
    if n < MIN_IMAGES_PER_CLASS:
        raise ValueError(f"allocate needs n >= {MIN_IMAGES_PER_CLASS}, got {n}")
    exact = [n * r for r in ratios]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        if counts[i] == 0:
            donor = max(range(3), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts[0], counts[1], counts[2]


def list_class_folders(data_dir: str | os.PathLike) -> list[str]:
    """Names of all non-hidden sub-folders of ``data_dir``, sorted (including non-class folders).

    Raises:
        DatasetError: ``data_dir`` does not exist or is not a folder.
    """
    root = Path(data_dir)
    if not root.exists():
        raise DatasetError(f"DATA_DIR {root}: no such folder (expected one sub-folder per class)")
    if not root.is_dir():
        raise DatasetError(f"DATA_DIR {root}: is a file, not a folder of class sub-folders")
    try:
        with os.scandir(root) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as err:
        raise DatasetError(f"DATA_DIR {root}: cannot list it ({err.strerror or err})") from err


def _select_classes(root: Path, classes: Sequence[str] | None) -> list[str]:
    folders = list_class_folders(root)
    if classes is None:
        chosen = [f for f in folders if f not in NON_CLASS_FOLDERS]
        if not chosen:
            with os.scandir(root) as it:
                empty = not any(True for _ in it)
            what = "is empty" if empty else "has no class folders"
            raise DatasetError(f"DATA_DIR {root} {what}: expected one sub-folder of images per class"
                               " (ImageFolder layout, e.g. 101_ObjectCategories/<class>/*.jpg)")
        return chosen
    classes = list(classes)
    if not classes:
        raise UsageError("--classes: give at least one class name (or leave --classes out for all folders)")
    dupes = sorted({c for c in classes if classes.count(c) > 1})
    if dupes:
        raise UsageError(f"--classes names {', '.join(dupes)} more than once")
    unknown = [c for c in classes if c not in folders]
    if unknown:
        raise UsageError(f"--classes: unknown class {', '.join(map(repr, unknown))} in {root};"
                         f" available: {', '.join(folders) or '(none)'}")
    return classes


def _check_decodes(data: bytes, name: str) -> tuple[str, str] | None:
    """None if ``data`` decodes as :func:`runtime.image.load_image` would; else (reason, detail).

    Every byte of the compressed stream is decoded (truncation is caught), but JPEGs are decoded
    at 1/8 scale via Pillow's ``draft`` (DCT scaling), several times faster on large photos.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            check_size(width, height, name, DEFAULT_MAX_PIXELS)
            if img.format == "JPEG":
                img.draft(None, (max(1, width // 8), max(1, height // 8)))
            img.load()
            load_image(img, max_pixels=None, name=name)  # the rest of the decoding rule: EXIF orientation, RGB
    except ImageAspectRatioError as err:
        return "extreme_aspect_ratio", err.reason
    except Image.DecompressionBombError as err:
        return "too_large", str(err)
    except UnidentifiedImageError:
        return "undecodable", "not a recognised image format"
    except ImageTooLargeError as err:
        return "too_large", err.reason
    except InvalidImageError as err:
        return "undecodable", err.reason
    except MemoryError:
        return "too_large", "ran out of memory while decoding it"
    except Exception as err:  # noqa: BLE001 — whatever a crafted file makes a Pillow plugin raise
        return "undecodable", str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


def _check_file(root: Path, rel: str, cls: str) -> _Checked:
    try:
        data = read_bounded(root / rel)  # read-only, the only way this module reads a file
    except FileTooLargeError as err:
        return _Checked(rel, cls, "too_large", str(err))
    except OSError as err:
        return _Checked(rel, cls, "unreadable", err.strerror or str(err))
    if not data:
        return _Checked(rel, cls, "empty")
    bad = _check_decodes(data, os.fspath(root / rel))
    if bad:
        return _Checked(rel, cls, bad[0], bad[1])
    return _Checked(rel, cls, sha256=hashlib.sha256(data).hexdigest())


def _root_entry(root: Path, name: str) -> _Checked | None:
    """A non-folder entry directly in DATA_DIR as an exclusion (None for folders)."""
    import errno
    import stat

    path = root / name
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return _Checked(name, "", "link_loop", f"-> {os.readlink(path)}")
        if isinstance(err, FileNotFoundError) and path.is_symlink():
            return _Checked(name, "", "dangling_link", f"-> {os.readlink(path)}")
        return _Checked(name, "", "unreadable", err.strerror or str(err))
    if stat.S_ISDIR(st.st_mode):
        return None
    if name.startswith("."):
        return _Checked(name, "", "hidden")
    if not stat.S_ISREG(st.st_mode):
        return _Checked(name, "", "not_a_file")
    return _Checked(name, "", "outside_class_folder")


def _shuffle_key(seed: int, cls: str, digest: str) -> bytes:
    return hashlib.sha256(f"edgeclf-split\0{seed}\0{cls}\0{digest}".encode()).digest()


def split_dataset(
    data_dir: str | os.PathLike,
    classes: Sequence[str] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> SplitManifest:
    """Split an ImageFolder tree into stratified train / val / test sets, reading files only.

    Args:
        data_dir: folder with one sub-folder of images per class (e.g. ``101_ObjectCategories``).
        classes: class folder names to use, in label order; None = all class folders, sorted
            (``BACKGROUND_Google``, ``__MACOSX`` and hidden folders excluded unless named here).
        ratios: (train, val, test) shares, each > 0, summing to 1.
        seed: non-negative int; the same tree, seed and ratios give the same manifest.
        workers: threads for reading/hashing/decoding (default ``min(8, cpu count)``).
        progress: called as ``progress(files_done, files_total)`` while files are checked.
    Returns:
        A :class:`SplitManifest` (``data_root`` absolute, entries sorted by path in each split,
        ``counts`` in images per class and split, ``excluded`` sorted by path with ``reason``
        and, where useful, ``detail``). The module docstring describes every rule.
    Raises:
        DatasetError: ``data_dir`` missing, empty or without class folders; a class with fewer
            than 3 distinct usable images (all such classes listed in one message).
        UsageError: bad ``ratios``, a negative or non-integer ``seed``, an unknown or repeated
            class name (the message lists the available ones).
    """
    ratio_map = validate_ratios(ratios)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--seed {seed!r}: use a non-negative integer (e.g. 0)")
    root = Path(data_dir).resolve()
    if not root.exists():
        raise DatasetError(f"DATA_DIR {Path(data_dir)}: no such folder (expected one sub-folder per class)")
    chosen = _select_classes(root, classes)
    if len(chosen) < 2:
        raise UsageError(f"{'--classes' if classes else 'DATA_DIR ' + str(root)}: {len(chosen)} class(es) {chosen};"
                         " a classifier needs at least 2 class folders")

    # 1. Every file of the chosen class folders (one walker: links followed, each real folder
    #    once, a link back to DATA_DIR or another class folder reported), plus stray entries.
    st_root = os.stat(root)
    visited = {(st_root.st_dev, st_root.st_ino)}
    for cls in chosen:
        st = os.stat(root / cls)
        visited.add((st.st_dev, st.st_ino))
    todo: list[tuple[str, str]] = []  # (rel path, class)
    checked: list[_Checked] = []
    for cls in chosen:
        try:
            found = walk(root / cls, visited=visited, ancestors=[(st_root.st_dev, st_root.st_ino)])
        except OSError as err:
            raise DatasetError(f"{root / cls}: cannot list folder ({err.strerror or err})") from err
        todo += [(f"{cls}/{rel}", cls) for rel in found.rels]
        checked += [_Checked(f"{cls}/{s.rel}", cls, s.reason, s.detail) for s in found.skipped]
    todo.sort()
    with os.scandir(root) as it:
        names = sorted(e.name for e in it if e.name not in chosen)
    checked += [c for c in (_root_entry(root, name) for name in names) if c is not None]

    # 2. Check (read, hash, decode) in parallel; results keep the sorted order.
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_check_file, root, rel, cls) for rel, cls in todo]
        for i, fut in enumerate(futures, 1):
            checked.append(fut.result())
            if progress is not None:
                progress(i, len(futures))

    # 3. Byte-identical files in different classes: ambiguous label, exclude every copy.
    by_digest: dict[str, list[_Checked]] = {}
    for c in checked:
        if c.reason is None:
            by_digest.setdefault(c.sha256, []).append(c)
    excluded: list[dict] = []
    usable: dict[str, list[_Checked]] = {cls: [] for cls in chosen}
    for c in checked:
        if c.reason is not None:
            entry = {"path": c.rel, "reason": c.reason}
            if c.detail:
                entry["detail"] = c.detail
            excluded.append(entry)
            continue
        copies = by_digest[c.sha256]
        if len({x.cls for x in copies}) > 1:
            others = ", ".join(x.rel for x in copies if x.rel != c.rel)
            excluded.append({"path": c.rel, "reason": "duplicate_across_classes", "detail": f"same bytes as {others}"})
            continue
        usable[c.cls].append(c)
    excluded.sort(key=lambda e: e["path"])

    # 4. Check every class, then raise once.
    problems = []
    for cls in chosen:
        n_groups = len({c.sha256 for c in usable[cls]})
        if n_groups >= MIN_IMAGES_PER_CLASS:
            continue
        reasons: dict[str, int] = {}
        prefix = cls + "/"
        for e in excluded:
            if e["path"].startswith(prefix):
                reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        dup_note = f" in {len(usable[cls])} files" if len(usable[cls]) != n_groups else ""
        problems.append(f"class {cls!r} ({root / cls}) has {n_groups} distinct usable image(s){dup_note}"
                        + (f" (excluded: {why})" if why else ""))
    if problems:
        raise DatasetError("; ".join(problems) + f". Each class needs at least {MIN_IMAGES_PER_CLASS}"
                           " (one each for train, val, test): add images, or leave the class out with --classes")

    # 5. Per class: group identical files, keyed-hash shuffle, largest-remainder allocation.
    splits: dict[str, list[ManifestEntry]] = {s: [] for s in SUBSETS}
    counts: dict[str, dict[str, int]] = {}
    for label, cls in enumerate(chosen):
        groups: dict[str, list[str]] = {}
        for c in usable[cls]:
            groups.setdefault(c.sha256, []).append(c.rel)
        order = sorted(groups, key=lambda d: _shuffle_key(seed, cls, d))
        n_train, n_val, _ = allocate(len(order), list(ratio_map.values()))
        bounds = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
        counts[cls] = {}
        for subset, digests in bounds.items():
            entries = [ManifestEntry(rel, label, d) for d in digests for rel in groups[d]]
            splits[subset] += entries
            counts[cls][subset] = len(entries)
    for subset in SUBSETS:
        splits[subset].sort(key=lambda e: e.path)

    excluded_counts = {r: 0 for r in REASONS}
    for e in excluded:
        excluded_counts[e["reason"]] += 1
    return SplitManifest(
        data_root=root, classes=list(chosen), seed=seed, ratios=ratio_map, splits=splits,
        counts=counts, excluded=excluded, excluded_counts=excluded_counts,
    )


def check_output_path(out: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Fail fast, before any work, if the manifest cannot be written to ``out``.

    Returns the absolute path. Raises:
        UsageError: ``out`` is a folder, its parent folder is missing or not writable, or ``out``
            lies inside ``data_dir`` (the data tree is read-only input).
    """
    path = Path(out).absolute()
    if path.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a file name, e.g. {Path(out) / 'split.json'}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out}: {parent} is not an existing folder; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {out}: not writable; choose another location")
    if data_dir is not None:
        if path.resolve().is_relative_to(Path(data_dir).resolve()):
            raise UsageError(f"--out {out}: is inside DATA_DIR {data_dir}, which is read-only input;"
                             " write the manifest elsewhere")
    return path
