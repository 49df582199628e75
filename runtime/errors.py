"""The runtime's typed exceptions and the base every edgeclf error derives from.

All of them derive from :class:`EdgeclfError`, which the CLI turns into a one-line message and an
exit code (2 for bad usage or unusable input). Each message names the file, URL or argument at
fault and, where there is one, the fix. Each layer keeps its own errors next to its code and
subclasses these, so ``except EdgeclfError`` catches them all:

Hierarchy (``edgeclf.runtime.errors`` unless named otherwise)::

    EdgeclfError
    ├── UsageError            bad argument value (ratios, class names, formats, opset, ...)
    ├── InvalidImageError     a file/bytes/URL that does not decode to an image
    │   ├── ImageNotFoundError    a path that does not exist (also a FileNotFoundError)
    │   ├── ImageTooLargeError    more pixels than the configured limit (decompression bomb)
    │   │   └── ImageAspectRatioError  too elongated to resize within bounded memory
    │   └── ImageFetchError       an http(s) URL that cannot be fetched or is not an image
    ├── FormatError           an edgeclf JSON file (artifact.json, bench.json, ...) that is
    │   │                     missing, malformed, of another schema version, or lacks a field
    │   ├── ManifestError         a split manifest (split.json)
    │   └── ArtifactError         an export artifact (dir / .onnx) missing files or edgeclf metadata
    ├── ProviderError         an execution provider/device that was asked for but is not active
    ├── edgeclf.train.errors:  DatasetError, DownloadError, CheckpointError, WeightsError
    └── edgeclf.export.errors: ExportError, ParityError (GateError)
"""

from __future__ import annotations


class EdgeclfError(Exception):
    """Base class of every error edgeclf raises on purpose."""

    #: Exit code the CLI uses for this error (2: bad usage or unusable input).
    exit_code = 2


def first_line(err: BaseException, limit: int = 240) -> str:
    """``"TypeName: first line of the message"``, at most ``limit`` characters — for wrapping a
    library's (often multi-line) error text into edgeclf's one-line messages. A longer line keeps
    its start and its end (libraries such as onnxruntime put the reason last, after a source
    location: "... model.cc:179 ... Unsupported model IR version: 10, max supported IR version: 9")."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + " … " + text[-(limit - head - 3):]


class UsageError(EdgeclfError, ValueError):
    """An argument value is invalid; the message names the argument and the valid values."""


class InvalidImageError(EdgeclfError, ValueError):
    """A file, byte string or URL does not hold a decodable image.

    Attributes:
        source: the path, URL or ``"<bytes>"`` description of the input that failed.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ImageNotFoundError(InvalidImageError, FileNotFoundError):
    """An image path that does not exist (also a ``FileNotFoundError``)."""


class ImageTooLargeError(InvalidImageError):
    """An image has more pixels than the configured limit (protection against decompression bombs)."""


class ImageAspectRatioError(ImageTooLargeError):
    """An image is more elongated than ``runtime.image.MAX_ASPECT_RATIO`` (e.g. a 1 x 20,000 strip):
    resizing its shorter side to the model's size would need an intermediate of millions of pixels."""


class ImageFetchError(InvalidImageError):
    """An http(s) image URL could not be fetched, or what came back is not an image."""


class FormatError(EdgeclfError):
    """An edgeclf file (JSON document or checkpoint dict) is missing, malformed, truncated, of
    another schema or schema version, or has a missing/mistyped field.

    Attributes:
        source: the file (or other source) at fault, as given.
        field: dotted path of the bad field (``"preprocess.crop_size"``), or ``None`` when the
            problem is the whole file (unreadable, not JSON, another schema).
    """

    def __init__(self, message: str, source: str | None = None, field: str | None = None):
        super().__init__(message)
        self.source = source
        self.field = field


class ManifestError(FormatError):
    """A split manifest is missing, malformed, or of an unknown schema version."""


class ArtifactError(FormatError):
    """An artifact directory or ONNX file is missing files or edgeclf metadata."""


class ProviderError(EdgeclfError):
    """An execution provider or device was requested but is not actually active."""
