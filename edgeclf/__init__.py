"""edgeclf: folder of photos → fine-tuned classifier → parity-checked ONNX/TorchScript → torch-free predictor.

The library lives in the top-level packages ``runtime`` (torch-free inference), ``train``,
``export`` and ``bench``; this package holds only the ``edgeclf`` command line.
"""

from runtime._version import __version__

__all__ = ["__version__"]
