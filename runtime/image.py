"""Image decoding: the single rule by which any input becomes an RGB ``PIL.Image``.

Training (``train/``), export parity gates, the benchmark and the runtime all decode through
:func:`load_image`, so a model sees the same pixels wherever it runs.

The mode rule (applied after EXIF orientation, on the first frame of animated images):

=====================  ===================================================================
source mode            conversion to RGB
=====================  ===================================================================
RGB                    unchanged
L, 1, P (opaque), YCbCr, LAB, HSV  ``Image.convert("RGB")``
CMYK                   ``Image.convert("RGB")`` (Pillow's naive CMYK→RGB, no ICC profile)
RGBA, LA, PA, P with transparency   alpha-composited over opaque white (255, 255, 255)
I;16, I;16B, I;16L, I;16N, I   16-bit grey: divided by 256 (>> 8) to 8-bit, then grey→RGB;
                       32-bit ``I`` values are clipped to [0, 65535] first
F                      clipped to [0, 255], rounded, then grey→RGB
=====================  ===================================================================

White is the background because photos with transparency are mostly product cut-outs shown on
white pages; black would invent dark edges the classifier never saw in training.

Checks before and while decoding: the aspect ratio (longer / shorter side, at most
:data:`MAX_ASPECT_RATIO`, so that resizing the shorter side stays bounded in memory); the pixel count (width x height from the header, before any
pixel is decoded) against ``max_pixels`` — Pillow's own guard additionally refuses more than
2 x ``PIL.Image.MAX_IMAGE_PIXELS`` inside ``Image.open``; every PNG chunk's CRC (Pillow's decoder
skips those of IDAT); truncation (Pillow raises unless an application set the process-wide
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, which we do not override). Every failure is an
:class:`~runtime.errors.InvalidImageError` subclass naming the input.

Thread safety: decoding paths, bytes and arrays is safe from several threads; a single
``PIL.Image`` object must not be passed from several threads at once (``seek`` mutates it).
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageAspectRatioError, ImageNotFoundError, ImageTooLargeError, InvalidImageError, UsageError
from .files import FileTooLargeError, read_bounded
from .walk import REASON_TEXT, has_image_extension, image_extensions, is_image_filename, walk  # noqa: F401

#: Default maximum number of pixels (width x height) accepted before decoding: 89.5 Mpx,
#: Pillow's own ``Image.MAX_IMAGE_PIXELS`` default. A 30,000 x 30,000 PNG (900 Mpx) is refused.
DEFAULT_MAX_PIXELS = 89_478_485

#: Most extreme aspect ratio accepted (longer side / shorter side). Preprocessing resizes the
#: *shorter* side to ``resize_size`` (e.g. 256), so the intermediate image grows with the ratio:
#: 256 x 12,800 px (9.4 MiB RGB) at 50:1, but 256 x 5,120,000 (3.7 GiB) for a 1 x 20,000 strip.
#: Wide panoramas (up to ~12:1) pass; strips, progress bars and 1-pixel lines do not.
MAX_ASPECT_RATIO = 50

#: Images whose shorter side is below this many pixels are still classified, but with a warning
#: (``Predictions.warnings``, the ``warnings`` field of ``edgeclf predict --json``): upscaled to the
#: model's input size (224 px for the shipped recipes), 32 px or less holds too little detail
#: for an answer to mean much — an 8 x 8 px icon still gets a confident label.
MIN_MEANINGFUL_SIDE = 32

#: The message for an empty path (the CLI and :func:`load_image` use the same words).
EMPTY_PATH_MESSAGE = "empty path: give an image file, folder or URL"

ImageSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO, Image.Image, np.ndarray]

log = logging.getLogger("edgeclf.image")


def __getattr__(name):  # IMAGE_SUFFIXES is derived from Pillow on first use (keeps imports cheap)
    if name == "IMAGE_SUFFIXES":
        return image_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def image_warnings(img: Image.Image, min_side: int = MIN_MEANINGFUL_SIDE) -> list[str]:
    """Reasons not to trust a prediction for this decoded image, e.g. ``["small image: 8x8 px
    (short side < 32 px)"]``; empty when the image is fine."""
    if min(img.size) < min_side:
        return [f"small image: {img.width}x{img.height} px (short side < {min_side} px)"]
    return []


def expand_inputs(items, skipped: list | None = None) -> list[tuple[str, object]]:
    """Turn command-line inputs into ``(name, source)`` pairs, walking folders for images.

    Folders are walked by :func:`edgeclf.runtime.walk.walk` (links followed, each real folder
    once, Pillow's extensions); every real folder is walked once across all ``items``.

    Args:
        items: paths, folder paths and http(s) URLs (strings).
        skipped: if a list, receives a :class:`~edgeclf.runtime.walk.Skipped` for every entry
            of a folder that is not an image and is not an error either (hidden names, other
            extensions, FIFOs, links to folders already walked), for the caller's report.
    Returns:
        In the given order: a URL or file path → ``(item, item)``; a folder → one pair per image
        file under it (sorted by relative path), then one ``(path, InvalidImageError)`` per entry
        that should have been readable and is not (dangling link, link loop, unreadable entry);
        a folder with no image → ``(folder, InvalidImageError)``. Paths that do not exist are
        passed on, and fail when loaded (:class:`ImageNotFoundError`).
    """
    out: list[tuple[str, object]] = []
    visited: set = set()
    for item in map(str, items):
        if item.lower().startswith(("http://", "https://")) or not os.path.isdir(item):
            out.append((item, item))
            continue
        try:
            found = walk(item, visited=visited)
        except OSError as err:
            out.append((item, InvalidImageError(item, f"cannot list folder ({err.strerror or err})")))
            continue
        out += [(f, f) for f in found.files]
        for s in found.skipped:
            if s.reason in ("dangling_link", "link_loop", "unreadable"):
                out.append((s.path, InvalidImageError(s.path, f"{s.reason}: {REASON_TEXT[s.reason]}"
                                                      + (f" ({s.detail})" if s.detail else ""))))
            elif skipped is not None:
                skipped.append(s)
        if not found.files and not any(s.reason in ("dangling_link", "link_loop", "unreadable")
                                        for s in found.skipped):
            counts = ", ".join(f"{r} {n}" for r, n in found.counts().items())
            out.append((item, InvalidImageError(item, "folder holds no image files"
                                                + (f" (skipped: {counts})" if counts else "")
                                                + "; formats: see edgeclf.runtime.walk.image_extensions()")))
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded ``PIL.Image`` of any mode to RGB by the module's documented rule.

    Args:
        img: an image of any Pillow mode; animated images should already be on frame 0.
    Returns:
        A new (or the same, if already RGB) ``PIL.Image`` in mode ``"RGB"``.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (32-bit signed)
        arr = np.asarray(img).astype(np.int64)
        arr = np.clip(arr, 0, 65535) >> 8
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255)
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    return img.convert("RGB")


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return "<PIL.Image>"
    if isinstance(source, np.ndarray):
        return f"<ndarray {source.shape} {source.dtype}>"
    return getattr(source, "name", None) or f"<{type(source).__name__}>"


