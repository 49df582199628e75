"""`edgeclf data caltech101` / train.data against archives served from 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import make_image
from edgeclf.runtime.errors import UsageError
from edgeclf.train.errors import DownloadError
from edgeclf.train.data import CALTECH101_URL, FOLDER, download_caltech101

CLASSES = {"Faces": 3, "ant": 4, "BACKGROUND_Google": 2}


def build_tree(root: Path) -> dict[str, bytes]:
    """A tiny 101_ObjectCategories tree on disk; returns {path under the folder: bytes}."""
    files, seed = {}, 100
    for cls, n in CLASSES.items():
        for i in range(1, n + 1):
            seed += 1
            p = make_image(root / FOLDER / cls / f"image_{i:04d}.jpg", seed, size=(160, 120))
            files[f"{cls}/{p.name}"] = p.read_bytes()
    return files


def tar_gz(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(root / FOLDER, arcname=FOLDER)
    return buf.getvalue()


def official_like_zip(inner_tar_gz: bytes) -> bytes:
    """Same layout as CaltechDATA's caltech-101.zip: the images are a .tar.gz inside the zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("caltech-101/101_ObjectCategories.tar.gz", inner_tar_gz)
        zf.writestr("caltech-101/Annotations.tar", b"annotations are not unpacked")
        zf.writestr("caltech-101/show_annotation.m", b"% matlab")
        zf.writestr("__MACOSX/caltech-101/._101_ObjectCategories.tar.gz", b"\0\5\26\7")
    return buf.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(zip bytes, tar.gz bytes, {relative path: bytes}) of a small Caltech-like dataset."""
    root = tmp_path_factory.mktemp("src")
    files = build_tree(root)
    inner = tar_gz(root)
    return official_like_zip(inner), inner, files


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``body`` at any path.

    ranges: honour ``Range: bytes=N-`` (206) or ignore it (200, whole body).
    breaks: the first ``breaks`` responses announce the full length but send half, then close.
    stall_s: sleep this long after the headers before sending the body.
    status: answer every request with this status (e.g. 404) and no body.
    """

    def __init__(self, body: bytes, *, ranges=True, breaks=0, stall_s=0.0, status=None):
        self.body, self.ranges, self.breaks, self.stall_s, self.status = body, ranges, breaks, stall_s, status
        self.log: list[tuple[str | None, int]] = []  # (Range header, status sent)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                body, start = server.body, 0
                if server.status:
                    return self._head(server.status, 0, rng)
                if server.ranges and rng:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(body):
                        return self._head(416, 0, rng, {"Content-Range": f"bytes */{len(body)}"})
                    self._head(206, len(body) - start, rng,
                               {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
                else:
                    self._head(200, len(body), rng)
                payload = body[start:]
                time.sleep(server.stall_s)
                if server.breaks > 0:
                    server.breaks -= 1
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def _head(self, status, length, rng, extra=None):
                server.log.append((rng, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(length))
                if server.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/records/x/files/caltech-101.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_unpacked(folder: Path, files: dict[str, bytes]) -> None:
    on_disk = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == files


def fast(**kw):
    return {"timeout": (2.0, 5.0), "backoff_s": 0.0, **kw}


# ---------------------------------------------------------------- success paths


def test_download_verify_unpack(archive, tmp_path):
    body, _, files = archive
    dest = tmp_path / "dest"
    stages: dict[str, tuple[int, int | None]] = {}
    with Server(body) as srv:
        folder = download_caltech101(dest, url=srv.url, sha256=sha(body),
                                     progress=lambda s, d, t: stages.__setitem__(s, (d, t)), **fast())
    assert folder == dest / FOLDER
    assert_unpacked(folder, files)
    assert sorted(p.name for p in dest.iterdir()) == [FOLDER]  # archive deleted, no .part, no temp folder
    assert srv.log == [(None, 200)]
    assert stages["download"] == (len(body), len(body))
    assert stages["verify"] == (len(body), len(body))
    inner_size = zipfile.ZipFile(io.BytesIO(body)).getinfo("caltech-101/101_ObjectCategories.tar.gz").file_size
    assert stages["unpack"][1] == inner_size

    with Server(body) as again:  # already there: no network at all
        assert download_caltech101(dest, url=again.url, sha256=sha(body), **fast()) == folder
    assert again.log == []


def test_md5_keep_archive_and_plain_tar_gz(archive, tmp_path):
    body, inner, files = archive
    with Server(body) as srv:
        folder = download_caltech101(tmp_path / "z", url=srv.url, md5=hashlib.md5(body).hexdigest(),
                                     keep_archive=True, **fast())
    assert_unpacked(folder, files)
    assert (tmp_path / "z" / "caltech-101.zip").read_bytes() == body
    with Server(inner) as srv:  # the old-style archive: a .tar.gz of the folder itself
        srv.url = srv.url.replace("caltech-101.zip", "101_ObjectCategories.tar.gz")
        folder = download_caltech101(tmp_path / "t", url=srv.url, sha256=sha(inner), **fast())
    assert_unpacked(folder, files)


# ---------------------------------------------------------------- interruptions


def test_connection_dropped_mid_body_resumes_with_range(archive, tmp_path):
    body, _, files = archive
    with Server(body, ranges=True, breaks=1) as srv:
        folder = download_caltech101(tmp_path / "d", url=srv.url, sha256=sha(body), **fast())
    assert_unpacked(folder, files)
    assert srv.log == [(None, 200), (f"bytes={len(body) // 2}-", 206)]


def test_connection_dropped_server_ignores_range_restarts_cleanly(archive, tmp_path):
    body, _, files = archive
    with Server(body, ranges=False, breaks=1) as srv:
        folder = download_caltech101(tmp_path / "d", url=srv.url, sha256=sha(body), **fast())
    assert_unpacked(folder, files)
    assert srv.log == [(None, 200), (f"bytes={len(body) // 2}-", 200)]  # asked to resume, got it all again


def test_interrupted_run_leaves_part_file_and_next_run_resumes(archive, tmp_path):
    body, _, files = archive
    dest = tmp_path / "d"
    with Server(body, breaks=1) as srv:
        with pytest.raises(DownloadError, match="run the same command again to resume") as err:
            download_caltech101(dest, url=srv.url, sha256=sha(body), retries=0, **fast())
        assert srv.url in str(err.value)
        assert sorted(p.name for p in dest.iterdir()) == ["caltech-101.zip.part"]  # nothing looks complete
        assert (dest / "caltech-101.zip.part").read_bytes() == body[: len(body) // 2]

        folder = download_caltech101(dest, url=srv.url, sha256=sha(body), retries=0, **fast())
    assert_unpacked(folder, files)
    assert srv.log == [(None, 200), (f"bytes={len(body) // 2}-", 206)]
    assert sorted(p.name for p in dest.iterdir()) == [FOLDER]


def test_stale_part_longer_than_the_file_is_discarded(archive, tmp_path):
    body, _, files = archive
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "caltech-101.zip.part").write_bytes(b"\0" * (len(body) + 10))
    with Server(body) as srv:
        folder = download_caltech101(dest, url=srv.url, sha256=sha(body), **fast())
    assert_unpacked(folder, files)
    assert srv.log == [(f"bytes={len(body) + 10}-", 416), (None, 200)]


def test_stalled_server_hits_the_read_timeout(archive, tmp_path):
    body, _, _ = archive
    with Server(body, stall_s=1.5) as srv:
        t0 = time.perf_counter()
        with pytest.raises(DownloadError, match="interrupted"):
            download_caltech101(tmp_path / "d", url=srv.url, sha256=sha(body), retries=0,
                                timeout=(2.0, 0.3), backoff_s=0.0)
        assert time.perf_counter() - t0 < 1.5
    assert not (tmp_path / "d" / FOLDER).exists()


# ---------------------------------------------------------------- failures leave nothing complete-looking


def test_checksum_mismatch_deletes_download(archive, tmp_path):
    body, _, _ = archive
    dest = tmp_path / "d"
    with Server(body) as srv:
        with pytest.raises(DownloadError) as err:
            download_caltech101(dest, url=srv.url, sha256="0" * 64, **fast())
    msg = str(err.value)
    assert srv.url in msg and sha(body) in msg and "0" * 64 in msg and "edgeclf split" in msg
    assert list(dest.iterdir()) == []


def test_archive_without_the_folder_is_refused_and_cleaned_up(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("something/else.txt", b"not caltech")
    body = buf.getvalue()
    dest = tmp_path / "d"
    with Server(body) as srv:
        with pytest.raises(DownloadError, match=f"no {FOLDER} folder"):
            download_caltech101(dest, url=srv.url, sha256=sha(body), **fast())
    assert sorted(p.name for p in dest.iterdir()) == ["caltech-101.zip"]  # verified archive kept, no folder


def test_tar_with_path_traversal_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"owned"
        info = tarfile.TarInfo(f"../{FOLDER}/evil.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    dest = tmp_path / "d"
    with Server(body) as srv:
        with pytest.raises(DownloadError, match="cannot unpack"):
            download_caltech101(dest, url=srv.url, sha256=sha(body), **fast())
    assert not (tmp_path / FOLDER).exists() and not (dest / FOLDER).exists()
    assert [p.name for p in dest.iterdir()] == ["caltech-101.zip"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url_fails_fast_naming_url_and_manual_route(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/caltech-101.zip"
    t0 = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        download_caltech101(tmp_path / "d", url=url, sha256="0" * 64)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert msg.startswith(f"cannot reach {url} (Connection refused)")
    assert "edgeclf split path/to/101_ObjectCategories" in msg and "\n" not in msg
    assert list((tmp_path / "d").iterdir()) == []


def test_http_error_status(tmp_path):
    with Server(b"", status=404) as srv:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_caltech101(tmp_path / "d", url=srv.url, sha256="0" * 64, **fast())


def test_argument_errors(tmp_path):
    with pytest.raises(UsageError, match="--sha256"):
        download_caltech101(tmp_path, url="http://127.0.0.1:9/x.zip")
    with pytest.raises(UsageError, match="64 hexadecimal"):
        download_caltech101(tmp_path, url="http://127.0.0.1:9/x.zip", sha256="abc")
    with pytest.raises(UsageError, match="http"):
        download_caltech101(tmp_path, url="ftp://127.0.0.1/x.zip", sha256="0" * 64)
    assert CALTECH101_URL.startswith("https://data.caltech.edu/")


# ---------------------------------------------------------------- CLI


def test_cli_download_then_split(archive, tmp_path, run_cli):
    body, _, files = archive
    dest = tmp_path / "data"
    with Server(body, breaks=1) as srv:
        r = run_cli("data", "caltech101", "--dest", dest, "--url", srv.url, "--sha256", sha(body), timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"ready: {dest / FOLDER} (3 folders, 9 files)" in r.stdout
    assert_unpacked(dest / FOLDER, files)
    r = run_cli("split", dest / FOLDER, "--out", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    assert "BACKGROUND_Google" in r.stdout and "not used as classes" in r.stdout


def test_cli_errors_are_one_line_exit_2(tmp_path, run_cli):
    closed = f"http://127.0.0.1:{free_port()}/caltech-101.zip"
    cases = {
        "unreachable": (["--url", closed, "--sha256", "0" * 64], "edgeclf split"),
        "no checksum": (["--url", closed], "--sha256"),
        "bad checksum": (["--url", closed, "--md5", "xyz"], "--md5"),
    }
    for case, (extra, must_name) in cases.items():
        t0 = time.perf_counter()
        r = run_cli("data", "caltech101", "--dest", tmp_path / "d", *extra, timeout=60)
        assert time.perf_counter() - t0 < 10, case
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("edgeclf data: error: "), (case, r.stderr)
        assert must_name in lines[0] and "Traceback" not in r.stderr, case
    assert not (tmp_path / "d" / FOLDER).exists()
