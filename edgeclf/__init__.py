"""edgeclf: folder of photos → fine-tuned classifier → parity-checked ONNX/TorchScript → torch-free predictor.

Subpackages (the project's top-level folders, installed under this one name):

- :mod:`edgeclf.runtime` — torch-free inference (numpy, Pillow, onnxruntime): ``Predictor``;
- :mod:`edgeclf.train` — split, backbones, fine-tuning loop, checkpoints, evaluation (torch);
- :mod:`edgeclf.export` — TorchScript/ONNX artifacts behind parity gates (torch, onnx);
- :mod:`edgeclf.bench` — latency, throughput, memory and accuracy of every format;
- :mod:`edgeclf.commands` — the ``edgeclf`` command line.

``from edgeclf import Predictor`` is lazy and torch-free: onnxruntime is imported only when the
name is first used.
"""

from edgeclf.runtime._version import __version__

__all__ = ["__version__", "Prediction", "Predictor"]


def __getattr__(name):  # lazy: `import edgeclf` stays free of onnxruntime (and never imports torch)
    if name in ("Predictor", "Prediction"):
        from edgeclf.runtime import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'edgeclf' has no attribute {name!r}")
