"""TorchScript export: trace the eval-mode model, freeze it, save it with its metadata inside.

Why tracing, not scripting: the registered backbones (torchvision ResNet50, timm
EfficientNet-Lite0) and the head have no data-dependent control flow, so a trace records the whole
computation; scripting would additionally compile code paths the model never takes at inference
(timm's drop-path and feature hooks), for no benefit. The trace is taken at a batch size
(:data:`EXPORT_BATCH_SIZE`) that the parity gate never uses, so the gate proves the batch axis is
not baked in.

Why the saved file is frozen but not ``optimize_for_inference``-d: ``torch.jit.freeze`` inlines
the weights as constants and runs the portable graph optimisations (Conv+BatchNorm folding, Dropout
removal, constant propagation). ``torch.jit.optimize_for_inference`` goes further with
build-specific rewrites (MKLDNN/oneDNN weight layouts on CPU); its documentation says serialization
after it "is not implemented … and is not guaranteed", and indeed a file saved after it fails in
``torch.jit.load`` ("required keyword attribute 'value' is undefined", torch 2.14). So the file
holds the frozen module, and :func:`optimize_loaded` applies ``optimize_for_inference`` on the
machine that runs it; the parity gate checks both variants at two batch sizes.

TorchScript is deprecated upstream (``torch.jit.trace``/``freeze``/``load`` emit FutureWarnings
since torch 2.5); the ONNX artifact is the primary format, and ``torch.export`` is the upstream
successor for PyTorch-native deployment. The deprecation warnings are silenced here only, in the
calls we make knowingly.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from edgeclf.runtime.artifact import TORCHSCRIPT_EXTRA_FILE

#: Batch size of the example input used for tracing and ONNX export; the parity gate uses others.
EXPORT_BATCH_SIZE = 2


@contextmanager
def _quiet_deprecations():
    """Silence torch.jit's FutureWarnings about its own deprecation (documented in the README)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*is deprecated.*")
        yield


def export_torchscript(model, example, path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Trace ``model`` on ``example``, freeze it and save it to ``path`` with ``metadata`` inside.

    Args:
        model: ``torch.nn.Module`` in eval mode, on CPU; (N, 3, H, W) float32 → (N, C) logits.
        example: float32 tensor of shape (:data:`EXPORT_BATCH_SIZE`, 3, H, W).
        path: output file (``model.torchscript.pt``).
        metadata: :meth:`runtime.artifact.ModelInfo.to_metadata`; stored as JSON in the extra file
            :data:`runtime.artifact.TORCHSCRIPT_EXTRA_FILE` (``torch.jit.load(f, _extra_files=...)``).
    Returns:
        ``path``.
    Raises:
        RuntimeError and friends from torch when the model cannot be traced or frozen (the caller
        wraps them in :class:`export.errors.ExportError`).
    """
    import torch

    path = Path(path)
    with _quiet_deprecations(), torch.no_grad():
        # check_trace=False: the parity gate below is the check, on real images and other batch sizes.
        traced = torch.jit.trace(model, (example,), check_trace=False)
        frozen = torch.jit.freeze(traced)
        frozen.save(str(path), _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(metadata, sort_keys=True)})
    return path


def load_torchscript(path: str | os.PathLike):
    """``(module, metadata)`` of a saved TorchScript artifact, with ``torch.jit.load`` alone.

    Returns:
        The loaded ``torch.jit.ScriptModule`` (CPU) and the metadata dict stored in it
        (``{}`` when the file has no edgeclf extra file).
    """
    import torch

    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    with _quiet_deprecations():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    raw = extra[TORCHSCRIPT_EXTRA_FILE]
    return module, (json.loads(raw) if raw else {})


def optimize_loaded(module):
    """``torch.jit.optimize_for_inference`` on a loaded (frozen) module, for this machine's build."""
    import torch

    with _quiet_deprecations():
        return torch.jit.optimize_for_inference(module)
