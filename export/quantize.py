"""int8 ONNX for a named CPU target: onnxruntime static quantization (QDQ, per-channel), calibrated on
training images, with float nodes only where the accuracy gate needs them.

Settings and why:

* **Types per execution target** (:data:`TARGET_TYPES`). onnxruntime's fast x86 int8 kernels
  (``VPMADDUBSW`` on AVX2, ``VPDPBUSD`` with AVX-512 VNNI / AVX-VNNI, AMX) multiply *unsigned*
  8-bit activations by *signed* 8-bit weights: ``x86`` = uint8 activations (``QUInt8``) + int8
  weights (``QInt8``). With int8 activations onnxruntime on x86 falls back to slower paths (measured
  on a 2-core AVX-512 VNNI EPYC: ResNet50 batch 1, 30.7 ms S8S8 vs 14.6 ms U8S8, fp32 42.7 ms).
  ARM's ``SDOT``/``SMMLA`` kernels want signed activations: ``arm`` = int8/int8 (S8S8).
  onnxruntime's documentation warns that U8S8 on AVX2/AVX-512 *without* VNNI (``VPMADDUBSW``)
  can saturate its 16-bit intermediate sums; the accuracy gate below measures whatever results,
  on the exporting machine's kernels.
  ``auto`` picks from ``platform.machine()`` of the exporting machine; export for another
  machine with an explicit target.
* ``QuantFormat.QDQ``: QuantizeLinear/DequantizeLinear pairs around float ops, the format every
  onnxruntime execution provider (and OpenVINO) understands and the one ORT recommends.
* ``per_channel=True``: one scale per output channel of each Conv/Gemm weight; per-tensor scales
  lose too much on depthwise convolutions (EfficientNet) and on a freshly trained head.
* ``CalibrationMethod.MinMax`` over up to 200 *training* images (never the test images the gate
  scores), preprocessed exactly like at inference.
* ``quant_pre_process`` first (shape inference + graph optimisation), as ORT's guide asks.
* **Float nodes found by measurement** (:func:`exclusion_candidates`): everything int8 first; if
  that misses the accuracy gate, the stem (the nodes reading the raw image), then the stem and the
  classifier head. The first candidate that passes is kept; every attempt (float nodes, top-1,
  drop) is recorded in ``artifact.json``. Measured on the nine-class EfficientNet-Lite0 checkpoint
  (203 test images, CPU provider): x86 types, everything int8 → 99.51 % top-1 vs 100 % fp32
  (0.49-point drop: passes, no float nodes); int8/int8 types (measured with the earlier
  int8/int8-only exporter) everything int8 → 98.03 % (1.97 points: fails), stem in float → 100 %.
"""

from __future__ import annotations

import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgeclf.runtime.artifact import INPUT_NAME, OUTPUT_NAME
from edgeclf.runtime.errors import UsageError

from .errors import ExportError

#: Images per calibration batch.
CALIBRATION_BATCH_SIZE = 8
#: ``--int8-target`` values.
INT8_TARGETS = ("auto", "x86", "arm")
#: target → (activation type, weight type), names of ``onnxruntime.quantization.QuantType`` members.
TARGET_TYPES = {"x86": ("QUInt8", "QInt8"), "arm": ("QInt8", "QInt8")}
_TYPE_NAMES = {"QUInt8": "uint8", "QInt8": "int8"}
_MACHINES = {"x86_64": "x86", "amd64": "x86", "x86": "x86", "i386": "x86", "i686": "x86",
             "aarch64": "arm", "arm64": "arm", "armv8l": "arm", "armv7l": "arm"}


def resolve_target(target: str, machine: str | None = None) -> str:
    """``"auto"`` → ``"x86"`` or ``"arm"`` from ``platform.machine()`` (or ``machine``); others as given.

    Raises:
        UsageError: a target outside :data:`INT8_TARGETS`, or ``auto`` on an unknown machine.
    """
    if target not in INT8_TARGETS:
        raise UsageError(f"--int8-target {target!r}: choose from {', '.join(INT8_TARGETS)}")
    if target != "auto":
        return target
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in _MACHINES:
        raise UsageError(f"--int8-target auto: unknown machine {machine!r}; pass --int8-target x86 or arm")
    return _MACHINES[machine]


@dataclass(frozen=True)
class Int8Plan:
    """What an int8 quantization run does.

    Attributes:
        target: ``"x86"`` or ``"arm"`` (resolved, never ``"auto"``).
        float_nodes: node names (of the pre-processed graph) left in float.
    """

    target: str
    float_nodes: tuple[str, ...] = ()

    @property
    def activation_type(self) -> str:
        return TARGET_TYPES[self.target][0]

    @property
    def weight_type(self) -> str:
        return TARGET_TYPES[self.target][1]


def calibration_reader(inputs: np.ndarray, batch_size: int = CALIBRATION_BATCH_SIZE):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over preprocessed images.

    Args:
        inputs: float32 array (N, 3, H, W), already preprocessed.
        batch_size: images per ``get_next()`` feed.
    Returns:
        A reader whose ``get_next()`` yields ``{"input": float32 (B, 3, H, W)}`` then ``None``.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{INPUT_NAME: inputs[i:i + batch_size]} for i in range(0, len(inputs), batch_size)])

        def get_next(self):
            return next(self._batches, None)

    return _Reader()


def stem_nodes(proto) -> list[str]:
    """Names of the nodes that consume the graph input ``input`` (the stem convolution)."""
    return [n.name for n in proto.graph.node if INPUT_NAME in n.input]


