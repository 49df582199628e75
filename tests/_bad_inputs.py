"""Bad and unusual inputs, made by the tests themselves: broken files and a local HTTP server.

* :func:`huge_png` — a valid 8-bit grey PNG of any size whose IDAT is built from one repeated
  deflate block (rows of zeros), so a 30,000 x 30,000 (900 Mpx) PNG costs about 1 MB and a few
  milliseconds to make, and would need 900 MB to decode.
* :func:`png_bytes`, :func:`jpeg_bytes`, :func:`corrupt_png_crc` — small images and a PNG whose
  chunk checksum is wrong.
* :func:`serve` — a threaded ``http.server`` on 127.0.0.1 (port 0) with fixed routes.
"""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


def noise_rgb(seed: int = 0, size=(48, 40)) -> np.ndarray:
    """uint8 (H, W, 3) noise, size given as (W, H)."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def png_bytes(arr: np.ndarray | None = None, **save) -> bytes:
    img = Image.fromarray(noise_rgb() if arr is None else arr)
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def jpeg_bytes(arr: np.ndarray | None = None, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise_rgb() if arr is None else arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def corrupt_png_crc(png: bytes, chunk: bytes = b"IDAT") -> bytes:
    """``png`` with the CRC of its first ``chunk`` chunk inverted (the data itself intact)."""
    i = 8
    while i < len(png):
        (length,) = struct.unpack(">I", png[i:i + 4])
        if png[i + 4:i + 8] == chunk:
            crc_at = i + 8 + length
            return png[:crc_at] + bytes(b ^ 0xFF for b in png[crc_at:crc_at + 4]) + png[crc_at + 4:]
        i += 12 + length
    raise ValueError(f"no {chunk!r} chunk")


def huge_png(width: int, height: int, rows_per_block: int = 64) -> bytes:
    """A valid 8-bit greyscale PNG of ``width`` x ``height`` black pixels, built in milliseconds.

    Each scanline is a filter byte 0 and ``width`` zero bytes. The zlib stream is one deflate
    block of ``rows_per_block`` rows compressed with a full flush (which resets the compressor, so
    the same input block compresses to the same bytes) repeated, a final empty block, and the
    Adler-32 of ``n`` zero bytes, which is ``(n % 65521) << 16 | 1``.
    """
    row = b"\0" * (width + 1)
    full, rest = divmod(height, rows_per_block)
    comp = zlib.compressobj(9)
    if full < 2:  # small image: compress directly
        idat = zlib.compress(row * height, 9)
    else:
        raw_block = row * rows_per_block
        head = comp.compress(raw_block) + comp.flush(zlib.Z_FULL_FLUSH)  # zlib header + block
        block = comp.compress(raw_block) + comp.flush(zlib.Z_FULL_FLUSH)
        if comp.compress(raw_block) + comp.flush(zlib.Z_FULL_FLUSH) != block:
            raise AssertionError("deflate block not reproducible")
        # remaining rows + final block, without the (wrong, partial) Adler-32 of this compressor
        tail = (comp.compress(row * rest) + comp.flush(zlib.Z_FINISH))[:-4]
        n = (width + 1) * height
        idat = head + block * (full - 1) + tail + struct.pack(">I", ((n % 65521) << 16) | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# -- HTTP ------------------------------------------------------------------------------------------

#: path → (status, content type or None, body, extra behaviour)
Route = tuple


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        status, ctype, body, mode = route
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if mode == "no-length":  # stream without Content-Length, close to end
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])
            return
        if mode == "lie-length":  # claims a huge body
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "slow":
            time.sleep(2.0)
        if mode == "drip":  # one byte every 0.1 s (never idle long enough for a read timeout), 3 s at most
            for i in range(min(len(body), 30)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.1)
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve(routes: dict):
    """Serve ``routes`` ({path: (status, content_type, body, mode)}) on 127.0.0.1:0; yield base URL.

    ``mode``: ``None``; ``"slow"`` (2 s before the body); ``"drip"`` (a byte every 0.1 s); ``"no-length"`` (body streamed without
    Content-Length); ``"lie-length"`` (Content-Length of 1 TB, no body).
    """
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 whose port nothing listens on (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/image.jpg"
