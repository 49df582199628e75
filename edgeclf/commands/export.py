"""`edgeclf export` — checkpoint → TorchScript / ONNX artifact directory behind parity gates."""

from __future__ import annotations

HELP = "export a checkpoint to TorchScript/ONNX (+fp16/int8), gated on real test images"
DESCRIPTION = """\
Export RUN_DIR/best.pt to ARTIFACT_DIR: model.torchscript.pt (frozen, eval), model.onnx (opset 18,
input "input" float32 [N,3,H,W], output "logits" [N,C]), optional model.fp16.onnx / model.int8.onnx,
artifact.json and parity.json.

Nothing is written unless every gate passes: TorchScript and ONNX must match the eager model on up
to 64 real test images of the split (max |Δ softmax| <= 1e-4, identical top-1, at batch sizes 1
and 5); fp16/int8 must lose at most --max-accuracy-drop points of top-1 accuracy on the test split.

Progress (each format, each gate, int8 calibration) goes to stderr; the gate table and the files
written go to stdout.

exit codes: 0 exported; 1 a gate failed or the exporter failed; 2 bad arguments or input.

example:
  edgeclf export runs/eff/best.pt --out artifact/ --int8
"""


def add_arguments(parser) -> None:
    from ._common import add_quiet

    parser.add_argument("checkpoint", metavar="RUN_DIR/best.pt", help="checkpoint written by `edgeclf train`")
    parser.add_argument("--out", required=True, metavar="ARTIFACT_DIR", help="artifact directory to create")
    parser.add_argument("--formats", default="torchscript,onnx", metavar="FORMAT,...",
                        help="comma-separated: torchscript, onnx (default: both)")
    parser.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset (default 18; 18..23 with torch 2.14)")
    parser.add_argument("--split", default=None, metavar="SPLIT.json",
                        help="split manifest for the gates (default: the one recorded in the checkpoint)")
    parser.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (fp16 weights, for GPUs)")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static QDQ int8)")
    parser.add_argument("--int8-target", default="auto", choices=("auto", "x86", "arm"),
                        help="CPU the int8 model is for: x86 = uint8 activations/int8 weights (fast on"
                             " AVX2/AVX-512 VNNI/AMX), arm = int8/int8; auto = this machine (default)")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="POINTS",
                        help="allowed top-1 accuracy drop of fp16/int8 vs fp32, in points (default 1.0)")
    parser.add_argument("--max-parity-images", type=int, default=64, metavar="N",
                        help="test images for the fp32 parity gate (default 64)")
    parser.add_argument("--calibration-images", type=int, default=200, metavar="N",
                        help="training images to calibrate int8 (default 200)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty ARTIFACT_DIR (after success)")
    add_quiet(parser)


def _print_report(console, report: dict) -> None:
    from edgeclf.export.parity import render_table

    console.print(render_table(report))


def run(args) -> int:
    import json
    from pathlib import Path

    from rich.console import Console

    from edgeclf.progress import for_cli
    from edgeclf.runtime.artifact import PARITY_JSON

    console = Console()
    if not console.is_terminal:  # logs and CI: wide enough for the gate table, no wrapping
        console = Console(width=180)
    progress = for_cli(args.quiet, prefix="edgeclf export: ")
    steps = progress.steps()
    try:
        steps("importing torch and onnx", log=False)  # seconds on a busy machine: show it at once
        from edgeclf.export import export_checkpoint
        from edgeclf.export.api import ExportOptions
        from edgeclf.export.errors import GateError

        try:
            with steps:
                options = ExportOptions(
                    formats=args.formats, opset=args.opset, split=args.split, fp16=args.fp16, int8=args.int8,
                    int8_target=args.int8_target, force=args.force, max_parity_images=args.max_parity_images,
                    max_accuracy_drop=args.max_accuracy_drop, calibration_images=args.calibration_images,
                )
                description = export_checkpoint(args.checkpoint, args.out, options, progress=steps)
        except GateError as err:
            _print_report(console, err.report)
            raise
    finally:
        steps.close(ok=False)
        progress.close()
    out = Path(args.out)
    _print_report(console, json.loads((out / PARITY_JSON).read_text(encoding="utf-8")))
    for fmt, entry in description["formats"].items():
        quant = entry.get("quantization")
        how = (f"  target {quant['target']}: {quant['activation_type']} activations, {quant['weight_type']} weights,"
               f" float nodes {quant['float_nodes'] or 'none'}") if quant else ""
        console.print(f"{fmt:12s} {out / entry['file']}  {entry['size_bytes'] / 2**20:.1f} MiB  {entry['precision']}{how}")
    console.print(f"wrote {out / 'artifact.json'} in {description['export_seconds']} s")
    return 0
