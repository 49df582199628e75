"""``export_checkpoint``: checkpoint → gated artifact directory (the function behind ``edgeclf export``).

Steps, one function each: validate the :class:`ExportOptions` → load the checkpoint (eval mode)
(:func:`_load_source`) and the split's images for the gates and int8 calibration
(:func:`_load_gate_images`) → in a temporary sibling directory (:mod:`export.staging`), export
each format and run its gate (:func:`_export_torchscript`, :func:`_export_onnx`,
:func:`_export_fp16`, :func:`_export_int8`), write ``parity.json`` (:func:`_gate_report`) and
``artifact.json`` (:func:`_describe`) → rename the directory into place. Any failure removes the
temporary directory; a failed gate raises :class:`export.errors.GateError` after *all* formats
were checked, naming each failing one.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

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


@dataclass(frozen=True)
class ExportOptions:
    """What ``edgeclf export`` makes and how strictly it checks it.

    Formats:
        formats: subset of ``("torchscript", "onnx")``, a sequence or comma-separated string
            (normalised to a tuple in canonical order).
        opset: ONNX default-domain opset, one of :func:`export.onnx.supported_opsets`.
        fp16: also write ``model.fp16.onnx`` (fp16 weights, float32 I/O), accuracy-gated.
        int8: also write ``model.int8.onnx`` (static QDQ per-channel), accuracy-gated.
    Gates:
        split: split manifest whose test images feed the gates; default: the one recorded in the
            checkpoint (which must be unchanged since training).
        max_parity_images: test images used by the fp32 parity gate (evenly spread).
        max_accuracy_drop: allowed top-1 accuracy drop of fp16/int8 vs fp32 ONNX, in points (0-100).
    int8 calibration:
        int8_target: ``"auto"`` (this machine), ``"x86"`` (uint8 activations, int8 weights) or
            ``"arm"`` (int8/int8); see :mod:`export.quantize`.
        calibration_images: training images (evenly spread) used to calibrate int8.
    Staging:
        force: replace an existing non-empty output directory (only after the new one passed).
    """

    formats: tuple[str, ...] = FORMATS
    opset: int = DEFAULT_OPSET
    fp16: bool = False
    int8: bool = False
    split: str | os.PathLike | None = None
    max_parity_images: int = 64
    max_accuracy_drop: float = 1.0
    int8_target: str = "auto"
    calibration_images: int = 200
    force: bool = False

    def __post_init__(self):
        object.__setattr__(self, "formats", parse_formats(self.formats))
        if (self.fp16 or self.int8) and "onnx" not in self.formats:
            raise UsageError("--fp16/--int8 are made from the fp32 ONNX model; include onnx in --formats")
        if "onnx" in self.formats:
            onnx_mod.check_opset(self.opset)
        if self.max_parity_images < 1:
            raise UsageError(f"--max-parity-images {self.max_parity_images}: need at least 1")
        if not self.max_accuracy_drop >= 0:
            raise UsageError(f"--max-accuracy-drop {self.max_accuracy_drop}: need a number of points >= 0")
        if self.int8 and self.calibration_images < 1:
            raise UsageError(f"--calibration-images {self.calibration_images}: need at least 1")
        if self.int8:
            quantize_mod.resolve_target(self.int8_target)

    @classmethod
    def make(cls, options: "ExportOptions | None" = None, **overrides) -> "ExportOptions":
        """``options`` (default ``ExportOptions()``) with ``overrides`` applied and validated.

        Raises:
            UsageError: an override that is not a field (the message lists the fields), or a bad value.
        """
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"unknown export option(s) {unknown}; use {[f.name for f in dataclasses.fields(cls)]}")
        return dataclasses.replace(options or cls(), **overrides)


@dataclass
class _Source:
    """The loaded checkpoint: eval-mode model, its preprocessing and its metadata for the files."""

    ckpt: dict
    sha256: str
    model: object
    cfg: object
    class_names: tuple[str, ...]
    metadata: dict[str, str]


@dataclass
class _GateImages:
    """Preprocessed images for the gates and calibration (float32 (N, 3, H, W) in ``.inputs``)."""

    manifest: object
    split_path: Path
    split_matches: bool
    parity: images_mod.ImageSet
    test: images_mod.ImageSet | None
    calibration: images_mod.ImageSet | None


class _Gates:
    """The eager reference logits and every format's gate row (``rows``) and file entry (``files``)."""

    def __init__(self, src: _Source, images: _GateImages):
        import torch

        self.example = torch.from_numpy(images.parity.inputs[:1]).repeat(ts_mod.EXPORT_BATCH_SIZE, 1, 1, 1)
        eager = runners.torch_runner(src.model)
        self.reference = {b: parity_mod.run_batched(eager, images.parity.inputs, b)
                          for b in parity_mod.PARITY_BATCH_SIZES}
        self.parity_set = images.parity
        self.rows: dict[str, dict] = {}
        self.files: dict[str, dict] = {}
        self.fp32_test_logits = None  # (N, C) fp32 ONNX logits on the test set, for the accuracy gates

    def parity(self, name: str, run) -> dict:
        """Run the fp32 parity gate of ``run`` ((B, 3, H, W) → (B, C) logits) as row ``name``."""
        self.rows[name] = parity_mod.parity_entry(self.reference, _outputs(run, self.parity_set))
        return self.rows[name]