#: Leading bytes of the formats Pillow decodes for us, to explain a file it cannot identify.
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF",
               b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _unidentified_reason(fp) -> str:
    """Why Pillow could not identify a stream: a damaged header of a known format, text, or other."""
    try:
        fp.seek(0)
        head = fp.read(64)
    except (OSError, ValueError):
        return "not a recognised image format"
    for magic, fmt in _SIGNATURES.items():
        if head.startswith(magic):
            return f"starts like a {fmt} file but its header is corrupt (bad checksum or truncated)"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "starts like a WebP file but its header is corrupt"
    if head.lstrip()[:1] == b"<":
        return "is HTML/XML text, not an image"
    if head and all(b >= 32 or b in (9, 10, 13) for b in head):  # no control bytes: text
        return "is text, not an image"
    return "not a recognised image format"


def check_size(width: int, height: int, name: str, max_pixels: int | None) -> None:
    """Refuse an image by its header size, before any pixel is decoded.

    Raises:
        InvalidImageError: zero width or height.
        ImageTooLargeError: more than ``max_pixels`` pixels (None: no limit).
        ImageAspectRatioError: longer side / shorter side above :data:`MAX_ASPECT_RATIO`.
    """
    if width <= 0 or height <= 0:
        raise InvalidImageError(name, f"has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            name,
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}"
            " (raise max_pixels if this image is trusted)",
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageAspectRatioError(
            name, f"{width}x{height} has an aspect ratio of {ratio:,.0f}:1, above the limit of"
                  f" {MAX_ASPECT_RATIO}:1 (resizing its short side would need a huge intermediate image);"
                  " crop it to the object first"
        )


