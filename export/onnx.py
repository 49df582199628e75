"""ONNX export (fp32) and fp16 conversion, with edgeclf metadata in ``metadata_props``.

Exporter choice: torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``), not the
TorchScript-based one. Both exist in torch 2.14; we measured both on the registered backbones:

* The TorchScript-based exporter is deprecated: it warns "You are using the legacy
  TorchScript-based ONNX export … The feature will be removed", and it traces, so a batch axis
  that a model silently specialises (a ``reshape(2, -1)``) is only caught afterwards.
* The dynamo exporter captures the graph with ``torch.export``, where the batch axis is a
  symbolic ``Dim("N")`` that torch *checks*: a model that specialises it fails at export time
  with a constraint error instead of producing a fixed-batch file. It also emits a cleaner graph
  (EfficientNet-Lite0: 96 nodes vs 196, constants folded by onnxscript's optimizer).
* Its costs: a slower export (about 12-17 s vs 0.5 s for EfficientNet-Lite0 on 2 CPU cores), and
  it emits opset 18 natively; lower opsets go through a version converter that fails on these
  models (e.g. Squeeze/Unsqueeze axes moved from attributes to inputs), after which torch quietly
  keeps opset 18. So we accept opsets :func:`supported_opsets` (18 up to the highest torch and
  onnx know) and check the written opset equals the one asked for.

Either way the file is then checked with ``onnx.checker.check_model(full_check=True)`` and
proven against the eager model by the parity gate, at batch sizes it was not exported with.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from edgeclf.runtime.artifact import INPUT_NAME, OUTPUT_NAME
from edgeclf.runtime.errors import UsageError

from .errors import ExportError

#: Name of the symbolic batch dimension in the ONNX graph.
BATCH_DIM = "N"


def supported_opsets() -> range:
    """ONNX opsets this installation can emit with the dynamo exporter: 18 .. torch's/onnx's maximum."""
    import onnx
    from torch.onnx import _constants as torch_onnx_constants

    native = 18  # torch.onnx._internal.exporter._constants.TORCHLIB_OPSET
    highest = min(torch_onnx_constants.ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())
    return range(native, highest + 1)


def check_opset(opset: int) -> int:
    """Return ``opset`` if :func:`supported_opsets` holds it, else raise ``UsageError`` naming ``--opset``."""
    ok = supported_opsets()
    if opset not in ok:
        import torch

        raise UsageError(
            f"--opset {opset}: torch {torch.__version__}'s ONNX exporter emits opsets {ok.start}..{ok.stop - 1};"
            f" choose one of those (default 18)"
        )
    return opset


@contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress lines to stdout and logs warnings; keep the CLI output ours."""
    import logging

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as devnull, redirect_stdout(devnull):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def set_metadata(proto, metadata: dict[str, str]) -> None:
    """Replace ``proto.metadata_props`` (an ``onnx.ModelProto``) by ``metadata`` (string → string)."""
    del proto.metadata_props[:]
    for key, value in metadata.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, str(value)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict (no weights are loaded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def _dim(value_info, axis: int):
    d = value_info.type.tensor_type.shape.dim[axis]
    return d.dim_param if d.HasField("dim_param") else d.dim_value


def validate(proto, opset: int, num_classes: int, crop_size: int, where: str) -> None:
    """Check the I/O contract and opset of an exported graph, then run ``onnx.checker`` (full check).

    Contract: one input ``input`` float32 [N, 3, crop, crop] with a symbolic N, one output
    ``logits`` float32 [N, num_classes] with the same symbolic N, default-domain opset ``opset``.

    Raises:
        ExportError: naming ``where`` (the format) and what differs.
    """
    import onnx

    problems = []
    ins, outs = list(proto.graph.input), list(proto.graph.output)
    if [i.name for i in ins] != [INPUT_NAME] or [o.name for o in outs] != [OUTPUT_NAME]:
        problems.append(f"inputs {[i.name for i in ins]} / outputs {[o.name for o in outs]},"
                        f" expected [{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]")
    else:
        float_type = onnx.TensorProto.FLOAT
        if ins[0].type.tensor_type.elem_type != float_type or outs[0].type.tensor_type.elem_type != float_type:
            problems.append("input/output are not float32")
        in_shape = [_dim(ins[0], a) for a in range(len(ins[0].type.tensor_type.shape.dim))]
        out_shape = [_dim(outs[0], a) for a in range(len(outs[0].type.tensor_type.shape.dim))]
        if in_shape != [BATCH_DIM, 3, crop_size, crop_size]:
            problems.append(f"input shape {in_shape}, expected [{BATCH_DIM!r}, 3, {crop_size}, {crop_size}]")
        if out_shape != [BATCH_DIM, num_classes]:
            problems.append(f"output shape {out_shape}, expected [{BATCH_DIM!r}, {num_classes}]")
    default_opset = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if default_opset != [opset]:
        problems.append(f"opset {default_opset}, expected {opset}")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        problems.append(f"onnx.checker: {str(err).splitlines()[0]}")
    if problems:
        raise ExportError(f"{where}: exported graph breaks the artifact contract: {'; '.join(problems)}")


def min_ir_version(proto) -> int:
    """The lowest ONNX IR version that the model's opset imports need
    (``onnx.helper.find_min_ir_version_for``; opset 18 → IR 8, 21 → IR 10)."""
    import onnx

    return max(8, onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True))


