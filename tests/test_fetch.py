"""runtime.fetch: http(s) images from a local server on 127.0.0.1 — good, 404, HTML, too big, slow, down."""

from __future__ import annotations

import numpy as np
import pytest

from _bad_inputs import closed_port_url, huge_png, jpeg_bytes, noise_rgb, png_bytes, serve
from edgeclf.runtime.errors import ImageFetchError, ImageTooLargeError, InvalidImageError
from edgeclf.runtime.fetch import FetchOptions, fetch_image_bytes, is_url, load_image_url
from edgeclf.runtime.image import load_image

ARR = noise_rgb(7, (40, 30))
PNG = png_bytes(ARR)
HTML = b"<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>"


@pytest.fixture(scope="module")
def server():
    routes = {
        "/img.png": (200, "image/png", PNG, None),
        "/octet": (200, "application/octet-stream", PNG, None),
        "/no-type": (200, None, PNG, None),
        "/page.html": (200, "text/html; charset=utf-8", HTML, None),
        "/html-as-jpeg": (200, "image/jpeg", HTML, None),
        "/json": (200, "application/json", b'{"error": "nope"}', None),
        "/server-error": (500, "image/png", PNG, None),
        "/empty": (200, "image/png", b"", None),
        "/big.jpg": (200, "image/jpeg", jpeg_bytes(noise_rgb(1, (400, 300))), None),
        "/big-streamed": (200, "image/jpeg", b"\xff" * 300_000, "no-length"),
        "/lying-length": (200, "image/jpeg", b"", "lie-length"),
        "/slow.png": (200, "image/png", PNG, "slow"),
        "/drip.png": (200, "image/png", PNG, "drip"),
        "/bomb.png": (200, "image/png", huge_png(30_000, 30_000), None),
    }
    with serve(routes) as base:
        yield base


def test_is_url():
    assert is_url("http://a/b.jpg") and is_url("HTTPS://a/b.jpg")
    assert not is_url("ftp://a/b.jpg") and not is_url("photo.jpg") and not is_url(b"http://x")


@pytest.mark.parametrize("path", ["/img.png", "/octet", "/no-type"])
def test_image_urls_decode_to_the_served_pixels(server, path):
    assert fetch_image_bytes(server + path) == PNG
    np.testing.assert_array_equal(np.asarray(load_image_url(server + path)), ARR)


def test_404(server):
    with pytest.raises(ImageFetchError, match=r"http://127\.0\.0\.1:\d+/missing\.jpg: HTTP 404 Not Found"):
        load_image_url(server + "/missing.jpg")
    with pytest.raises(ImageFetchError, match=r"/server-error: HTTP 500"):
        load_image_url(server + "/server-error")


@pytest.mark.parametrize("path, message", [
    ("/page.html", "the server returned text/html, not an image"),
    ("/json", "the server returned application/json, not an image"),
    ("/html-as-jpeg", "is HTML/XML text, not an image"),  # lying Content-Type: the decoder says so
    ("/empty", r"empty response body"),
])
def test_html_and_other_non_images(server, path, message):
    with pytest.raises(ImageFetchError, match=path + ": " + message) as info:
        load_image_url(server + path)
    assert isinstance(info.value, InvalidImageError)  # the hierarchy: a fetch error is an invalid image


def test_download_size_limit(server):
    small = FetchOptions(max_bytes=100_000)
    assert len(fetch_image_bytes(server + "/big.jpg")) > 100_000
    with pytest.raises(ImageFetchError, match=r"/big\.jpg: [\d,]+ bytes exceeds the download limit of 100,000"):
        fetch_image_bytes(server + "/big.jpg", small)  # refused from Content-Length
    with pytest.raises(ImageFetchError, match=r"/big-streamed: more than 100,000 bytes; download stopped"):
        fetch_image_bytes(server + "/big-streamed", small)  # no Content-Length: counted while streaming
    with pytest.raises(ImageFetchError, match=r"/lying-length: 1,000,000,000,000 bytes exceeds"):
        fetch_image_bytes(server + "/lying-length")


def test_read_timeout(server):
    with pytest.raises(ImageFetchError, match=r"/slow\.png: (timed out|cannot connect).*[Rr]ead"):
        fetch_image_bytes(server + "/slow.png", FetchOptions(read_timeout_s=0.3))


def test_a_trickling_server_hits_the_total_deadline(server):
    """A byte every 0.1 s never trips the 20 s read timeout; the whole download still ends at
    total_timeout_s, not when the server stops."""
    import time

    start = time.monotonic()
    with pytest.raises(ImageFetchError, match=r"/drip\.png: download took longer than 0\.5 s"):
        fetch_image_bytes(server + "/drip.png", FetchOptions(total_timeout_s=0.5))
    assert time.monotonic() - start < 2.5


def test_unreachable(server):
    url = closed_port_url()
    with pytest.raises(ImageFetchError, match=rf"{url}: cannot connect \(.*[Rr]efused"):
        load_image_url(url)


def test_bomb_over_http_is_too_large_not_a_fetch_error(server):
    with pytest.raises(ImageTooLargeError, match=r"/bomb\.png: .*900000000 pixels"):
        load_image_url(server + "/bomb.png")


def test_load_image_does_not_fetch():
    """load_image takes paths; a URL string there is a missing file (the Predictor dispatches URLs)."""
    with pytest.raises(InvalidImageError):
        load_image("http://127.0.0.1:9/x.png")
