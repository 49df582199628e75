"""Callables ``(B, 3, H, W) float32 ndarray → (B, C) float32 logits`` for each way of running a model."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from edgeclf.runtime.artifact import INPUT_NAME
from edgeclf.runtime.errors import ProviderError

Runner = Callable[[np.ndarray], np.ndarray]

#: The execution provider the gates use: the reference CPU kernels, available everywhere.
GATE_PROVIDERS = ("CPUExecutionProvider",)


def torch_runner(module) -> Runner:
    """Run an ``nn.Module`` or TorchScript module on CPU without autograd."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).float().numpy()

    return run


def onnx_session(path: str | os.PathLike, providers: tuple[str, ...] = GATE_PROVIDERS, optimize: bool = True):
    """An ``onnxruntime.InferenceSession`` on exactly ``providers``.

    Args:
        optimize: True runs onnxruntime's graph optimisations (its default, how applications run
            the file); False (``ORT_DISABLE_ALL``) executes the graph exactly as written, which is
            what other runtimes see: ORT's optimiser silently deletes e.g. a Dropout node left in
            training mode, so only an unoptimised session exposes it.

    Raises:
        ProviderError: onnxruntime silently fell back to other providers than those asked for
            (the message lists what was asked and what is active).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only; fp16-on-CPU cast insertion logs warnings otherwise
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
    active = session.get_providers()
    if active != list(providers):
        raise ProviderError(f"{path}: asked onnxruntime for {list(providers)}, got {active}")
    return session


def onnx_runner(session) -> Runner:
    """Run an onnxruntime session whose single input is ``input``; returns its first output."""

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT_NAME: x})[0]

    return run
