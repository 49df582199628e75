"""Download, verify and unpack Caltech 101 — resumable, and never leaving a folder that looks complete.

:func:`download_caltech101` is what ``edgeclf data caltech101`` runs:

1. stream the official archive (CaltechDATA ``caltech-101.zip``, 131 MiB, md5 as published there
   and in torchvision) into ``DEST/caltech-101.zip.part`` with ``requests``, resuming a ``.part``
   left by an earlier run with an HTTP ``Range`` request (a server that ignores ``Range`` answers
   200 and the download restarts from byte 0). A connection that breaks mid-body is retried
   (``retries`` times, resuming each time); a server that cannot be reached at all fails at once;
2. verify the md5 (or sha256) of the finished ``.part``; a mismatch deletes it and raises;
3. rename it to ``DEST/caltech-101.zip`` and unpack: the zip holds
   ``caltech-101/101_ObjectCategories.tar.gz`` (plus annotations we do not need), which is streamed
   out of the zip straight into a hidden temporary sibling ``DEST/.101_ObjectCategories.unpacking-*``;
   a plain ``.tar.gz`` of the folder (the old Caltech URL) or a zip of the folder also work;
4. rename the unpacked ``101_ObjectCategories`` into place in one step, delete the archive.

So ``DEST/101_ObjectCategories`` exists only once it is complete; anything interrupted lies in a
``.part`` file or a hidden ``.unpacking-*`` folder, which the next run resumes or removes.
Network and checksum failures raise :class:`edgeclf.train.errors.DownloadError` with the URL and the
manual alternative (download elsewhere, unpack, ``edgeclf split`` on the folder).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator
from urllib.parse import urlparse

from edgeclf.runtime.errors import UsageError

from .errors import DownloadError

#: The official archive on CaltechDATA (doi:10.22002/D1.20086), as torchvision's ``Caltech101`` uses.
CALTECH101_URL = "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"
#: Its md5 as published on CaltechDATA (and in torchvision's ``Caltech101.download``).
CALTECH101_MD5 = "3138e1922a9193bfa496528edbbc45d0"
#: The record page (for the manual route).
CALTECH101_PAGE = "https://data.caltech.edu/records/mzrjq-6wc02"
#: The folder the archive unpacks to: one sub-folder per class (+ BACKGROUND_Google).
FOLDER = "101_ObjectCategories"
#: (connect, read) timeouts in seconds: unreachable hosts fail within the first, stalls within the second.
DEFAULT_TIMEOUT = (10.0, 60.0)
CHUNK_BYTES = 1 << 16

#: ``progress(stage, done, total)``: stage "download" (bytes), "verify" (bytes), "unpack" (archive bytes read).
ProgressFn = Callable[[str, int, "int | None"], None]


class _Interrupted(Exception):
    """A response body ended before its announced length (internal: triggers a resume)."""


def _manual_hint(url: str) -> str:
    return (f"Manual alternative: download {url} (record page {CALTECH101_PAGE}) on a connected machine,"
            f" unpack it and the {FOLDER}.tar.gz inside, then run"
            f" `edgeclf split path/to/{FOLDER} --out split.json`")


def _short_reason(err: BaseException) -> str:
    """A one-line reason for a requests/urllib3 error (the errno text where there is one)."""
    import requests
    import urllib3

    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
        return "no data within the read timeout"
    text = str(err)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection closed before the end of the file"
    return type(err).__name__ + (f": {text.splitlines()[0][:200]}" if text else "")


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` → (start, total); None where absent."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _iter_body(r) -> Iterator[bytes]:
    """The raw (undecoded) body of a streamed ``requests`` response, chunk by chunk.

    ``read1`` hands over every byte that arrived before a connection breaks (``iter_content``
    would drop up to one chunk), so a resume continues exactly where the data stopped.
    """
    raw = r.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2.3
        yield from r.iter_content(CHUNK_BYTES)
        return
    while data := raw.read1(CHUNK_BYTES, decode_content=False):
        yield data


def download_file(
    url: str,
    part: str | os.PathLike,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 3,
    backoff_s: float = 1.0,
    progress: ProgressFn | None = None,
) -> int:
    """Download ``url`` into the file ``part``, resuming from its current size; return its size.

    Args:
        url: http(s) URL.
        part: the partial file (created if missing, appended to when the server honours ``Range``,
            rewritten from byte 0 when it does not).
        timeout: (connect, read) timeouts in seconds.
        retries: how many times a broken transfer is resumed within this call.
        backoff_s: wait ``backoff_s * attempt`` seconds before each resume.
        progress: ``progress("download", bytes_done, bytes_total_or_None)``.
    Returns:
        The size of the complete file in bytes.
    Raises:
        DownloadError: unreachable server (at once, no retry), HTTP error status, or a transfer
            still broken after ``retries`` resumes (``part`` is kept for the next run).
    """
    import requests
    import urllib3

    part = Path(part)
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        total: int | None = None
        got_response = False
        try:
            with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
                got_response = True
                if r.status_code == 416 and have:
                    _, total = _content_range(r.headers.get("Content-Range"))
                    if total == have:  # the .part was already complete
                        return have
                    part.unlink()  # larger than the file, or another file: start over
                    continue
                if r.status_code >= 400:
                    raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason}. {_manual_hint(url)}")
                if have and r.status_code == 206:
                    start, total = _content_range(r.headers.get("Content-Range"))
                    if start != have:  # not the range we asked for: start over
                        part.unlink()
                        continue
                    mode = "ab"
                else:  # 200: the server ignored Range (or there was nothing to resume)
                    have, mode = 0, "wb"
                    length = r.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                if progress:
                    progress("download", have, total)
                with open(part, mode) as fp:
                    for chunk in _iter_body(r):
                        fp.write(chunk)
                        have += len(chunk)
                        if progress:
                            progress("download", have, total)
                if total is not None and have < total:
                    raise _Interrupted(f"got {have:,} of {total:,} bytes")
                return have
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError, _Interrupted) as err:
            reason = err.args[0] if isinstance(err, _Interrupted) else _short_reason(err)
            if not got_response:
                raise DownloadError(f"cannot reach {url} ({reason}); check the network or proxy. {_manual_hint(url)}") from err
            attempt += 1
            if attempt > retries:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"download of {url} interrupted ({reason}) with {size:,} bytes in {part};"
                                    " run the same command again to resume") from err
            time.sleep(backoff_s * attempt)
        except requests.exceptions.RequestException as err:
            raise DownloadError(f"cannot download {url} ({_short_reason(err)}). {_manual_hint(url)}") from err
        except OSError as err:  # writing the .part: disk full, permissions
            raise DownloadError(f"{part}: cannot write the download ({err.strerror or err})") from err


def file_digest(path: str | os.PathLike, algorithm: str, progress: ProgressFn | None = None) -> str:
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    total = os.path.getsize(path)
    done = 0
    with open(path, "rb") as fp:
        while block := fp.read(1 << 20):
            h.update(block)
            done += len(block)
            if progress:
                progress("verify", done, total)
    return h.hexdigest()


def _checksum(md5: str | None, sha256: str | None) -> tuple[str, str]:
    """Pick and validate the expected checksum: (algorithm, lower-case hex)."""
    if sha256:
        algo, value, n = "sha256", sha256, 64
    elif md5:
        algo, value, n = "md5", md5, 32
    else:
        raise UsageError("no checksum: pass --sha256 (or --md5) with the archive's published checksum")
    value = value.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{n}}}", value):
        raise UsageError(f"--{algo} {value!r}: expected {n} hexadecimal digits")
    return algo, value


class _CountingReader:
    """A read-only file wrapper that reports how many bytes were read (for unpack progress)."""

    def __init__(self, fp: BinaryIO, total: int, progress: ProgressFn | None):
        self.fp, self.total, self.progress, self.done = fp, total, progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        self.done += len(data)
        if self.progress:
            self.progress("unpack", self.done, self.total)
        return data


def _extract_tar(tf: tarfile.TarFile, into: Path) -> None:
    """Extract every member into ``into``, refusing links and paths that leave it (tar path tricks)."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
        tf.extractall(into, filter="data")
        return

    def checked(members):
        for member in members:
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise DownloadError(f"archive member {member.name!r} is unsafe (absolute path, '..' or link)")
            yield member

    tf.extractall(into, members=checked(tf))