#: EXIF Orientation value → the ``Image.transpose`` that displays the image upright.
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _exif_transpose(img: Image.Image, name: str) -> Image.Image:
    """``ImageOps.exif_transpose``, robust to malformed EXIF blocks.

    Pillow's transpose re-serialises the whole EXIF block, and a wrong tag type anywhere in it
    (a GPS latitude stored as text, ...) raises TypeError, AttributeError, ValueError, ... from
    inside Pillow. Then the Orientation tag alone is read and applied (the rest of the EXIF is
    dropped); if even that cannot be read, the image is used as stored. Either way a warning
    naming the input is logged on the ``edgeclf.image`` logger; the image is never refused.
    """
    try:
        return ImageOps.exif_transpose(img)
    except Exception as err:  # noqa: BLE001 — anything a malformed EXIF block can raise
        why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    try:
        orientation = img.getexif().get(0x0112)
        method = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    except Exception:  # noqa: BLE001
        method = orientation = None
    if method is not None:
        log.warning("%s: malformed EXIF (%s); applied its orientation %d and ignored the rest",
                    name, why, orientation)
        return img.transpose(method)
    log.warning("%s: malformed EXIF (%s); image used as stored (not rotated)", name, why)
    return img


def draft_jpeg(img: Image.Image, min_side: int | None) -> None:
    """Before decoding: let libjpeg downscale a lazily opened JPEG in the DCT domain (by 1/2, 1/4 or
    1/8) as far as both sides stay >= ``min_side`` pixels (``PIL.Image.draft``). Orientation-free
    (EXIF rotation keeps the shorter side). A no-op for other formats, for ``None``, or when the
    image is not even twice ``min_side``."""
    if min_side and img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))


