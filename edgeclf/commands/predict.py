"""`edgeclf predict` — top-k labels for image files, folders and URLs, torch-free (runtime.Predictor)."""

from __future__ import annotations

HELP = "top-k labels for images, folders or URLs with an exported model (torch-free)"
DESCRIPTION = """\
Classify images with an exported artifact (or a bare .onnx file with edgeclf metadata), using
only numpy, Pillow and onnxruntime.

Inputs may be image files, folders (walked recursively for image files, sorted) and http(s) URLs.
An input that cannot be read prints a one-line error on stderr and the run goes on.

Output: a table (file, top-k labels with percentages) on stdout, or with --json one JSON object
per input and line: {"input": ..., "predictions": [{"label", "index", "probability"}, ...]} or
{"input": ..., "error": ..., "error_type": ...}. The model and the execution provider actually
used are printed on stderr.

Exit codes: 0 every input predicted; 1 some inputs failed; 2 unusable artifact or bad usage.

example:
  edgeclf predict artifact/ photo.jpg holiday/ https://example.com/cat.png --top-k 3
"""


def add_arguments(parser) -> None:
    parser.add_argument("artifact", metavar="ARTIFACT", help="artifact directory or .onnx file")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_URL_OR_DIR", help="images, folders or http(s) URLs")
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="labels per image (default 3)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA only if it really works (default); cuda: fail if it does not")
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
    import json
    import sys

    from edgeclf.runtime.errors import UsageError
    from edgeclf.runtime.image import DEFAULT_MAX_PIXELS, expand_inputs
    from edgeclf.runtime.predictor import Predictor

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

    items = expand_inputs(args.inputs)
    rows, failed = [], 0
    ok = [source for _, source in items if not isinstance(source, Exception)]
    answers = predictor.predict_iter(ok, top_k=args.top_k, batch_size=args.batch_size, on_error="return")
    for name, source in items:
        result = source if isinstance(source, Exception) else next(answers)
        if isinstance(result, Exception):
            failed += 1
            print(f"edgeclf predict: error: {result}", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps({"input": name, "error": str(result), "error_type": type(result).__name__},
                                 ensure_ascii=False), flush=True)
        elif args.json:
            print(json.dumps({"input": name, "predictions": [p.to_dict() for p in result]},
                             ensure_ascii=False), flush=True)
        else:
            rows.append((name, result))
    if not args.json:
        print_table(rows, args.top_k)
    print(f"edgeclf predict: {len(items) - failed} predicted, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def print_table(rows, top_k: int, file=None) -> None:
    """Print ``rows`` of ``(name, list[Prediction])``: one line per input, "label 97.1%" per column.

    Uses rich when it is installed (it is not a runtime dependency), plain aligned text otherwise.
    """
    import sys

    file = file or sys.stdout
    k = max((len(preds) for _, preds in rows), default=min(top_k, 1))
    header = ["file"] + [f"top-{i + 1}" for i in range(k)]
    cells = [[name] + [f"{p.label} {p.probability * 100:.1f}%" for p in preds] + [""] * (k - len(preds))
             for name, preds in rows]
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max(len(r[i]) for r in [header] + cells) for i in range(len(header))]
        for r in [header] + cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
        return
    table = Table(*header, box=None, pad_edge=False)
    for r in cells:
        table.add_row(*(Text(c) for c in r))  # Text: no markup interpretation of names/labels
    # Wide enough that no cell is wrapped or cut when stdout is a pipe (rich assumes 80 columns).
    width = sum(max(len(r[i]) for r in [header] + cells) + 2 for i in range(len(header)))
    Console(file=file, width=max(80, width)).print(table)
