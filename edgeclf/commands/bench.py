"""`edgeclf bench` — latency, throughput, cold start, memory and accuracy of every format."""

from __future__ import annotations

HELP = "benchmark every exported format on CPU/GPU execution providers (compare two runs: bench compare)"
DESCRIPTION = """\
Benchmark ARTIFACT_DIR (written by `edgeclf export`): each backend in a fresh process, one after
another, with the same input batch and thread count: p50/p90/p99 latency and throughput per
batch size, load time, first inference, peak memory and (with --split) top-1 accuracy and
agreement with the eager model.

Backends: eager, eager-cuda, torchscript, torchscript-cuda, onnx-cpu, onnx-cuda, onnx-int8,
onnx-fp16, openvino-cpu, openvino-int8. GPU backends without a usable GPU (and OpenVINO ones
without the openvino extra) are listed as skipped, with the reason.

Besides model-only rows: files→top-k img/s through Predictor.predict_batch, serial and with
--decode-threads decode threads; --large-photos N times N test images upscaled to ~12 MP with
decode=exact and decode=draft. Rows whose p99/p50 > 1.5 are flagged busy.
Tables go to stdout, progress (backend x batch size, current p50) to stderr.
Compare two runs: edgeclf bench compare A.json B.json (see edgeclf bench compare --help).
Load-test the server: edgeclf bench serve ARTIFACT_DIR (see edgeclf bench serve --help).

example:
  edgeclf bench artifact/ --split split.json --backends onnx-cpu,onnx-int8 --json bench.json
"""

#: Sub-subcommands with their own parser: ``edgeclf bench compare A.json B.json``.
SUBCOMMANDS = {"compare": "bench_compare", "serve": "bench_serve"}


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

    from ._common import add_device, add_quiet

    parser.add_argument("artifact_dir", metavar="ARTIFACT_DIR", help="artifact directory (edgeclf export)")
    parser.add_argument("--backends", default=None, metavar="NAME,...", help="comma-separated backends (default: all)")
    parser.add_argument("--batch-sizes", type=_int_list, default=(1, 8, 32), metavar="N,...", help="default: 1,8,32")
    parser.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed calls before timing (default: 10)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--iters", type=int, default=100, metavar="N", help="timed calls per batch size (default: 100)")
    group.add_argument("--seconds", type=float, default=None, metavar="S",
                       help="time budget per batch size instead of --iters, in seconds")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="intra-op threads for every CPU backend (default: physical cores)")
    add_device(parser, "GPU of the GPU backends (-cuda, onnx-fp16); cpu skips them")
    parser.add_argument("--split", default=None, metavar="SPLIT.json", help="split manifest: accuracy on its test images")
    parser.add_argument("--max-images", type=int, default=None, metavar="N", help="use at most N test images")
    parser.add_argument("--checkpoint", default=None, metavar="RUN_DIR/best.pt",
                        help="checkpoint for the eager backends (default: the one recorded in artifact.json)")
    parser.add_argument("--json", dest="json_out", default=None, metavar="OUT.json", help="write the result document here")
    parser.add_argument("--csv", dest="csv_out", default=None, metavar="OUT.csv",
                        help="write one row per backend x batch size here")
    parser.add_argument("--decode-threads", type=int, default=None, metavar="N",
                        help="decode threads of the pipelined files→top-k run (default: the runtime's)")
    parser.add_argument("--files-to-topk", action=argparse.BooleanOptionalAction, default=True,
                        help="time Predictor.predict_batch from image files, serial vs pipelined (default: on)")
    parser.add_argument("--large-photos", type=int, default=0, metavar="N",
                        help="also time N test images upscaled to ~12 MP, decode=exact vs draft (default 0: off)")
    add_quiet(parser)


def run(args) -> int:
    import sys

    from edgeclf.bench import report
    from edgeclf.progress import for_cli
    from edgeclf.runtime.errors import UsageError

    import rich  # noqa: F401 — the train extra, checked before minutes of work (cli.py turns it into the hint)

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be >= 1")
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds {args.seconds}: must be > 0")
    if args.iters is not None and args.iters < 1:
        raise UsageError(f"--iters {args.iters}: must be >= 1")

    from edgeclf.bench.runner import parse_backends, run_bench

    progress = for_cli(args.quiet, prefix="edgeclf bench: ")
    try:
        doc = run_bench(
            args.artifact_dir, backends=parse_backends(args.backends), batch_sizes=args.batch_sizes,
            warmup=args.warmup, iters=args.iters, seconds=args.seconds, threads=args.threads,
            split=args.split, checkpoint=args.checkpoint, max_images=args.max_images, device=args.device,
            decode_threads=args.decode_threads, large_photos=args.large_photos, files_to_topk=args.files_to_topk,
            progress=progress,
        )
    finally:
        progress.close()
    report.print_report(doc, report.make_console())
    if args.json_out:
        report.write_json(doc, args.json_out)
        progress.log(f"wrote {args.json_out}")
    if args.csv_out:
        report.write_csv(doc, args.csv_out)
        progress.log(f"wrote {args.csv_out}")
    failed = [n for n, info in doc["backends"].items() if info.get("status") == "failed"]
    for n in failed:
        print(f"edgeclf bench: error: {n} failed: {doc['backends'][n]['reason']}", file=sys.stderr)
    return 1 if failed else 0