def _versions() -> dict:
    import numpy
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    return {"edgeclf": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxscript": onnxscript.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def _file_entry(path: Path, precision: str, **extra) -> dict:
    from edgeclf.runtime.manifest import file_sha256

    return {"file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size,
            "precision": precision, **extra}


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                      options: ExportOptions | None = None, *, progress: Callable[[str], None] | None = None,
                      **settings) -> dict:
    """Export an edgeclf checkpoint to a gated artifact directory; return its description.

    Args:
        checkpoint: ``RUN_DIR/best.pt`` written by ``edgeclf train``.
        out_dir: the artifact directory to create (must not exist or be empty, unless ``force``).
        options: an :class:`ExportOptions` (default: ``ExportOptions()``).
        progress: optional ``callable(str)`` told about each step (the CLI prints them); the seam
            for a progress display.
        **settings: :class:`ExportOptions` fields overriding ``options``, e.g.
            ``export_checkpoint(ckpt, out, int8=True, int8_target="x86")``.
    Returns:
        The artifact description, also written to ``out_dir/artifact.json``: ``formats`` (file,
        sha256, size_bytes, precision per format; ``onnx-int8`` adds ``quantization`` with the
        target, activation/weight types and float nodes), ``input``/``output`` spec,
        ``class_names``, ``preprocess``, ``arch``, ``source_checkpoint``, ``parity`` summary,
        ``versions``, ``opset``. The full gate report is ``out_dir/parity.json``.
    Raises:
        UsageError: bad option (unknown name, format, opset, numbers, int8 target), or an existing
            non-empty ``out_dir`` without ``force`` (checked before anything is loaded).
        CheckpointError: missing, truncated or non-edgeclf checkpoint.
        ManifestError / InvalidImageError: unusable split manifest or image.
        ExportError: torch or onnxruntime cannot export/convert the model.
        GateError (a ParityError): a gate failed; ``err.report`` holds the full report.
        In every error case nothing is left at ``out_dir`` (nor a temporary sibling).
    """
    opts = ExportOptions.make(options, **settings)
    say = progress or (lambda msg: None)
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    staging.check_out_dir(out_dir, opts.force)

    t0 = time.perf_counter()
    src = _load_source(checkpoint, say)
    images = _load_gate_images(src, checkpoint, opts, say)
    gates = _Gates(src, images)
    with staging.staging_dir(out_dir) as tmp:
        if "torchscript" in opts.formats:
            _export_torchscript(src, images, gates, tmp, say)
        if "onnx" in opts.formats:
            fp32_path = _export_onnx(src, images, gates, tmp, opts, say)
            if opts.fp16:
                _export_fp16(src, fp32_path, images, gates, tmp, opts, say)
            if opts.int8:
                _export_int8(src, fp32_path, images, gates, tmp, opts, say)
        report = _gate_report(images, gates, opts)
        if report["failures"]:
            raise GateError(f"export gate failed, nothing written to {out_dir}: " + "; ".join(report["failures"])
                            + _gate_hint(gates.rows), report)
        parity_mod.write_parity_json(tmp / PARITY_JSON, report)
        description = _describe(src, images, gates, opts, checkpoint, round(time.perf_counter() - t0, 1))
        write_artifact_json(tmp, description)
        staging.publish(tmp, out_dir, opts.force)
    return description


