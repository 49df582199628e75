"""Callables ``(B, 3, H, W) float32 ndarray → (B, C) float32 logits`` for each way of running a model.

Both go through the code that ships: eager/TorchScript modules through
:func:`edgeclf.train.inference.eager_logits`, ONNX files through the runtime's
:class:`edgeclf.runtime.inference.OrtSession` (what :class:`edgeclf.runtime.Predictor` runs).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from edgeclf.runtime.inference import OrtSession

Runner = Callable[[np.ndarray], np.ndarray]

#: The execution provider the gates use: the reference CPU kernels, available everywhere.
GATE_PROVIDERS = ("CPUExecutionProvider",)


def torch_runner(module) -> Runner:
    """Run an ``nn.Module`` or TorchScript module on CPU without autograd (eval mode, fp32)."""
    from edgeclf.train.inference import eager_logits

    def run(x: np.ndarray) -> np.ndarray:
        return eager_logits(module, x, "cpu")

    return run


def onnx_session(path: str | os.PathLike, providers: tuple[str, ...] = GATE_PROVIDERS,
                 optimize: bool = True) -> OrtSession:
    """A runtime :class:`~edgeclf.runtime.inference.OrtSession` on exactly ``providers``.

    Args:
        optimize: True runs onnxruntime's graph optimisations (its default, how applications run
            the file); False (``graph_optimization="off"``) executes the graph exactly as written,
            which is what other runtimes see: ORT's optimiser silently deletes e.g. a Dropout node
            left in training mode, so only an unoptimised session exposes it.

    Raises:
        ProviderError: a requested provider is not active (onnxruntime fell back to others).
        ArtifactError: onnxruntime cannot load the file.
    """
    # log severity 3 (errors only): fp16-on-CPU cast insertion logs warnings otherwise
    return OrtSession(path, providers=list(providers), graph_optimization="all" if optimize else "off",
                      log_severity=3)


def onnx_runner(session: OrtSession) -> Runner:
    """Run an :class:`OrtSession` (its ``logits`` output, or the first one)."""
    return session.run
