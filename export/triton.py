"""A Triton Inference Server model repository (ONNX Runtime backend) from an edgeclf artifact.

Layout written by :func:`write_triton_repository`::

    OUT_DIR/NAME/config.pbtxt     backend onnxruntime, max_batch_size, dynamic batching,
                                  input "input" FP32 [3, H, W], output "logits" FP32 [C] with
                                  label_filename "labels.txt" (Triton's classification extension),
                                  instance_group KIND_CPU or KIND_GPU, and parameters
                                  edgeclf_class_names / edgeclf_preprocess (JSON) for clients
    OUT_DIR/NAME/labels.txt       one class name per line, line i = logits column i
    OUT_DIR/NAME/1/model.onnx     the artifact's ONNX file, unchanged

Triton's shapes leave out the batch dimension when ``max_batch_size > 0``. Only onnxruntime is
needed (to read the model's metadata and I/O); no torch, no tritonclient.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgeclf.runtime.errors import ArtifactError, UsageError

INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16"}


def _pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal (UTF-8 kept, quotes/backslashes/newlines escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def triton_config_text(name: str, predictor, max_batch_size: int, instance_kind: str, instance_count: int,
                       max_queue_delay_us: int) -> str:
    """The ``config.pbtxt`` text for a loaded :class:`~edgeclf.runtime.Predictor`'s model."""
    crop = predictor.preprocess_config.crop_size
    session = predictor.session
    in_type = _TYPES[session.get_inputs()[0].type]
    out = next(o for o in session.get_outputs() if o.name == predictor.output_name)
    out_type = _TYPES.get(out.type, "TYPE_FP32")
    params = {
        "edgeclf_class_names": json.dumps(list(predictor.class_names), ensure_ascii=False),
        "edgeclf_preprocess": json.dumps(predictor.preprocess_config.to_dict()),
        "edgeclf_arch": predictor.info.arch,
        "edgeclf_version": predictor.info.edgeclf_version,
    }
    lines = [
        f"name: {_pbtxt_string(name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [",
        "  {",
        f"    name: {_pbtxt_string(predictor.input_name)}",
        f"    data_type: {in_type}",
        f"    dims: [ 3, {crop}, {crop} ]",
        "  }",
        "]",
        "output [",
        "  {",
        f"    name: {_pbtxt_string(predictor.output_name)}",
        f"    data_type: {out_type}",
        f"    dims: [ {len(predictor.class_names)} ]",
        '    label_filename: "labels.txt"',
        "  }",
        "]",
        "dynamic_batching {",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instance_count}",
        f"    kind: {INSTANCE_KINDS[instance_kind]}",
        "  }",
        "]",
    ]
    for key, value in params.items():
        lines.append(f"parameters {{ key: {_pbtxt_string(key)} value: {{ string_value: {_pbtxt_string(value)} }} }}")
    return "\n".join(lines) + "\n"


def write_triton_repository(artifact: str | os.PathLike, out_dir: str | os.PathLike, name: str = "edgeclf",
                            max_batch_size: int = 32, instance_kind: str = "cpu", instance_count: int = 1,
                            precision: str = "fp32", max_queue_delay_us: int = 5000, force: bool = False) -> Path:
    """Write ``out_dir/name/`` (config.pbtxt, labels.txt, 1/model.onnx) for Triton's ONNX Runtime backend.

    Args:
        artifact: an artifact directory (``edgeclf export``) or an ``.onnx`` file with edgeclf metadata.
        out_dir: the model repository (created if missing; other models in it are left alone).
        name: the model's folder and name (the ``{name}`` in Triton's URLs).
        max_batch_size: largest batch Triton's dynamic batcher forms (images).
        instance_kind: ``"cpu"`` or ``"gpu"`` instance group.
        instance_count: model instances (parallel executions) per device.
        precision: which ONNX file of the artifact (``fp32``, ``fp16``, ``int8``).
        max_queue_delay_us: how long (µs) the dynamic batcher waits to fill a batch.
        force: replace an existing ``out_dir/name``.
    Returns:
        The model's folder ``out_dir/name``.
    Raises:
        UsageError: bad name, batch size, kind or count; ``out_dir/name`` exists without ``force``.
        ArtifactError: the artifact is missing, not an edgeclf model, or has a fixed batch size.
    """
    from edgeclf.runtime.predictor import Predictor

    if not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise UsageError(f"name={name!r}: give a plain folder name such as 'edgeclf'")
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise UsageError(f"max_batch_size={max_batch_size!r}: give an integer >= 1")
    if instance_kind not in INSTANCE_KINDS:
        raise UsageError(f"instance_kind={instance_kind!r}: use one of {', '.join(INSTANCE_KINDS)}")
    if isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count < 1:
        raise UsageError(f"instance_count={instance_count!r}: give an integer >= 1")
    if max_queue_delay_us < 0:
        raise UsageError(f"max_queue_delay_us={max_queue_delay_us!r}: give a number of microseconds >= 0")
    predictor = Predictor(artifact, device="cpu", precision=precision, intra_op_threads=1)
    if predictor.backend.fixed_batch:
        raise ArtifactError(f"{predictor.model_path}: the ONNX input has a fixed batch size"
                            f" ({predictor.backend.fixed_batch}); Triton's dynamic batching needs a dynamic one"
                            " (re-export with `edgeclf export`)")
    out_dir = Path(out_dir)
    target = out_dir / name
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "1").mkdir(parents=True)
        shutil.copyfile(predictor.model_path, staging / "1" / "model.onnx")
        (staging / "labels.txt").write_text("".join(f"{c}\n" for c in predictor.class_names), encoding="utf-8")
        (staging / "config.pbtxt").write_text(
            triton_config_text(name, predictor, max_batch_size, instance_kind, instance_count, max_queue_delay_us),
            encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
