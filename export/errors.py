"""Export-side exceptions; all derive from :class:`edgeclf.runtime.errors.EdgeclfError`.

The CLI turns them into a one-line message: exit code 2 for bad input (``UsageError``,
``CheckpointError``, ``ManifestError``, ``InvalidImageError``, ``ProviderError``), exit code 1 for
a model that does not export or does not pass its gate (``ExportError``, ``ParityError``).
"""

from edgeclf.runtime.errors import EdgeclfError, InvalidImageError, ManifestError, ProviderError, UsageError
from edgeclf.train.errors import CheckpointError


class ExportError(EdgeclfError):
    """torch's TorchScript/ONNX exporter, or a post-processing step, failed on a valid checkpoint.

    The message names the format and the underlying error; nothing was written.
    """

    exit_code = 1


class ParityError(EdgeclfError):
    """An exported model failed the parity (or accuracy) gate; nothing was written."""

    exit_code = 1


class GateError(ParityError):
    """The parity (fp32) or accuracy (fp16/int8) gate failed; nothing was written.

    Attributes:
        report: the full parity report (the dict that would have been ``parity.json``), so a
            caller can show every number, not only the one-line message.
    """

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


__all__ = [
    "CheckpointError", "EdgeclfError", "ExportError", "GateError", "InvalidImageError", "ManifestError",
    "ParityError", "ProviderError", "UsageError",
]
