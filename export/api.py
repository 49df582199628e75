"""``export_checkpoint``: checkpoint → gated artifact directory (the function behind ``edgeclf export``).

Steps: validate arguments → load the checkpoint (eval mode) and the split's images → in a
temporary sibling directory, export each format, run every gate on real test images, write
``parity.json`` and ``artifact.json`` → rename the directory into place. Any failure removes the
temporary directory; a failed gate raises :class:`export.errors.GateError` after *all* formats
were checked, naming each failing one.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Iterable, Sequence

from edgeclf.runtime._version import __version__
from edgeclf.runtime.artifact import (
    FORMAT_FILES,
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_JSON,
    SCHEMA,
    SCHEMA_VERSION,
    ModelInfo,
    write_artifact_json,
)
from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.files import json_dumps

from . import images as images_mod
from . import onnx as onnx_mod
from . import parity as parity_mod
from . import quantize as quantize_mod
from . import runners
from . import staging
from . import torchscript as ts_mod
from .errors import ExportError, GateError

#: ``--formats`` values (fp16/int8 ONNX are added with ``fp16=True`` / ``int8=True``).
FORMATS = ("torchscript", "onnx")
DEFAULT_OPSET = 18
PARITY_SCHEMA = parity_mod.PARITY_SCHEMA
#: Batch size for the accuracy gates' onnxruntime runs.
ACCURACY_BATCH_SIZE = 16


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"torchscript,onnx"`` or a sequence → validated tuple in canonical order.

    Raises:
        UsageError: empty, or a name outside :data:`FORMATS` (the message lists the valid names).
    """
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UsageError(f"--formats {','.join(names) or repr('')}: unknown {unknown or 'empty list'};"
                         f" choose from {','.join(FORMATS)} (add --fp16/--int8 for reduced-precision ONNX)")
    return tuple(f for f in FORMATS if f in names)


def _check_args(formats, opset, fp16, int8, max_parity_images, max_accuracy_drop, calibration_images):
    if (fp16 or int8) and "onnx" not in formats:
        raise UsageError("--fp16/--int8 are made from the fp32 ONNX model; include onnx in --formats")
    if "onnx" in formats:
        onnx_mod.check_opset(opset)
    if max_parity_images < 1:
        raise UsageError(f"--max-parity-images {max_parity_images}: need at least 1")
    if not max_accuracy_drop >= 0:
        raise UsageError(f"--max-accuracy-drop {max_accuracy_drop}: need a number of points >= 0")
    if int8 and calibration_images < 1:
        raise UsageError(f"--calibration-images {calibration_images}: need at least 1")


def _file_entry(path: Path, precision: str, **extra) -> dict:
    from edgeclf.runtime.manifest import file_sha256

    return {"file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size,
            "precision": precision, **extra}