def _load_source(checkpoint: Path, say) -> _Source:
    from edgeclf.runtime.files import file_sha256
    from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of

    say(f"loading {checkpoint}")
    ckpt = load_checkpoint(checkpoint)
    sha = file_sha256(checkpoint)
    cfg = preprocess_of(ckpt)
    class_names = tuple(ckpt["class_names"])
    info = ModelInfo(class_names=class_names, preprocess=cfg, arch=ckpt["arch"], source_checkpoint_sha256=sha)
    return _Source(ckpt=ckpt, sha256=sha, model=model_from_checkpoint(ckpt).eval(), cfg=cfg,
                   class_names=class_names, metadata=info.to_metadata())


def _load_gate_images(src: _Source, checkpoint: Path, opts: ExportOptions, say) -> _GateImages:
    """Test images for the parity gate (evenly spread, ``max_parity_images``), the whole test subset
    for the accuracy gates (fp16/int8 only), training images for int8 calibration (int8 only)."""
    manifest, split_path, matches = images_mod.resolve_split(src.ckpt, checkpoint, opts.split)
    say(f"decoding test images of {split_path}")
    where = str(split_path)
    parity = images_mod.load_subset(manifest, "test", src.cfg, opts.max_parity_images, source=where)
    test = images_mod.load_subset(manifest, "test", src.cfg, None, source=where) if (opts.fp16 or opts.int8) else None
    calibration = (images_mod.load_subset(manifest, "train", src.cfg, opts.calibration_images, source=where)
                   if opts.int8 else None)
    return _GateImages(manifest, split_path, matches, parity, test, calibration)


def _export_torchscript(src: _Source, images: _GateImages, gates: _Gates, tmp: Path, say) -> None:
    say("exporting TorchScript (trace, freeze)")
    path = tmp / FORMAT_FILES["torchscript"]
    try:
        ts_mod.export_torchscript(src.model, gates.example, path, src.metadata)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ExportError(f"torchscript: tracing/freezing failed ({type(err).__name__}: {err})") from err
    loaded, _ = ts_mod.load_torchscript(path)
    say("parity: TorchScript")
    gates.parity("torchscript", runners.torch_runner(loaded))
    optimized = ts_mod.optimize_loaded(ts_mod.load_torchscript(path)[0])
    gates.parity("torchscript+optimize_for_inference", runners.torch_runner(optimized))
    gates.files["torchscript"] = _file_entry(path, "fp32", loader="torch.jit.load",
                                             extra_file=ts_mod.TORCHSCRIPT_EXTRA_FILE, frozen=True)


def _export_onnx(src: _Source, images: _GateImages, gates: _Gates, tmp: Path, opts: ExportOptions, say) -> Path:
    """fp32 ONNX + its parity gates (with and without onnxruntime's graph optimisations); also
    computes the fp32 test-set logits the reduced-precision accuracy gates compare against."""
    say(f"exporting ONNX (dynamo exporter, opset {opts.opset})")
    path = tmp / FORMAT_FILES["onnx"]
    onnx_mod.export_onnx(src.model, gates.example, path, opts.opset, src.metadata, len(src.class_names),
                         src.cfg.crop_size)
    session = runners.onnx_session(path)
    say("parity: ONNX")
    gates.parity("onnx", runners.onnx_runner(session))["provider"] = session.providers[0]
    raw = runners.onnx_session(path, optimize=False)
    gates.parity("onnx+ort_optimizations_disabled", runners.onnx_runner(raw))["provider"] = raw.providers[0]
    gates.files["onnx"] = _file_entry(path, "fp32", opset=opts.opset, exporter="torch.onnx.export(dynamo=True)")
    if images.test is not None:
        gates.fp32_test_logits = parity_mod.run_batched(runners.onnx_runner(session), images.test.inputs,
                                                        ACCURACY_BATCH_SIZE)
    return path


def _export_fp16(src: _Source, fp32_path: Path, images: _GateImages, gates: _Gates, tmp: Path,
                 opts: ExportOptions, say) -> None:
    say("converting ONNX to fp16")
    path = tmp / FORMAT_FILES["onnx-fp16"]
    onnx_mod.convert_fp16(fp32_path, path, src.metadata, len(src.class_names), src.cfg.crop_size)
    gates.rows["onnx-fp16"] = _accuracy_row(path, "fp16", gates.fp32_test_logits, images.test,
                                            opts.max_accuracy_drop)
    gates.files["onnx-fp16"] = _file_entry(path, "fp16", opset=opts.opset, io_dtype="float32",
                                           converter="onnxruntime.transformers.float16 (keep_io_types)")


