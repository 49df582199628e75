"""Typed exceptions shared by every edgeclf stage.

All of them derive from :class:`EdgeclfError`, which the CLI turns into a one-line message and an
exit code (2 for bad usage or unusable input). Each message names the file, URL or argument at
fault and, where there is one, the fix. Other packages (``train``, ``export``, ``bench``) subclass
these rather than inventing parallel hierarchies, so ``except EdgeclfError`` catches them all.

Hierarchy::

    EdgeclfError
    ├── UsageError            bad argument value (ratios, class names, formats, opset, ...)
    ├── InvalidImageError     a file/bytes/URL that does not decode to an image
    │   ├── ImageNotFoundError    a path that does not exist (also a FileNotFoundError)
    │   ├── ImageTooLargeError    more pixels than the configured limit (decompression bomb)
    │   │   └── ImageAspectRatioError  too elongated to resize within bounded memory
    │   └── ImageFetchError       an http(s) URL that cannot be fetched or is not an image
    ├── DatasetError          a data folder that cannot be split (missing, empty, too few images)
    ├── DownloadError         a dataset archive that cannot be downloaded or verified
    ├── ManifestError         a split manifest that is missing, malformed or of another schema
    ├── ArtifactError         an export artifact (dir / .onnx) missing files or edgeclf metadata
    ├── CheckpointError       a training checkpoint missing, truncated, foreign or mismatched
    ├── ProviderError         an execution provider/device that was asked for but is not active
    └── ParityError           an exported model whose outputs differ from the eager model
"""

from __future__ import annotations


class EdgeclfError(Exception):
    """Base class of every error edgeclf raises on purpose."""

    #: Exit code the CLI uses for this error (2: bad usage or unusable input).
    exit_code = 2


def first_line(err: BaseException, limit: int = 200) -> str:
    """``"TypeName: first line of the message"``, at most ``limit`` characters — for wrapping a
    library's (often multi-line) error text into edgeclf's one-line messages."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


class DatasetError(EdgeclfError):
    """A dataset folder cannot be used (missing, empty, a class with too few usable images)."""


class DownloadError(EdgeclfError):
    """A dataset archive could not be downloaded, verified or unpacked."""


class ManifestError(EdgeclfError):
    """A split manifest is missing, malformed, or of an unknown schema version."""


class ArtifactError(EdgeclfError):
    """An artifact directory or ONNX file is missing files or edgeclf metadata."""


class CheckpointError(EdgeclfError):
    """A checkpoint is missing, truncated, not an edgeclf checkpoint, or belongs to another split."""


class ProviderError(EdgeclfError):
    """An execution provider or device was requested but is not actually active."""


class ParityError(EdgeclfError):
    """An exported model failed the parity (or accuracy) gate; nothing was written."""

    exit_code = 1