def _decode(fp, name: str, max_pixels: int | None, draft_to: int | None = None) -> Image.Image:
    """Open, size-check, integrity-check (PNG), decode (``draft_to``: see :func:`draft_jpeg`) and
    RGB-convert one seekable stream."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (and only errors at 2x) above MAX_IMAGE_PIXELS; we enforce our own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # EXIF parsing notes ("Tag data larger than file. Skipping tag 306"): not actionable.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
            img = Image.open(fp)  # lazy: reads the header only
            check_size(*img.size, name, max_pixels)
            if img.format == "PNG":
                # Pillow's decoder does not check the CRCs of IDAT/IEND chunks; verify() checks
                # every chunk (corrupt downloads, bit rot), then the file must be opened again.
                img.verify()
                fp.seek(0)
                img = Image.open(fp)
            img.seek(0)  # animated GIF/PNG/WebP: first frame
            draft_jpeg(img, draft_to)
            img.load()
            check_size(*img.size, name, max_pixels)  # a plugin may change the size while loading
            img = _exif_transpose(img, name)
            return to_rgb(img)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own guard fires inside Image.open
        raise ImageTooLargeError(
            name, f"refused as a decompression bomb: {err} (Pillow's own hard limit, 2 x"
                  " PIL.Image.MAX_IMAGE_PIXELS, applies whatever max_pixels says)"
        ) from err
    except UnidentifiedImageError as err:
        raise InvalidImageError(name, _unidentified_reason(fp)) from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        # Truncated JPEGs ("image file is truncated"), bad PNG CRCs, broken headers.
        raise InvalidImageError(name, f"cannot decode image: {err}") from err
    except MemoryError as err:
        raise ImageTooLargeError(name, "ran out of memory while decoding it") from err
    except Exception as err:  # noqa: BLE001 — Pillow plugins raise TypeError, IndexError, ... on crafted files
        raise InvalidImageError(name, f"cannot decode image ({type(err).__name__}: {err})") from err


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               name: str | None = None, draft_to: int | None = None) -> Image.Image:
    """Decode an image from a path, bytes, a binary file object, a PIL image or an array.

    Args:
        source: a filesystem path (``str``/``PathLike``); ``bytes``/``bytearray`` of an encoded
            image; a binary file object opened for reading; a ``PIL.Image.Image`` (any mode);
            or a numpy ``uint8`` array of shape (H, W, 3) in RGB order (or (H, W) grey).
            URLs are handled by :func:`runtime.fetch.fetch_image_bytes`, not here.
        max_pixels: refuse images with more than this many pixels before decoding them;
            ``None`` disables the guard.
        name: how to name the input in error messages (default: the path, ``<N bytes>``, ...);
            :func:`runtime.fetch.load_image_url` passes the URL.
        draft_to: for encoded JPEG input (path, bytes, file object), decode at the smallest DCT
            scale whose sides stay >= this many pixels (:func:`draft_jpeg`); ``None`` (default)
            decodes in full. Use :func:`runtime.preprocess.decode_size` of the model's config.
    Returns:
        A fully decoded ``PIL.Image`` in mode ``"RGB"``, EXIF orientation applied.
    Raises:
        ImageNotFoundError: a path that does not exist (also a ``FileNotFoundError``).
        InvalidImageError: zero-byte, truncated, corrupt or non-image input; wrong array shape/dtype.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        ImageAspectRatioError: longer side / shorter side above :data:`MAX_ASPECT_RATIO`.

    A malformed EXIF block never fails the image: its Orientation tag is applied if it can be
    read (else the image is used as stored) and a warning naming the input is logged on the
    ``edgeclf.image`` logger. Any other exception a
    crafted file makes Pillow raise becomes an :class:`InvalidImageError` naming the input.
        UsageError: an empty path (``""``), which would otherwise mean the current directory.
    """
    if isinstance(source, (str, os.PathLike)) and not os.fspath(source).strip():
        raise UsageError(EMPTY_PATH_MESSAGE)
    name = name or _describe(source)
    if isinstance(source, Image.Image):
        check_size(source.width, source.height, name, max_pixels)
        try:
            if getattr(source, "n_frames", 1) > 1:
                source.seek(0)
            return to_rgb(_exif_transpose(source, name))
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:  # lazily opened, broken
            raise InvalidImageError(name, f"cannot decode image: {err}") from err
        except Exception as err:  # noqa: BLE001
            raise InvalidImageError(name, f"cannot decode image ({type(err).__name__}: {err})") from err
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or not (
            source.ndim == 2 or (source.ndim == 3 and source.shape[2] == 3)
        ):
            raise InvalidImageError(
                name, "arrays must be uint8 of shape (H, W, 3) in RGB order or (H, W) grey"
            )
        if source.shape[0] == 0 or source.shape[1] == 0:
            raise InvalidImageError(name, f"has no pixels (shape {source.shape})")
        check_size(source.shape[1], source.shape[0], name, max_pixels)
        return to_rgb(Image.fromarray(np.ascontiguousarray(source)))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise InvalidImageError(name, "empty (zero bytes)")
        return _decode(io.BytesIO(bytes(source)), name, max_pixels, draft_to)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as err:
            if path.is_symlink():
                raise ImageNotFoundError(name, f"dangling_link: {REASON_TEXT['dangling_link']}"
                                               f" (-> {os.readlink(path)})") from err
            hint = " (only http:// and https:// URLs are fetched)" if "://" in str(source) else ""
            raise ImageNotFoundError(name, f"no such file{hint}") from err
        except (OSError, ValueError) as err:  # name too long, NUL byte, permission on a parent
            raise InvalidImageError(name, f"cannot access ({err})") from err
        if path.is_dir():
            raise InvalidImageError(name, "is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):  # a pipe (`<(cat photo.jpg)`) or a device: read it, bounded
            try:
                data = read_bounded(path)
            except FileTooLargeError as err:
                raise ImageTooLargeError(name, str(err)) from err
            except OSError as err:
                raise InvalidImageError(name, f"cannot read ({err.strerror or err})") from err
            if not data:
                raise InvalidImageError(name, "empty (zero bytes)")
            return _decode(io.BytesIO(data), name, max_pixels, draft_to)
        if st.st_size == 0:
            raise InvalidImageError(name, "empty file (zero bytes)")
        try:
            fp = open(path, "rb")
        except OSError as err:
            raise InvalidImageError(name, f"cannot open ({err.strerror or err})") from err
        with fp:
            return _decode(fp, name, max_pixels, draft_to)
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidImageError(name, "file object must be opened in binary mode ('rb')")
        if not data:
            raise InvalidImageError(name, "empty (zero bytes)")
        return _decode(io.BytesIO(data), name, max_pixels, draft_to)
    raise InvalidImageError(name, f"unsupported input type {type(source).__name__}")
