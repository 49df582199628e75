"""Eager (PyTorch) inference, once: the reference logits for evaluation, the export gates and bench.

:func:`eager_logits` is the one place an ``nn.Module`` (or a TorchScript module) is run for its
outputs outside training: eval mode, ``torch.inference_mode``, fp32 (no autocast), the same batch
order in and out. ``edgeclf evaluate`` (:func:`train.evaluate.predict_logits`), the export parity
gates (:func:`export.runners.torch_runner`) and the ``eager``/``torchscript`` bench backends call it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .errors import UsageError


def _as_tensor(batch):
    import torch

    if isinstance(batch, (tuple, list)):  # a DataLoader's (x, y, ...) tuple: the input comes first
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    return batch


def eager_logits(model, inputs: "np.ndarray | torch.Tensor | Iterable", device="cpu", batch_size: int | None = None,
                 channels_last: bool = False, on_batch=None) -> np.ndarray:
    """The model's outputs for preprocessed inputs, as float32 numpy.

    Args:
        model: ``torch.nn.Module`` or TorchScript module mapping (B, 3, H, W) float32 to (B, C)
            logits. It is put in eval mode and moved to ``device`` (use
            ``model.to(device)`` beforehand to avoid a copy per call).
        inputs: one array/tensor (N, 3, H, W) float32, split into batches of ``batch_size``
            (``None``: one batch), or an iterable of batches (arrays, tensors, or DataLoader
            tuples whose first item is the input), run as they come.
        device: ``torch.device`` or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        batch_size: images per forward pass when ``inputs`` is one array/tensor.
        channels_last: move each input batch to ``torch.channels_last`` (faster convolutions on
            CPU); the model's own memory format is left alone.
        on_batch: called with the number of rows of each batch once it is done (progress).
    Returns:
        float32 (N, C), rows in input order; (0, 0) when there were no inputs.
    Raises:
        UsageError: ``batch_size`` < 1.
    """
    import torch

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"batch_size={batch_size!r}: need an integer >= 1")
    dev = torch.device(device)
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        step = batch_size or max(len(inputs), 1)
        batches: Iterable = (inputs[i:i + step] for i in range(0, len(inputs), step))
    else:
        batches = inputs
    model = model.to(dev).eval()
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in batches:
            x = _as_tensor(batch).to(dev, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).float().cpu().numpy())
            if on_batch is not None:
                on_batch(len(out[-1]))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
