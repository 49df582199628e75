"""edgeclf runtime: torch-free inference with numpy, Pillow and onnxruntime.

``from edgeclf.runtime import Predictor`` (or ``from edgeclf import Predictor``) is what applications import. This package never imports torch,
torchvision, timm or edgeclf's training code (a test checks it in a subprocess). onnxruntime itself
is imported only when a :class:`Predictor` is created, so ``import edgeclf.runtime`` stays cheap.
"""

from ._version import __version__
from .artifact import ModelInfo
from .errors import (
    ArtifactError,
    EdgeclfError,
    FormatError,
    ImageFetchError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageError,
    ProviderError,
    UsageError,
)
from .fetch import FetchOptions
from .image import load_image
from .preprocess import PreprocessConfig, preprocess, preprocess_batch

__all__ = [
    "__version__",
    "ArtifactError",
    "EdgeclfError",
    "FetchOptions",
    "FormatError",
    "ImageFetchError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "InvalidImageError",
    "ModelInfo",
    "Prediction",
    "Predictions",
    "Predictor",
    "PreprocessConfig",
    "RemoteError",
    "RemotePredictor",
    "ProviderError",
    "UsageError",
    "load_image",
    "preprocess",
    "preprocess_batch",
]


def __getattr__(name):  # lazy: keeps `import edgeclf.runtime` free of onnxruntime until a Predictor is needed
    if name in ("Predictor", "Prediction", "Predictions"):
        from . import predictor

        return getattr(predictor, name)
    if name in ("RemotePredictor", "RemoteError"):  # tritonclient is imported when one is created
        from . import remote

        return getattr(remote, name)
    raise AttributeError(f"module 'edgeclf.runtime' has no attribute {name!r}")
