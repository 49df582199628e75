"""`edgeclf predict` — top-k labels for image files, folders and URLs, torch-free (runtime.Predictor)."""

from __future__ import annotations

HELP = "top-k labels for images, folders or URLs with an exported model (torch-free)"
DESCRIPTION = """\
Classify images with an exported artifact (or a bare .onnx file with edgeclf metadata), using
only numpy, Pillow and onnxruntime.

Inputs may be image files, folders (walked recursively, links followed, each real folder once,
sorted) and http(s) URLs. An input that cannot be read (including a dangling link or a link loop
in a folder) prints a one-line error on stderr and the run goes on. Files in folders skipped for
their extension or a hidden name are counted and named on stderr ("skipped 3 files: ...").
Output is UTF-8 whatever the locale; a file name that is not valid UTF-8 shows its odd bytes as
\\xe9 in the table and as the JSON escape \\udce9 in --json (json.loads + os.fsencode give the
bytes back).

Output: a table (file, top-k labels with percentages) on stdout, or with --json one JSON object
per input and line: {"input": ..., "predictions": [{"label", "index", "probability"}, ...],
"warnings": [...]} or {"input": ..., "error": ..., "error_type": ...}. The model and the execution
provider actually used, errors and warnings are printed on stderr.

An image whose shorter side is under 32 px is still classified, but flagged: a "warnings" entry
in JSON, "(!)" after its name in the table, and a warning line on stderr.

Exit codes: 0 every input predicted; 1 some inputs failed; 2 unusable artifact or bad usage.

example:
  edgeclf predict artifact/ photo.jpg holiday/ https://example.com/cat.png --top-k 3
"""


def add_arguments(parser) -> None:
    from ._common import add_device

    parser.add_argument("artifact", metavar="ARTIFACT_DIR", help="artifact directory (edgeclf export), or a .onnx file")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_URL_OR_DIR", help="images, folders or http(s) URLs")
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="labels per image (default 3)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_device(parser, "onnxruntime execution provider")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="which ONNX file of the artifact directory to use (default fp32)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per model run (default 32)")
    parser.add_argument("--decode-threads", type=int, default=None, metavar="N",
                        help="threads decoding/preprocessing images ahead of the model (default: one per"
                             " CPU, at most 8; 0: serially)")
    parser.add_argument("--engine", choices=("onnxruntime", "openvino"), default="onnxruntime",
                        help="inference engine for the ONNX file (openvino: pip install 'edgeclf[openvino]'; CPU)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="refuse images above N pixels (default 89,478,485)")


def run(args) -> int:
    import sys

    from edgeclf.runtime.errors import UsageError
    from edgeclf.runtime.files import display_name, json_dumps, utf8_stdio
    from edgeclf.runtime.image import DEFAULT_MAX_PIXELS, expand_inputs
    from edgeclf.runtime.predictor import Predictor

    utf8_stdio()

    if args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: give an integer >= 1")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: give an integer >= 1")
    if args.decode_threads is not None and args.decode_threads < 0:
        raise UsageError(f"--decode-threads {args.decode_threads}: give an integer >= 0")
    predictor = Predictor(args.artifact, device=args.device, intra_op_threads=args.threads,
                          precision=args.precision, engine=args.engine, decode_threads=args.decode_threads,
                          max_pixels=args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS)
    note = f" ({args.device}: {predictor.device_note})" if predictor.device_note else ""
    print(f"edgeclf predict: {predictor.model_path} ({predictor.info.arch}, {len(predictor.class_names)}"
          f" classes) on {', '.join(predictor.providers)}{note}", file=sys.stderr)

    skipped: list = []
    items = expand_inputs(args.inputs, skipped=skipped)
    rows, failed = [], 0
    ok = [source for _, source in items if not isinstance(source, Exception)]
    answers = predictor.predict_iter(ok, top_k=args.top_k, batch_size=args.batch_size, on_error="return")
    for name, source in items:
        result = source if isinstance(source, Exception) else next(answers)
        if isinstance(result, Exception):
            failed += 1
            print(f"edgeclf predict: error: {display_name(str(result))}", file=sys.stderr, flush=True)
            if args.json:
                print(json_dumps({"input": name, "error": str(result), "error_type": type(result).__name__}), flush=True)
        else:
            warnings = list(getattr(result, "warnings", ()))
            for w in warnings:
                print(f"edgeclf predict: warning: {display_name(name)}: {w}", file=sys.stderr, flush=True)
            if args.json:
                print(json_dumps({"input": name, "predictions": [p.to_dict() for p in result],
                                  "warnings": warnings}), flush=True)
            else:
                rows.append((display_name(name), result))
    if not args.json and rows:  # every input failed: the error lines say it all, no empty table
        print_table(rows, args.top_k)
    report_skipped(skipped)
    print(f"edgeclf predict: {len(items) - failed} predicted, {failed} failed"
          + (f", {len(skipped)} skipped" if skipped else ""), file=sys.stderr)
    return 1 if failed else 0


#: How many names to show per skip reason on stderr.
MAX_SKIPPED_SHOWN = 5


def report_skipped(skipped, file=None) -> None:
    """One stderr line per skip reason: ``skipped 3 files (unsupported_extension: ...): a.txt, …``."""
    import sys

    from edgeclf.runtime.files import display_name
    from edgeclf.runtime.walk import REASON_TEXT, SKIP_REASONS

    file = file or sys.stderr
    for reason in SKIP_REASONS:
        names = [display_name(s.path) + (f" ({s.detail})" if s.detail else "") for s in skipped if s.reason == reason]
        if names:
            more = f", … {len(names) - MAX_SKIPPED_SHOWN} more" if len(names) > MAX_SKIPPED_SHOWN else ""
            print(f"edgeclf predict: skipped {len(names)} file(s), {reason} ({REASON_TEXT[reason]}):"
                  f" {', '.join(names[:MAX_SKIPPED_SHOWN])}{more}", file=file)


def print_table(rows, top_k: int, file=None) -> None:
    """Print ``rows`` of ``(name, list[Prediction])``: one line per input, "label 97.1%" per column;
    an input with warnings (:class:`runtime.predictor.Predictions`) gets "(!)" after its name and
    its warnings listed under the table.

    Uses rich when it is installed (it is not a runtime dependency), plain aligned text otherwise.
    """
    import sys

    file = file or sys.stdout
    k = max((len(preds) for _, preds in rows), default=min(top_k, 1))
    header = ["file"] + [f"top-{i + 1}" for i in range(k)]
    flagged = [(name, w) for name, preds in rows for w in getattr(preds, "warnings", ())]
    marked = {name for name, _ in flagged}
    cells = [[name + (" (!)" if name in marked else "")] + [f"{p.label} {p.probability * 100:.1f}%" for p in preds]
             + [""] * (k - len(preds)) for name, preds in rows]
    notes = [f"(!) {name}: {w}" for name, w in flagged]
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max(len(r[i]) for r in [header] + cells) for i in range(len(header))]
        for r in [header] + cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
        for note in notes:
            print(note, file=file)
        return
    table = Table(*header, box=None, pad_edge=False)
    for r in cells:
        table.add_row(*(Text(c) for c in r))  # Text: no markup interpretation of names/labels
    # Wide enough that no cell is wrapped or cut when stdout is a pipe (rich assumes 80 columns).
    width = sum(max(len(r[i]) for r in [header] + cells) + 2 for i in range(len(header)))
    Console(file=file, width=max(80, width)).print(table)
    for note in notes:
        print(note, file=file)