def head_nodes(proto) -> list[str]:
    """Names of the nodes from the last Gemm/MatMul/Conv to the graph output ``logits`` (the
    classifier: e.g. ``MatMul → Add``), following each node's first input backwards."""
    producer = {out: n for n in proto.graph.node for out in n.output}
    outputs = [o.name for o in proto.graph.output] or [OUTPUT_NAME]
    names, tensor = [], outputs[0]
    while tensor in producer:
        node = producer[tensor]
        names.append(node.name)
        if node.op_type in ("Gemm", "MatMul", "Conv") or not node.input:
            break
        tensor = node.input[0]
    return list(reversed(names))


def exclusion_candidates(proto) -> list[tuple[str, tuple[str, ...]]]:
    """``(label, float node names)`` to try in order: none, the stem, the stem and the head."""
    stem, head = stem_nodes(proto), head_nodes(proto)
    out = [("all int8", ()), ("stem in float", tuple(stem)),
           ("stem and head in float", tuple(dict.fromkeys(stem + head)))]
    unique, seen = [], set()
    for label, nodes in out:
        if nodes not in seen:
            seen.add(nodes)
            unique.append((label, nodes))
    return unique


def preprocess_for_quantization(src: str | os.PathLike, dst: str | os.PathLike):
    """onnxruntime's ``quant_pre_process`` (shape inference, graph optimisation) ``src`` → ``dst``;
    returns the loaded pre-processed ``onnx.ModelProto`` (weights included).

    Raises:
        ExportError: onnxruntime's pre-processing fails.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except (RuntimeError, ValueError, KeyError, onnx.checker.ValidationError) as err:
        raise ExportError(f"onnx-int8: onnxruntime quantization pre-processing failed ({type(err).__name__}: {err})") from err
    return onnx.load(str(dst))


def quantize_int8(pre: str | os.PathLike, dst: str | os.PathLike, calibration_inputs: np.ndarray,
                  metadata: dict[str, str], plan: Int8Plan) -> tuple[Path, dict]:
    """Statically quantize the pre-processed fp32 ONNX file ``pre`` to ``dst`` as ``plan`` says.

    Args:
        pre: output of :func:`preprocess_for_quantization`.
        dst: output ``model.int8.onnx``.
        calibration_inputs: float32 (N, 3, H, W) preprocessed training images.
        metadata: ``metadata_props`` to write (quantization drops the source's).
        plan: target types and float nodes.
    Returns:
        ``(dst, settings)`` where ``settings`` describes the quantization for ``artifact.json``.
    Raises:
        ExportError: onnxruntime's quantization fails.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .onnx import save, set_metadata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(pre), str(dst), calibration_reader(calibration_inputs),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=getattr(QuantType, plan.activation_type),
                weight_type=getattr(QuantType, plan.weight_type),
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(plan.float_nodes),
            )
    except (RuntimeError, ValueError, KeyError, onnx.checker.ValidationError) as err:
        raise ExportError(f"onnx-int8: onnxruntime static quantization failed ({type(err).__name__}: {err})") from err
    proto = onnx.load(str(dst))
    set_metadata(proto, metadata)
    save(proto, dst)  # stamped with the lowest IR version its opsets need
    settings = {
        "method": "onnxruntime.quantization.quantize_static",
        "target": plan.target,
        "quant_format": "QDQ",
        "activation_type": _TYPE_NAMES[plan.activation_type],
        "weight_type": _TYPE_NAMES[plan.weight_type],
        "per_channel": True,
        "calibrate_method": "MinMax", "calibration_subset": "train",
        "calibration_images": int(len(calibration_inputs)),
        "float_nodes": list(plan.float_nodes),
    }
    return Path(dst), settings


def quantize_gated(src: str | os.PathLike, dst: str | os.PathLike, calibration_inputs: np.ndarray,
                   metadata: dict[str, str], target: str, scratch: str | os.PathLike,
                   gate: Callable[[Path], dict], log: Callable[[str], None] = lambda msg: None,
                   ) -> tuple[Path, dict, dict]:
    """Quantize ``src`` for ``target`` with as few float nodes as the accuracy gate allows.

    Tries :func:`exclusion_candidates` in order, scoring each with ``gate``; stops at the first
    that passes. If none passes, the last attempt is kept (its failing row fails the export).

    Args:
        src: fp32 ``model.onnx``.
        dst: output ``model.int8.onnx``.
        calibration_inputs: float32 (N, 3, H, W) preprocessed training images.
        metadata: ``metadata_props`` for ``dst``.
        target: ``"auto"``, ``"x86"`` or ``"arm"`` (see :func:`resolve_target`).
        scratch: folder for the pre-processed intermediate (removed here).
        gate: ``path → accuracy row`` (needs ``passed``, ``top1_accuracy``, ``accuracy_drop_points``).
        log: told about each attempt.
    Returns:
        ``(dst, settings, gate_row)``; ``settings["attempts"]`` lists every try.
    Raises:
        UsageError: bad target. ExportError: onnxruntime cannot quantize the model.
    """
    resolved = resolve_target(target)
    pre = Path(scratch) / "int8-preprocessed.onnx"
    try:
        candidates = exclusion_candidates(preprocess_for_quantization(src, pre))
        attempts = []
        for label, nodes in candidates:
            plan = Int8Plan(resolved, nodes)
            log(f"int8 ({resolved}: {plan.activation_type}/{plan.weight_type}), {label}")
            _, settings = quantize_int8(pre, dst, calibration_inputs, metadata, plan)
            row = gate(Path(dst))
            attempts.append({"float_nodes": list(nodes), "top1_accuracy": row.get("top1_accuracy"),
                             "accuracy_drop_points": row.get("accuracy_drop_points"), "passed": row["passed"]})
            if row["passed"]:
                break
    finally:
        pre.unlink(missing_ok=True)
    settings.update(requested_target=target, float_node_search="; ".join(label for label, _ in candidates),
                    attempts=attempts)
    return Path(dst), settings, row
