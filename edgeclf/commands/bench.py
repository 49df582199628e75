"""`edgeclf bench` — latency, throughput, cold start, memory and accuracy of every format."""

from __future__ import annotations

HELP = "benchmark every exported format on CPU/GPU execution providers (or compare two runs)"
DESCRIPTION = """\
Benchmark an artifact directory, each backend in a fresh process, side by side:

  edgeclf bench ARTIFACT_DIR [--backends eager,torchscript,onnx-cpu,onnx-cuda,onnx-int8,onnx-fp16]
                [--batch-sizes 1,8,32] [--warmup 10] [--iters 100 | --seconds S] [--threads N]
                [--split SPLIT.json] [--json OUT.json] [--csv OUT.csv]
  edgeclf bench compare A.json B.json        ratios B/A of p50 latency and throughput

Backends: eager, eager-cuda, torchscript, torchscript-cuda, onnx-cpu, onnx-cuda, onnx-int8,
onnx-fp16, openvino-cpu, openvino-int8. GPU backends without a usable GPU (and OpenVINO ones
without the openvino extra) are listed as skipped, with the reason.

Besides model-only rows: files→top-k img/s through Predictor.predict_batch, serial and with
--decode-threads decode threads; --large-photos N times N test images upscaled to ~12 MP with
decode=exact and decode=draft. Rows whose p99/p50 > 1.5 are flagged busy.
"""


def _int_list(text: str) -> tuple[int, ...]:
    import argparse

    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,8,32") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be positive integers")
    return values


def add_arguments(parser) -> None:
    import argparse

    parser.add_argument("target", nargs="+", metavar="ARTIFACT_DIR | compare A.json B.json")
    parser.add_argument("--backends", default=None, help="comma-separated backends (default: all)")
    parser.add_argument("--batch-sizes", type=_int_list, default=(1, 8, 32), help="default: 1,8,32")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before timing (default: 10)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--iters", type=int, default=100, help="timed calls per batch size (default: 100)")
    group.add_argument("--seconds", type=float, default=None, help="time budget per batch size instead of --iters")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every CPU backend (default: physical cores)")
    parser.add_argument("--split", default=None, help="split manifest: accuracy on its test images")
    parser.add_argument("--max-images", type=int, default=None, help="use at most N test images")
    parser.add_argument("--checkpoint", default=None, help="checkpoint for the eager backend (default: from artifact.json)")
    parser.add_argument("--decode-threads", type=int, default=None,
                        help="decode threads of the pipelined files→top-k run (default: the runtime's)")
    parser.add_argument("--files-to-topk", action=argparse.BooleanOptionalAction, default=True,
                        help="time Predictor.predict_batch from image files, serial vs pipelined (default: on)")
    parser.add_argument("--large-photos", type=int, default=0, metavar="N",
                        help="also time N test images upscaled to ~12 MP, decode=exact vs draft (default 0: off)")
    parser.add_argument("--json", dest="json_out", default=None, help="write the result document here")
    parser.add_argument("--csv", dest="csv_out", default=None, help="write one row per backend x batch size here")


def run(args) -> int:
    from edgeclf.runtime.errors import UsageError

    from edgeclf.bench import report

    if args.target[0] == "compare":
        if len(args.target) != 3:
            raise UsageError("usage: edgeclf bench compare A.json B.json")
        a, b = (report.load_bench_json(p) for p in args.target[1:])
        report.print_compare(report.compare(a, b), args.target[1], args.target[2],
                             notes=report.compare_notes(a, b))
        return 0
    if len(args.target) != 1:
        raise UsageError(f"expected one ARTIFACT_DIR, got {args.target}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be >= 1")
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds {args.seconds}: must be > 0")
    if args.iters is not None and args.iters < 1:
        raise UsageError(f"--iters {args.iters}: must be >= 1")

    from edgeclf.bench.runner import parse_backends, run_bench

    console = report.make_console()
    doc = run_bench(
        args.target[0], backends=parse_backends(args.backends), batch_sizes=args.batch_sizes,
        warmup=args.warmup, iters=args.iters, seconds=args.seconds, threads=args.threads,
        split=args.split, checkpoint=args.checkpoint, max_images=args.max_images,
        decode_threads=args.decode_threads, large_photos=args.large_photos, files_to_topk=args.files_to_topk,
        progress=lambda name: console.print(f"[dim]benchmarking {name} …[/dim]"),
    )
    report.print_report(doc, console)
    if args.json_out:
        report.write_json(doc, args.json_out)
    if args.csv_out:
        report.write_csv(doc, args.csv_out)
    failed = [n for n, info in doc["backends"].items() if info.get("status") == "failed"]
    for n in failed:
        console.print(f"[red]{n} failed: {doc['backends'][n]['reason']}[/red]")
    return 1 if failed else 0
