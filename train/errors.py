"""Training-side exceptions (data folders, downloads, checkpoints, weights).

All derive from :class:`edgeclf.runtime.errors.EdgeclfError`, so the CLI prints them as one line
and exits 2. ``UsageError`` is re-exported for the training modules' convenience.
"""

from edgeclf.runtime.errors import EdgeclfError, FormatError, UsageError


class DatasetError(EdgeclfError):
    """A dataset folder cannot be used (missing, empty, a class with too few usable images), or an
    image of a split does not decode (the message names the file)."""


class DownloadError(EdgeclfError):
    """A dataset archive could not be downloaded, verified or unpacked."""


class CheckpointError(FormatError):
    """A checkpoint is missing, truncated, not an edgeclf checkpoint, of another schema version,
    has a missing or mistyped field, or belongs to another split."""


class WeightsError(EdgeclfError):
    """Pretrained weights cannot be found, downloaded or loaded (the message names the file/URL)."""


__all__ = ["CheckpointError", "DatasetError", "DownloadError", "EdgeclfError", "UsageError", "WeightsError"]
