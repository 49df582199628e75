"""Downloading images from http(s) URLs, bounded in time and size, then decoding them.

Every failure raises :class:`~runtime.errors.ImageFetchError` (a subclass of
``InvalidImageError``) naming the URL: connection refused or unreachable host, timeouts, HTTP
status >= 400, a textual ``Content-Type`` (``text/html``, ``application/json`` ...: an error page
or a web page, not an image), a body larger than ``max_bytes``, or bytes that do not decode as an
image. An image over the pixel limit raises :class:`~runtime.errors.ImageTooLargeError` instead.

``requests`` is imported inside the functions, so ``import edgeclf.runtime`` does not pay for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from ._version import __version__
from .errors import ImageFetchError, ImageTooLargeError, InvalidImageError
from .image import DEFAULT_MAX_PIXELS, load_image

#: Content types that are never an image (error pages, web pages, API answers).
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchOptions:
    """Limits for one image download.

    Attributes:
        connect_timeout_s: seconds to wait for the TCP/TLS connection.
        read_timeout_s: seconds to wait for each chunk of the response (between bytes).
        total_timeout_s: seconds the whole download may take (guards against trickling servers).
        max_bytes: largest body accepted, in bytes (checked against ``Content-Length`` first,
            then while streaming, so a lying or absent header cannot exceed it).
    """

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    max_bytes: int = 50 * 1024 * 1024


def is_url(source) -> bool:
    """True for a ``str`` starting with ``http://`` or ``https://`` (case-insensitive)."""
    return isinstance(source, str) and source[:8].lower().startswith(("http://", "https://"))


def fetch_image_bytes(url: str, options: FetchOptions = FetchOptions()) -> bytes:
    """Download ``url`` and return its body, enforcing timeouts, status, type and size.

    Args:
        url: an ``http://`` or ``https://`` URL.
        options: timeouts (seconds) and the maximum body size (bytes).
    Returns:
        The response body (at most ``options.max_bytes`` bytes).
    Raises:
        ImageFetchError: unreachable, timed out, HTTP error status, textual content type,
            empty or too large body; the message names the URL.
    """
    import requests
    import urllib3

    headers = {"User-Agent": f"edgeclf/{__version__}", "Accept": "image/*"}
    start = time.monotonic()
    try:
        with requests.get(url, stream=True, headers=headers,
                          timeout=(options.connect_timeout_s, options.read_timeout_s)) as resp:
            if resp.status_code >= 400:
                raise ImageFetchError(url, f"HTTP {resp.status_code} {resp.reason or ''}".rstrip())
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype.startswith(_TEXT_TYPES):
                raise ImageFetchError(url, f"the server returned {ctype}, not an image"
                                           " (an error or web page? use the image's own URL)")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > options.max_bytes:
                raise ImageFetchError(url, f"{int(length):,} bytes exceeds the download limit of"
                                           f" {options.max_bytes:,} bytes")
            body = bytearray()
            # read1 returns whatever has arrived (urllib3 >= 2), so the deadline is checked between
            # reads even when a server trickles a byte now and then (never idle long enough for the
            # read timeout); iter_content's reads would block until a whole chunk is there.
            read1 = getattr(resp.raw, "read1", None)
            chunks = iter(lambda: read1(_CHUNK, decode_content=True), b"") if read1 else resp.iter_content(_CHUNK)
            for chunk in chunks:
                body += chunk
                if len(body) > options.max_bytes:
                    raise ImageFetchError(url, f"more than {options.max_bytes:,} bytes; download"
                                               " stopped (raise max_bytes if the image is trusted)")
                if time.monotonic() - start > options.total_timeout_s:
                    raise ImageFetchError(url, f"download took longer than {options.total_timeout_s:g} s")
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:  # read1: urllib3's own
        _raise_fetch_error(url, err, options)
    if not body:
        raise ImageFetchError(url, "empty response body (zero bytes)")
    return bytes(body)


def _raise_fetch_error(url: str, err: Exception, options: FetchOptions):
    """One :class:`ImageFetchError` for a ``requests`` failure: timeout, connection, or other."""
    import requests
    import urllib3

    if isinstance(err, (requests.exceptions.Timeout, requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError)):
        # A read timeout while streaming the body arrives as a ConnectionError wrapping urllib3's
        # ReadTimeoutError; report every timeout as one.
        if isinstance(err, requests.exceptions.Timeout) or any(isinstance(e, TimeoutError) or "timed out" in str(e)
                                                               for e in _chain(err)):
            raise ImageFetchError(url, f"timed out (connect timeout {options.connect_timeout_s:g} s,"
                                       f" read timeout {options.read_timeout_s:g} s)") from err
        raise ImageFetchError(url, f"cannot connect ({_root_cause(err)})") from err
    # invalid URL, too many redirects, ...
    raise ImageFetchError(url, f"request failed ({type(err).__name__}: {err})") from err


def _chain(err: BaseException) -> list[BaseException]:
    """``err``, its causes/contexts, and exceptions passed as arguments (requests wraps urllib3's)."""
    seen, todo = [], [err]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]  # urllib3 keeps .reason
    return seen


def _root_cause(err: BaseException) -> str:
    """The innermost exception's text: 'Connection refused' rather than urllib3's nested repr."""
    while err.__context__ is not None or err.__cause__ is not None:
        err = err.__cause__ or err.__context__
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).split(": ", 1)[-1] or type(err).__name__


def load_image_url(url: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                   options: FetchOptions = FetchOptions(), draft_to: int | None = None) -> Image.Image:
    """Download and decode an image URL through :func:`runtime.image.load_image` (``draft_to``: see there).

    Returns:
        RGB ``PIL.Image``, EXIF orientation applied.
    Raises:
        ImageFetchError: see :func:`fetch_image_bytes`; also bytes that do not decode.
        ImageTooLargeError: more pixels than ``max_pixels``.
    """
    data = fetch_image_bytes(url, options)
    try:
        return load_image(data, max_pixels=max_pixels, name=url, draft_to=draft_to)
    except (ImageTooLargeError, ImageFetchError):
        raise
    except InvalidImageError as err:
        raise ImageFetchError(url, err.reason) from err