def _export_int8(src: _Source, fp32_path: Path, images: _GateImages, gates: _Gates, tmp: Path,
                 opts: ExportOptions, say) -> None:
    """int8 for ``opts.int8_target``, float nodes searched against the accuracy gate
    (:func:`export.quantize.quantize_gated`); the kept attempt's gate row is the format's row."""
    import onnx

    say(f"quantizing ONNX to int8 (calibration on {len(images.calibration)} training images)")
    path = tmp / FORMAT_FILES["onnx-int8"]

    def gate(candidate: Path) -> dict:
        onnx_mod.validate(onnx.load(str(candidate)), opts.opset, len(src.class_names), src.cfg.crop_size, "onnx-int8")
        return _accuracy_row(candidate, "int8", gates.fp32_test_logits, images.test, opts.max_accuracy_drop)

    _, settings, row = quantize_mod.quantize_gated(fp32_path, path, images.calibration.inputs, src.metadata,
                                                   opts.int8_target, tmp, gate, log=say)
    row["quantization"] = {k: settings[k] for k in ("target", "activation_type", "weight_type", "float_nodes")}
    gates.rows["onnx-int8"] = row
    gates.files["onnx-int8"] = _file_entry(path, "int8", opset=opts.opset, quantization=settings)


def _gate_hint(rows: dict[str, dict]) -> str:
    if all(row["gate"] == "accuracy" for row in rows.values() if not row["passed"]):
        return " (the fp32 formats passed: re-run without --fp16/--int8, or raise --max-accuracy-drop)"
    return ""


def _gate_report(images: _GateImages, gates: _Gates, opts: ExportOptions) -> dict:
    """The ``parity.json`` document: every gate row, the images used and the tolerances."""
    failed = parity_mod.failures(gates.rows)
    return {
        "schema": PARITY_SCHEMA, "schema_version": 1,
        "passed": not failed,
        "failures": failed,
        "images": {"split": str(images.split_path.resolve()), "split_sha256": images.manifest.sha256,
                   "split_matches_checkpoint": images.split_matches, "subset": "test",
                   "count": len(images.parity), "test_subset_size": len(images.manifest.entries("test")),
                   "paths": images.parity.paths,
                   "accuracy_gate_count": len(images.test) if images.test is not None else 0},
        "tolerances": {"max_abs_prob_diff": parity_mod.MAX_ABS_PROB_DIFF, "top1": "identical",
                       "max_accuracy_drop_points": float(opts.max_accuracy_drop)},
        "export_batch_size": ts_mod.EXPORT_BATCH_SIZE,
        "batch_sizes": list(parity_mod.PARITY_BATCH_SIZES),
        "reference": "eager PyTorch model (eval mode, CPU, float32)",
        "provider": runners.GATE_PROVIDERS[0],
        "formats": gates.rows,
    }


def _describe(src: _Source, images: _GateImages, gates: _Gates, opts: ExportOptions, checkpoint: Path,
              export_seconds: float) -> dict:
    """The ``artifact.json`` document."""
    cfg, ckpt = src.cfg, src.ckpt
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "formats": gates.files,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", 3, cfg.crop_size, cfg.crop_size],
                  "layout": cfg.layout, "color_order": cfg.color_order},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(src.class_names)],
                   "meaning": "logits", "softmax_applied": False},
        "class_names": list(src.class_names),
        "num_classes": len(src.class_names),
        "preprocess": cfg.to_dict(),
        "arch": ckpt["arch"],
        "metadata": src.metadata,
        "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": src.sha256,
                              "epoch": ckpt.get("epoch"), "split_sha256": ckpt["split_sha256"],
                              "weights": ckpt.get("weights")},
        "opset": opts.opset if "onnx" in opts.formats else None,
        "parity": {
            "passed": True, "images": len(images.parity), "batch_sizes": list(parity_mod.PARITY_BATCH_SIZES),
            "max_abs_prob_diff_tolerance": parity_mod.MAX_ABS_PROB_DIFF,
            "formats": {name: {k: row[k] for k in ("gate", "max_abs_prob_diff", "top1_agreement",
                                                    "top1_accuracy", "accuracy_drop_points") if k in row}
                        for name, row in gates.rows.items()},
            "report": PARITY_JSON,
        },
        "versions": _versions(),
        "export_seconds": export_seconds,
    }


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