def _find_folder(top: Path) -> Path | None:
    """The shallowest folder named :data:`FOLDER` under ``top``, or None."""
    for dirpath, dirnames, _ in os.walk(top):
        dirnames.sort()
        if FOLDER in dirnames:
            return Path(dirpath) / FOLDER
    return None


def unpack_caltech101(archive: str | os.PathLike, dest: str | os.PathLike,
                      progress: ProgressFn | None = None) -> Path:
    """Unpack a Caltech 101 archive into ``dest/101_ObjectCategories``, atomically.

    Accepts the official zip (``.../101_ObjectCategories.tar.gz`` inside), a ``.tar(.gz)`` of the
    folder, or a zip of the folder. Everything is extracted into a hidden temporary sibling and
    renamed into place only when complete.
    Returns: the path of ``dest/101_ObjectCategories``.
    Raises:
        DownloadError: not a zip/tar, corrupt, no ``101_ObjectCategories`` folder with class
            sub-folders inside, or the destination already exists (nothing is left behind).
    """
    archive, dest = Path(archive), Path(dest)
    final = dest / FOLDER
    if final.exists():
        raise DownloadError(f"{final} already exists; remove it to unpack again")
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.unpacking-", dir=dest))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
                    inner = [n for n in names if n.rsplit("/", 1)[-1] == f"{FOLDER}.tar.gz"]
                    if inner:
                        size = zf.getinfo(inner[0]).file_size
                        with zf.open(inner[0]) as raw, tarfile.open(
                                fileobj=_CountingReader(raw, size, progress), mode="r|*") as tf:
                            _extract_tar(tf, tmp)
                    else:
                        zf.extractall(tmp, members=names)
            elif tarfile.is_tarfile(archive):
                with open(archive, "rb") as raw, tarfile.open(
                        fileobj=_CountingReader(raw, archive.stat().st_size, progress), mode="r|*") as tf:
                    _extract_tar(tf, tmp)
            else:
                raise DownloadError(f"{archive}: neither a zip nor a tar archive; delete it and download again")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise DownloadError(f"{archive}: cannot unpack ({err}); delete it and download again") from err
        found = _find_folder(tmp)
        if found is None or not any(p.is_dir() for p in found.iterdir()):
            raise DownloadError(f"{archive}: no {FOLDER} folder with class sub-folders inside;"
                                " is this the Caltech 101 archive?")
        os.replace(found, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only our own temporary folder
    return final


def download_caltech101(
    dest: str | os.PathLike,
    *,
    url: str = CALTECH101_URL,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 3,
    backoff_s: float = 1.0,
    keep_archive: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Download, verify and unpack Caltech 101 into ``dest/101_ObjectCategories``.

    Args:
        dest: folder to download into (created if missing).
        url: archive URL; default the official CaltechDATA zip.
        md5, sha256: expected checksum of the archive. With the default ``url`` and neither given,
            the published md5 :data:`CALTECH101_MD5` is used; another ``url`` needs one of them.
        timeout: (connect, read) seconds; retries, backoff_s: see :func:`download_file`.
        keep_archive: keep ``dest/<archive name>`` after unpacking (default: delete it).
        progress: ``progress(stage, done, total)`` for "download", "verify" and "unpack".
    Returns:
        ``dest/101_ObjectCategories`` (returned at once, without network, if it already exists).
    Raises:
        UsageError: another ``url`` without a checksum, or a malformed checksum.
        DownloadError: unreachable URL, HTTP error, broken transfer, checksum mismatch (the bad
            file is deleted) or unpacking failure; the message names the URL and the manual route.
    """
    dest = Path(dest)
    final = dest / FOLDER
    if final.is_dir():
        return final
    if not md5 and not sha256:
        if url != CALTECH101_URL:
            raise UsageError(f"--url {url}: give the archive's checksum with --sha256 (or --md5)")
        md5 = CALTECH101_MD5
    algo, expected = _checksum(md5, sha256)
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise UsageError(f"--url {url}: only http(s) URLs can be downloaded")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--dest {dest}: cannot create it ({err.strerror or err})") from err
    if not os.access(dest, os.W_OK | os.X_OK):
        raise UsageError(f"--dest {dest}: not writable")

    name = Path(urlparse(url).path).name or "caltech101-archive"
    archive = dest / name
    part = dest / (name + ".part")
    if archive.exists() and file_digest(archive, algo, progress) != expected:
        archive.unlink()  # a complete-looking archive that is not the right one
    if not archive.exists():
        download_file(url, part, timeout=timeout, retries=retries, backoff_s=backoff_s, progress=progress)
        got = file_digest(part, algo, progress)
        if got != expected:
            size = part.stat().st_size
            part.unlink()
            raise DownloadError(f"{url}: {algo} of the downloaded {size:,} bytes is {got}, expected {expected};"
                                f" the file was deleted; run the command again. {_manual_hint(url)}")
        os.replace(part, archive)
    folder = unpack_caltech101(archive, dest, progress)
    if not keep_archive:
        archive.unlink()
    return folder
