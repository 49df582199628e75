"""Training-side exceptions; all derive from :class:`runtime.errors.EdgeclfError`."""

from edgeclf.runtime.errors import CheckpointError, DatasetError, DownloadError, EdgeclfError, UsageError


class WeightsError(EdgeclfError):
    """Pretrained weights cannot be found, downloaded or loaded (the message names the file/URL)."""


__all__ = ["CheckpointError", "DatasetError", "DownloadError", "EdgeclfError", "UsageError", "WeightsError"]
