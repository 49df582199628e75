"""Small file helpers every stage shares: content hashes and atomic writes.

An atomic write goes to a temporary file beside the target (same folder, so the same filesystem)
and is renamed over it with ``os.replace``: readers see the old file or the new one, never half a
file, and a crash leaves at most a hidden ``.NAME.PID.tmp`` that is removed on the next error path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path


#: Largest image file read whole into memory (split hashing, training, evaluation, calibration):
#: 512 MiB, above the largest image ``max_pixels`` admits (89.5 Mpx x 3 channels x 16 bit = 537
#: MB uncompressed). A larger file (a video renamed .jpg, a sparse or giant file) is refused before
#: it is read, so one file cannot run a command out of memory.
MAX_IMAGE_FILE_BYTES = 512 * 2**20


class FileTooLargeError(OSError):
    """A file above the size limit of :func:`read_bounded` (an ``OSError``, like other read failures)."""


def read_bounded(path: str | os.PathLike, limit: int = MAX_IMAGE_FILE_BYTES) -> bytes:
    """The whole file, refused above ``limit`` bytes (checked on its size first, then on what is read,
    so a FIFO or device cannot stream forever).

    Raises:
        FileTooLargeError: more than ``limit`` bytes (message: size and limit in MiB).
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        if size > limit:
            raise FileTooLargeError(f"file of {size / 2**20:,.0f} MiB is larger than the {limit / 2**20:,.0f} MiB"
                                    " limit for an image file")
        data = fp.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"more than {limit / 2**20:,.0f} MiB (the limit for an image file)")
    return data


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (read-only)."""
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        while block := fp.read(chunk):
            h.update(block)
    return h.hexdigest()


def temp_sibling(path: str | os.PathLike) -> Path:
    """``DIR/.NAME.PID.tmp`` beside ``path``: where an atomic write stages its bytes."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp sibling + ``os.replace``).

    Raises:
        OSError: the folder is missing or not writable; nothing is left behind.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as fp:
            fp.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8 (newlines written as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# --- File names that are not valid UTF-8 -------------------------------------------------------
# Python represents such a name losslessly as a ``str`` holding lone surrogates U+DC80..U+DCFF
# (PEP 383 ``surrogateescape``, what ``os.fsdecode``/``os.listdir`` give): byte 0xE9 of
# ``caf\xe9.jpg`` is the character U+DCE9. Such a string cannot be encoded as UTF-8, so every
# writer goes through the two helpers below.

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def json_dumps(obj, **kwargs) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kwargs)`` that is always encodable as UTF-8.

    Lone surrogates (non-UTF-8 file-name bytes, see above) are written as JSON ``\\uXXXX``
    escapes (byte 0xE9 → ``\\udce9``), every other character as itself. Python's ``json.loads``
    reads the escape back to the same ``str``, and ``os.fsencode`` of it gives the original
    bytes, so a manifest or JSON line names exactly the file on disk.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def display_name(name: str | os.PathLike) -> str:
    """A file name for humans (tables, messages): non-UTF-8 bytes shown as ``\\xe9`` and control
    characters (newline, escape, ...) as ``\\x0a``, ``\\x1b``, so a name can neither split a line nor
    drive the terminal; the rest as is."""
    text = os.fspath(name)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = _SURROGATES.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}" if 0xDC80 <= ord(m.group()) <= 0xDCFF
                           else f"\\u{ord(m.group()):04x}", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def utf8_stdio() -> None:
    """Make ``sys.stdout``/``sys.stderr`` write UTF-8 whatever ``PYTHONIOENCODING`` or the locale
    says (``LC_ALL=C`` → ASCII otherwise), with ``backslashreplace`` for anything unencodable, so
    no file name can raise ``UnicodeEncodeError`` in a report. Streams that are not text wrappers
    (pytest's capture, a StringIO) are left alone."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            stream.flush()
            reconfigure(encoding="utf-8", errors="backslashreplace")
        except (ValueError, OSError, TypeError):  # detached or closed stream
            pass