def save(proto, path: str | os.PathLike) -> Path:
    """Write ``proto`` as one self-contained ``.onnx`` file (weights inside, no external data).

    The file is stamped with :func:`min_ir_version` rather than the IR version of the onnx
    package that built it (IR 10 from onnx >= 1.16), so the oldest onnxruntime the package
    declares (1.17, which reads IR <= 9) loads it; ``onnx.checker`` re-checks the stamped model.

    Raises:
        ExportError: the model does not pass ``onnx.checker`` at the lower IR version.
    """
    import onnx

    proto.ir_version = min_ir_version(proto)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"{path}: invalid at ONNX IR version {proto.ir_version}"
                          f" ({str(err).splitlines()[0]})") from err
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return Path(path)


def export_onnx(model, example, path: str | os.PathLike, opset: int, metadata: dict[str, str],
                num_classes: int, crop_size: int) -> Path:
    """Export ``model`` to an fp32 ONNX file with a dynamic batch axis and edgeclf metadata.

    Args:
        model: ``torch.nn.Module`` in eval mode, on CPU; (N, 3, H, W) float32 → (N, C) logits.
        example: float32 tensor (EXPORT_BATCH_SIZE, 3, H, W); N is declared dynamic (``Dim("N")``).
        path: output ``.onnx`` file.
        opset: default-domain opset, one of :func:`supported_opsets`.
        metadata: :meth:`runtime.artifact.ModelInfo.to_metadata`, written to ``metadata_props``.
        num_classes, crop_size: for the contract check (output width C, input H = W).
    Returns:
        ``path``.
    Raises:
        ExportError: torch cannot export the model, or the result breaks the contract
            (names, float32, [N, 3, H, W] → [N, C], opset, ``onnx.checker`` full check).
    """
    import torch

    batch = torch.export.Dim(BATCH_DIM, min=1)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},), optimize=True, verbose=False,
            )
    except Exception as err:  # torch.export / onnxscript raise many unrelated types
        raise ExportError(f"onnx: torch.onnx.export(dynamo=True) failed ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})") from err
    proto = program.model_proto
    set_metadata(proto, metadata)
    validate(proto, opset, num_classes, crop_size, "onnx")
    return save(proto, path)


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike, metadata: dict[str, str],
                 num_classes: int, crop_size: int) -> Path:
    """Write an fp16-weights copy of the fp32 ONNX file ``src`` to ``dst``.

    Uses onnxruntime's own converter (``onnxruntime.transformers.float16``, the same code as
    onnxconverter-common) with ``keep_io_types=True``: the input stays float32 [N, 3, H, W] and the
    output float32 logits, so applications feed both files the same arrays; Cast nodes at the
    edges convert. Meant for GPU execution providers (CUDA, TensorRT), which have fp16 kernels; on
    the CPU provider onnxruntime runs it too, inserting casts back to fp32 where it lacks fp16
    kernels, so CPU numbers measure fp16 rounding, not fp16 speed.

    Raises:
        ExportError: the conversion fails or its result breaks the I/O contract.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    proto = onnx.load(str(src))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            half = convert_float_to_float16(proto, keep_io_types=True)
            # the converter appends the edge Cast nodes at the end; onnx.checker wants topological order
            OnnxModel(half).topological_sort(is_deterministic=True)
    except (ValueError, RuntimeError, onnx.checker.ValidationError) as err:
        raise ExportError(f"onnx-fp16: float16 conversion failed ({type(err).__name__}: {err})") from err
    set_metadata(half, metadata)
    validate(half, opset, num_classes, crop_size, "onnx-fp16")
    return save(half, dst)
