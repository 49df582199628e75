"""Small file helpers every stage shares: content hashes and atomic writes.

An atomic write goes to a temporary file beside the target (same folder, so the same filesystem)
and is renamed over it with ``os.replace``: readers see the old file or the new one, never half a
file, and a crash leaves at most a hidden ``.NAME.PID.tmp`` that is removed on the next error path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
