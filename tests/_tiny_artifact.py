"""A tiny, seeded edgeclf artifact for tests: torch model → ONNX with edgeclf metadata → artifact dir.

``build_tiny_artifact(out_dir)`` writes ``out_dir/model.onnx`` (with :meth:`ModelInfo.to_metadata`
in ``metadata_props``) and a complete ``artifact.json``, and returns the eager torch model so a test
can compute the expected answer itself. The ``tiny_artifact`` fixture builds one per session.

Model: Conv2d(3, 16, 16, stride 16) (a patch embedding: 14 x 14 patches at 224) → ReLU → global
average pool → Linear(16, C), random init with a fixed seed; the Linear weights are scaled by 10
so the classes' probabilities are well apart (top-k orderings then do not hinge on float
rounding). Few pooled positions keep onnxruntime's and torch's float32 sums close: on the 216
sample images the probabilities differ by < 1e-6, the top-4 ranks by > 3e-4.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeclf.runtime.artifact import FORMAT_FILES, SCHEMA, SCHEMA_VERSION, ModelInfo, write_artifact_json
from edgeclf.runtime.files import file_sha256
from edgeclf.runtime.preprocess import PreprocessConfig

CLASS_NAMES = ("Leopards", "airplanes", "butterfly", "camera", "elephant", "lamp", "rhino", "umbrella", "watch")


@dataclass
class TinyArtifact:
    dir: Path
    onnx_path: Path
    model: object  # torch.nn.Module, eval mode, on CPU
    info: ModelInfo

    def torch_probs(self, batch: np.ndarray) -> np.ndarray:
        """Eager torch softmax probabilities (float64, (N, C)) for a preprocessed float32 batch."""
        import torch

        with torch.no_grad():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(batch)))
        return torch.softmax(logits.double(), dim=1).numpy()


def build_model(num_classes: int, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=16, stride=16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, num_classes),
    )
    with torch.no_grad():
        model[-1].weight.mul_(10.0)
    return model.eval()


def export_onnx_bytes(model, crop_size: int, fixed_batch: int | None = None) -> bytes:
    """ONNX (opset 17) bytes with input "input" [N, 3, crop, crop] and output "logits" [N, C]."""
    import torch

    x = torch.zeros(fixed_batch or 1, 3, crop_size, crop_size)
    buf = io.BytesIO()
    dynamic = None if fixed_batch else {"input": {0: "N"}, "logits": {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, still fine
        torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamic_axes=dynamic, dynamo=False)
    return buf.getvalue()


def write_onnx(path: Path, onnx_bytes: bytes, metadata: dict[str, str] | None) -> Path:
    """Save ONNX bytes to ``path`` with ``metadata`` as ``metadata_props`` (None: no metadata)."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    del proto.metadata_props[:]
    for key, value in (metadata or {}).items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def build_tiny_artifact(out_dir: Path, class_names=CLASS_NAMES, preprocess: PreprocessConfig = PreprocessConfig(),
                        seed: int = 0, fixed_batch: int | None = None, torchscript: bool = False,
                        model=None, arch: str = "tiny-test") -> TinyArtifact:
    """Write ``out_dir/model.onnx`` + ``artifact.json`` (+ ``model.torchscript.pt`` if asked) for a
    seeded tiny model (or the given eval-mode ``model``); return it all."""
    import torch

    out_dir = Path(out_dir)
    model = build_model(len(class_names), seed) if model is None else model
    info = ModelInfo(class_names=tuple(class_names), preprocess=preprocess, arch=arch,
                     source_checkpoint_sha256="0" * 64)
    onnx_path = write_onnx(out_dir / FORMAT_FILES["onnx"],
                           export_onnx_bytes(model, preprocess.crop_size, fixed_batch), info.to_metadata())
    if torchscript:
        example = torch.zeros(1, 3, preprocess.crop_size, preprocess.crop_size)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still exported
            traced = torch.jit.freeze(torch.jit.trace(model, example))
            torch.jit.save(traced, str(out_dir / FORMAT_FILES["torchscript"]),
                           _extra_files={"edgeclf.json": json.dumps(info.to_metadata())})
    write_artifact_json(out_dir, tiny_description(onnx_path, info))
    return TinyArtifact(out_dir, onnx_path, model, info)


def tiny_description(onnx_path: Path, info: ModelInfo) -> dict:
    """A complete ``artifact.json`` for a tiny artifact (as export writes it, gate numbers made up)."""
    cfg, n = info.preprocess, len(info.class_names)
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created_utc": "2026-01-01T00:00:00Z",
        "formats": {"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path),
                             "size_bytes": onnx_path.stat().st_size, "precision": "fp32", "opset": 17}},
        "input": {"name": "input", "dtype": "float32", "shape": ["N", 3, cfg.crop_size, cfg.crop_size],
                  "layout": "NCHW", "color_order": "RGB"},
        "output": {"name": "logits", "dtype": "float32", "shape": ["N", n], "meaning": "logits",
                   "softmax_applied": False},
        "class_names": list(info.class_names), "num_classes": n, "preprocess": cfg.to_dict(), "arch": info.arch,
        "metadata": info.to_metadata(),
        "source_checkpoint": {"path": "/nonexistent/best.pt", "sha256": info.source_checkpoint_sha256,
                              "split_sha256": "0" * 64, "epoch": 1, "weights": "none"},
        "opset": 17,
        "parity": {"passed": True, "images": 1, "batch_sizes": [1, 5], "max_abs_prob_diff_tolerance": 1e-4,
                   "formats": {"onnx": {"gate": "parity", "max_abs_prob_diff": 0.0, "top1_agreement": 1.0}},
                   "report": "parity.json"},
        "versions": {"edgeclf": info.edgeclf_version},
        "export_seconds": 0.0,
    }


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> TinyArtifact:
    """A nine-class tiny artifact (ImageNet preprocessing, 256 → 224), built once per session."""
    import torch

    torch.set_num_threads(1)
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny_artifact"))
