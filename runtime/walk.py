"""The one folder walker: which files under a folder are images, and why every other entry is not.

``edgeclf split`` (and so training, evaluation and export calibration, which read its manifest),
``edgeclf predict`` on folders and the benchmark's sample all walk folders with :func:`walk`, so
one rule decides what an image file is and every entry that is not used is reported with a reason.

Rules:

* **Links are followed**, files and folders alike, and each *real* folder is walked once: folders
  are identified by ``(st_dev, st_ino)`` of their target. A link to a folder that contains it
  (``cat/loop -> ..``) or a chain of links that never ends is reported as ``link_loop``; a second
  link to a folder already walked elsewhere as ``duplicate_folder``. A link whose target does not
  exist (a dangling link, e.g. git-annex/DataLad content that was never fetched) is
  ``dangling_link``. Files are reported under the path they were found at (the link's, not the
  target's), so labels follow the folder a file appears in.
* **Image files** are those whose extension (case-insensitive) is in :func:`image_extensions`:
  derived from Pillow — ``PIL.Image.registered_extensions()`` restricted to the formats this
  installation can actually open (``Image.OPEN``, minus identify-only stubs without a handler,
  EPS without Ghostscript and MPEG, which Pillow cannot decode). Everything else is
  ``unsupported_extension``.
* **Hidden** names (``.x``, AppleDouble ``._x.jpg``) and everything under a hidden folder are
  ``hidden``. Entries that are neither files nor folders (FIFOs, sockets, devices: reading
  one could block forever) are ``not_a_file``; an entry that cannot be listed or examined is
  ``unreadable``.
* **Order** is deterministic: files sorted by their path components relative to the walked
  folder (Python string order), whatever order the filesystem lists them in.

File names that are not valid UTF-8 are kept losslessly as Python ``str`` via ``os.fsdecode``
(PEP 383 ``surrogateescape``: byte 0xE9 becomes ``"\\udce9"``; ``os.fsencode`` gives the bytes
back). :func:`edgeclf.runtime.files.display_name` shows them as ``\\xe9``; the JSON writers escape
them as ``\\udce9`` (see :func:`edgeclf.runtime.files.json_dumps`).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from dataclasses import dataclass, field
from typing import Iterable

#: Reasons an entry is skipped, in report order.
SKIP_REASONS = ("hidden", "unsupported_extension", "dangling_link", "link_loop", "duplicate_folder",
                "not_a_file", "unreadable")
#: Human wording of each reason (for one-line reports).
REASON_TEXT = {
    "hidden": "hidden name (starts with '.') or inside a hidden folder",
    "unsupported_extension": "extension is not an image format Pillow can open here",
    "dangling_link": "symbolic link whose target does not exist",
    "link_loop": "symbolic link to a folder that contains it (or an endless chain of links)",
    "duplicate_folder": "link to a folder already walked through another path (each folder is walked once)",
    "not_a_file": "neither a regular file nor a folder (FIFO, socket or device)",
    "unreadable": "cannot be listed or examined",
}
#: Pillow formats that are in ``Image.OPEN`` but cannot produce pixels (identify only).
_CANNOT_DECODE = {"MPEG"}


@functools.lru_cache(maxsize=1)
def image_extensions() -> tuple[str, ...]:
    """Lower-case extensions (with the dot) of the image formats this Pillow can open, sorted.

    ``PIL.Image.registered_extensions()`` filtered to formats in ``PIL.Image.OPEN``, minus stub
    plugins without a registered handler (BUFR, GRIB, HDF5, WMF off Windows), EPS/PS when
    Ghostscript is missing, and MPEG (header only). AVIF appears when Pillow has its AVIF plugin.
    """
    from PIL import Image, ImageFile

    Image.init()
    usable = set()
    for fmt, (factory, _accept) in Image.OPEN.items():
        if fmt in _CANNOT_DECODE:
            continue
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            module = __import__(factory.__module__, fromlist=["_handler"])
            if getattr(module, "_handler", None) is None:
                continue
        if fmt == "EPS":
            from PIL import EpsImagePlugin

            if not EpsImagePlugin.has_ghostscript():
                continue
        usable.add(fmt)
    return tuple(sorted(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in usable))


def has_image_extension(name: str) -> bool:
    """True if ``name`` ends with one of :func:`image_extensions` (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in image_extensions()


def is_image_filename(name: str) -> bool:
    """True if ``name`` is not hidden (``.x``, ``._x``) and has an image extension."""
    return not name.startswith(".") and has_image_extension(name)


@dataclass(frozen=True)
class Skipped:
    """An entry the walk did not return as an image file.

    Attributes:
        path: the entry's path (the walked folder joined with its relative path).
        rel: its path relative to the walked folder, ``/``-separated.
        reason: one of :data:`SKIP_REASONS`.
        detail: specifics (the extension, the link target, the OS error), may be ``""``.
    """

    path: str
    rel: str
    reason: str
    detail: str = ""

    def describe(self) -> str:
        """One line: ``path: reason (detail)``."""
        return f"{self.path}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class WalkResult:
    """What :func:`walk` found: ``files`` (image paths, sorted) and ``skipped`` (sorted by ``rel``)."""

    files: list[str] = field(default_factory=list)
    rels: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of skipped entries per reason (only reasons that occur), in report order."""
        out = {r: 0 for r in SKIP_REASONS}
        for s in self.skipped:
            out[s.reason] += 1
        return {r: n for r, n in out.items() if n}


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def walk(top: str | os.PathLike, *, visited: set | None = None, ancestors: Iterable = (),
         images_only: bool = True) -> WalkResult:
    """Walk ``top`` recursively by the module's rules.

    Args:
        top: a folder (a link to a folder is followed).
        visited: ``(st_dev, st_ino)`` of folders already walked by the caller (shared between
            several walks so that a real folder is walked once overall); updated in place.
        ancestors: ``(st_dev, st_ino)`` of folders enclosing ``top`` (e.g. the data root above a
            class folder): a link back to one of them is a ``link_loop``.
        images_only: False returns every regular non-hidden file in ``files`` (no extension check).
    Returns:
        :class:`WalkResult`; ``files`` are ``os.path.join(top, ...)`` paths sorted by their
        relative path components, ``rels`` the matching ``/``-separated relative paths.
    Raises:
        OSError: ``top`` itself cannot be listed (callers report it naming the folder).
    """
    top = os.fspath(top)
    visited = set() if visited is None else visited
    result = WalkResult()
    found: list[tuple[tuple[str, ...], str]] = []
    st_top = os.stat(top)
    visited.add((st_top.st_dev, st_top.st_ino))

    def skip(parts: tuple[str, ...], reason: str, detail: str = "") -> None:
        result.skipped.append(Skipped(os.path.join(top, *parts), "/".join(parts), reason, detail))

    def visit(folder: str, parts: tuple[str, ...], ancestors: frozenset, hidden: bool) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            if parts:
                skip(parts, "unreadable", err.strerror or str(err))
                return
            raise
        for e in entries:
            sub = parts + (e.name,)
            is_hidden = hidden or e.name.startswith(".")
            try:
                is_link = e.is_symlink()
                st = os.stat(e.path)  # follows links
            except OSError as err:
                if err.errno == errno.ELOOP:
                    skip(sub, "link_loop", f"-> {_link_target(e.path)}")
                elif isinstance(err, FileNotFoundError) and e.is_symlink():
                    skip(sub, "dangling_link", f"-> {_link_target(e.path)}")
                else:
                    skip(sub, "unreadable", err.strerror or str(err))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    skip(sub, "link_loop", f"-> {_link_target(e.path)}" if is_link
                         else "the folder that contains it, reached again through a link above")
                    continue
                if key in visited:
                    skip(sub, "duplicate_folder", f"-> {_link_target(e.path)}" if is_link else "")
                    continue
                visited.add(key)
                visit(e.path, sub, ancestors | {key}, is_hidden)
            elif not stat.S_ISREG(st.st_mode):
                skip(sub, "not_a_file")
            elif is_hidden:
                skip(sub, "hidden")
            elif images_only and not has_image_extension(e.name):
                ext = os.path.splitext(e.name)[1]
                skip(sub, "unsupported_extension", f"'{ext}'" if ext else "no extension")
            else:
                found.append((sub, e.path))

    visit(top, (), frozenset({(st_top.st_dev, st_top.st_ino), *ancestors}), False)
    found.sort(key=lambda f: f[0])
    result.files = [os.path.join(top, *parts) for parts, _ in found]
    result.rels = ["/".join(parts) for parts, _ in found]
    result.skipped.sort(key=lambda s: s.rel.split("/"))
    return result