def _versions() -> dict:
    import numpy
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    return {"edgeclf": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxscript": onnxscript.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    formats: str | Sequence[str] = FORMATS,
    opset: int = DEFAULT_OPSET,
    split: str | os.PathLike | None = None,
    fp16: bool = False,
    int8: bool = False,
    force: bool = False,
    max_parity_images: int = 64,
    max_accuracy_drop: float = 1.0,
    calibration_images: int = 200,
    progress=None,
) -> dict:
    """Export an edgeclf checkpoint to a gated artifact directory; return its description.

    Args:
        checkpoint: ``RUN_DIR/best.pt`` written by ``edgeclf train``.
        out_dir: the artifact directory to create (must not exist or be empty, unless ``force``).
        formats: subset of ``("torchscript", "onnx")``, as a sequence or comma-separated string.
        opset: ONNX default-domain opset, one of :func:`export.onnx.supported_opsets` (18..23 with
            torch 2.14).
        split: split manifest whose test images feed the gates; default: the one recorded in the
            checkpoint (which must be unchanged since training).
        fp16: also write ``model.fp16.onnx`` (fp16 weights, float32 I/O), accuracy-gated.
        int8: also write ``model.int8.onnx`` (static QDQ per-channel int8 calibrated on up to
            ``calibration_images`` training images), accuracy-gated.
        force: replace an existing non-empty ``out_dir`` (only after the new one passed).
        max_parity_images: test images used by the fp32 parity gate (evenly spread), <= 64 default.
        max_accuracy_drop: allowed top-1 accuracy drop of fp16/int8 vs fp32 ONNX, in points (0-100).
        calibration_images: training images used to calibrate int8.
        progress: optional ``callable(str)`` told as each step starts (the CLI shows each one as a
            progress stage, ended by the next call): loading, decoding images, each format's export,
            each gate, int8 calibration.
    Returns:
        The artifact description, also written to ``out_dir/artifact.json``: ``formats`` (file,
        sha256, size_bytes, precision per format), ``input``/``output`` spec, ``class_names``,
        ``preprocess``, ``arch``, ``source_checkpoint``, ``parity`` summary, ``versions``, ``opset``.
        The full gate report is ``out_dir/parity.json``.
    Raises:
        UsageError: bad format name, opset, numbers, or an existing non-empty ``out_dir`` without
            ``force`` (checked before anything is loaded).
        CheckpointError: missing, truncated or non-edgeclf checkpoint.
        ManifestError / InvalidImageError: unusable split manifest or image.
        ExportError: torch or onnxruntime cannot export/convert the model.
        GateError (a ParityError): a gate failed; ``err.report`` holds the full report.
        In every error case nothing is left at ``out_dir`` (nor a temporary sibling).
    """
    say = progress or (lambda msg: None)
    formats = parse_formats(formats)
    _check_args(formats, opset, fp16, int8, max_parity_images, max_accuracy_drop, calibration_images)
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    staging.check_out_dir(out_dir, force)

    import torch

    from edgeclf.train.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint, preprocess_of

    t0 = time.perf_counter()
    say(f"loading {checkpoint}")
    ckpt = load_checkpoint(checkpoint)
    ckpt_sha = file_sha256(checkpoint)
    cfg = preprocess_of(ckpt)
    class_names = tuple(ckpt["class_names"])
    model = model_from_checkpoint(ckpt).eval()
    info = ModelInfo(class_names=class_names, preprocess=cfg, arch=ckpt["arch"], source_checkpoint_sha256=ckpt_sha)
    metadata = info.to_metadata()

    manifest, split_path, split_matches = images_mod.resolve_split(ckpt, checkpoint, split)
    say(f"decoding test images of {split_path}" + (" and int8 calibration images" if int8 else ""))
    parity_set = images_mod.load_subset(manifest, "test", cfg, max_parity_images, source=str(split_path))
    test_set = (images_mod.load_subset(manifest, "test", cfg, None, source=str(split_path))
                if (fp16 or int8) else None)
    calib_set = (images_mod.load_subset(manifest, "train", cfg, calibration_images, source=str(split_path))
                 if int8 else None)

    example = torch.from_numpy(parity_set.inputs[:1]).repeat(ts_mod.EXPORT_BATCH_SIZE, 1, 1, 1)
    say("reference outputs of the eager model")
    eager = runners.torch_runner(model)
    reference = {b: parity_mod.run_batched(eager, parity_set.inputs, b) for b in parity_mod.PARITY_BATCH_SIZES}
    gate_rows: dict[str, dict] = {}
    files: dict[str, dict] = {}

    with staging.staging_dir(out_dir) as tmp:
        if "torchscript" in formats:
            say("exporting TorchScript (trace, freeze)")
            path = tmp / FORMAT_FILES["torchscript"]
            try:
                ts_mod.export_torchscript(model, example, path, metadata)
            except (RuntimeError, TypeError, ValueError) as err:
                raise ExportError(f"torchscript: tracing/freezing failed ({type(err).__name__}: {err})") from err
            loaded, _ = ts_mod.load_torchscript(path)
            say("parity: TorchScript")
            gate_rows["torchscript"] = parity_mod.parity_entry(reference, _outputs(runners.torch_runner(loaded), parity_set))
            optimized = ts_mod.optimize_loaded(ts_mod.load_torchscript(path)[0])
            gate_rows["torchscript+optimize_for_inference"] = parity_mod.parity_entry(
                reference, _outputs(runners.torch_runner(optimized), parity_set))
            files["torchscript"] = _file_entry(path, "fp32", loader="torch.jit.load",
                                               extra_file=ts_mod.TORCHSCRIPT_EXTRA_FILE, frozen=True)

        if "onnx" in formats:
            say(f"exporting ONNX (dynamo exporter, opset {opset})")
            path = tmp / FORMAT_FILES["onnx"]
            onnx_mod.export_onnx(model, example, path, opset, metadata, len(class_names), cfg.crop_size)
            session = runners.onnx_session(path)
            say("parity: ONNX")
            gate_rows["onnx"] = parity_mod.parity_entry(reference, _outputs(runners.onnx_runner(session), parity_set))
            gate_rows["onnx"]["provider"] = session.providers[0]
            raw = runners.onnx_session(path, optimize=False)
            gate_rows["onnx+ort_optimizations_disabled"] = parity_mod.parity_entry(
                reference, _outputs(runners.onnx_runner(raw), parity_set))
            gate_rows["onnx+ort_optimizations_disabled"]["provider"] = raw.providers[0]
            files["onnx"] = _file_entry(path, "fp32", opset=opset, exporter="torch.onnx.export(dynamo=True)")
            if test_set is not None:
                fp32_test = parity_mod.run_batched(runners.onnx_runner(session), test_set.inputs, ACCURACY_BATCH_SIZE)

            if fp16:
                say("converting ONNX to fp16")
                path16 = tmp / FORMAT_FILES["onnx-fp16"]
                onnx_mod.convert_fp16(path, path16, metadata, len(class_names), cfg.crop_size)
                say("accuracy gate: fp16")
                gate_rows["onnx-fp16"] = _accuracy_row(path16, "fp16", fp32_test, test_set, max_accuracy_drop)
                files["onnx-fp16"] = _file_entry(path16, "fp16", opset=opset, io_dtype="float32",
                                                 converter="onnxruntime.transformers.float16 (keep_io_types)")
            if int8:
                say(f"quantizing ONNX to int8 (calibration on {len(calib_set)} training images)")
                path8 = tmp / FORMAT_FILES["onnx-int8"]
                _, settings = quantize_mod.quantize_int8(path, path8, calib_set.inputs, metadata, tmp)
                import onnx

                onnx_mod.validate(onnx.load(str(path8)), opset, len(class_names), cfg.crop_size, "onnx-int8")
                say("accuracy gate: int8")
                gate_rows["onnx-int8"] = _accuracy_row(path8, "int8", fp32_test, test_set, max_accuracy_drop)
                files["onnx-int8"] = _file_entry(path8, "int8", opset=opset, quantization=settings)

        failed = parity_mod.failures(gate_rows)
        report = {
            "schema": PARITY_SCHEMA, "schema_version": 1,
            "passed": not failed,
            "failures": failed,
            "images": {"split": str(split_path.resolve()), "split_sha256": manifest.sha256,
                       "split_matches_checkpoint": split_matches, "subset": "test",
                       "count": len(parity_set), "test_subset_size": len(manifest.entries("test")),
                       "paths": parity_set.paths,
                       "accuracy_gate_count": len(test_set) if test_set is not None else 0},
            "tolerances": {"max_abs_prob_diff": parity_mod.MAX_ABS_PROB_DIFF, "top1": "identical",
                           "max_accuracy_drop_points": float(max_accuracy_drop)},
            "export_batch_size": ts_mod.EXPORT_BATCH_SIZE,
            "batch_sizes": list(parity_mod.PARITY_BATCH_SIZES),
            "reference": "eager PyTorch model (eval mode, CPU, float32)",
            "provider": runners.GATE_PROVIDERS[0],
            "formats": gate_rows,
        }
        if failed:
            hint = ""
            if all(row["gate"] == "accuracy" for row in gate_rows.values() if not row["passed"]):
                hint = " (the fp32 formats passed: re-run without --fp16/--int8, or raise --max-accuracy-drop)"
            raise GateError(f"export gate failed, nothing written to {out_dir}: " + "; ".join(failed) + hint, report)
        parity_mod.write_parity_json(tmp / PARITY_JSON, report)

        description = {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "formats": files,
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", 3, cfg.crop_size, cfg.crop_size],
                      "layout": cfg.layout, "color_order": cfg.color_order},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(class_names)],
                       "meaning": "logits", "softmax_applied": False},
            "class_names": list(class_names),
            "num_classes": len(class_names),
            "preprocess": cfg.to_dict(),
            "arch": ckpt["arch"],
            "metadata": metadata,
            "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": ckpt_sha,
                                  "epoch": ckpt.get("epoch"), "split_sha256": ckpt["split_sha256"],
                                  "weights": ckpt.get("weights")},
            "opset": opset if "onnx" in formats else None,
            "parity": {
                "passed": True, "images": len(parity_set), "batch_sizes": list(parity_mod.PARITY_BATCH_SIZES),
                "max_abs_prob_diff_tolerance": parity_mod.MAX_ABS_PROB_DIFF,
                "formats": {name: {k: row[k] for k in ("gate", "max_abs_prob_diff", "top1_agreement",
                                                        "top1_accuracy", "accuracy_drop_points") if k in row}
                            for name, row in gate_rows.items()},
                "report": PARITY_JSON,
            },
            "versions": _versions(),
            "export_seconds": round(time.perf_counter() - t0, 1),
        }
        write_artifact_json(tmp, description)
        staging.publish(tmp, out_dir, force)
    return description


def _outputs(run, image_set) -> dict:
    """batch size → logits (N, C) of ``run`` over the gate images at each parity batch size, or the
    error text where it does not run (recorded as a gate failure, so every format is still checked)."""
    out = {}
    for b in parity_mod.PARITY_BATCH_SIZES:
        try:
            out[b] = parity_mod.run_batched(run, image_set.inputs, b)
        except Exception as err:  # torch.jit / onnxruntime errors have no common base class
            out[b] = f"fails to run ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return out


def _accuracy_row(path: Path, precision: str, fp32_logits, test_set, max_accuracy_drop: float) -> dict:
    session = runners.onnx_session(path)
    logits = parity_mod.run_batched(runners.onnx_runner(session), test_set.inputs, ACCURACY_BATCH_SIZE)
    row = parity_mod.accuracy_entry(fp32_logits, logits, test_set.labels, precision, max_accuracy_drop,
                                    ACCURACY_BATCH_SIZE)
    row["provider"] = session.providers[0]
    return row
