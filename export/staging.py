"""Assemble an artifact directory in a temporary sibling and move it into place only when complete.

A failed export (bad checkpoint, exporter crash, failed gate, Ctrl-C) leaves neither a partial
``ARTIFACT_DIR`` nor the temporary sibling behind; an existing ``ARTIFACT_DIR`` is replaced only
with ``force`` and only after the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgeclf.runtime.errors import UsageError


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty directory without ``force``.

    Raises:
        UsageError: naming ``--out`` and the fix.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory; choose another path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UsageError(f"--out {out_dir}: directory exists and is not empty; pass --force to replace it")


@contextmanager
def staging_dir(out_dir: Path):
    """Yield a fresh temporary directory beside ``out_dir``; it is removed on any exception.

    Parent folders of ``out_dir`` that had to be created are removed again on failure (if empty).
    """
    created = []
    parent = out_dir.parent
    for p in reversed([parent, *parent.parents]):
        if not p.exists():
            created.append(p)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in reversed(created):
            try:
                p.rmdir()
            except OSError:
                break
        raise


def publish(tmp: Path, out_dir: Path, force: bool) -> Path:
    """Rename the complete ``tmp`` to ``out_dir`` (replacing an existing one only with ``force``).

    Raises:
        UsageError: ``out_dir`` became non-empty meanwhile and ``force`` is off.
    """
    check_out_dir(out_dir, force)
    old = None
    if out_dir.is_dir() and any(out_dir.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.rmdir(old)
        os.rename(out_dir, old)
    elif out_dir.is_dir():
        out_dir.rmdir()
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out_dir, 0o777 & ~umask)  # mkdtemp made it 0700; readers of the artifact may be other users
    return out_dir
