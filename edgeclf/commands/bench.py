"""`edgeclf bench` — latency, throughput, cold start, memory and accuracy of every format."""

from __future__ import annotations

HELP = "benchmark every exported format on CPU/GPU execution providers (or compare two runs)"
DESCRIPTION = """\
Benchmark an artifact directory, each backend in a fresh process, side by side:

  edgeclf bench ARTIFACT_DIR [--backends eager,torchscript,onnx-cpu,onnx-cuda,onnx-int8,onnx-fp16]
                [--batch-sizes 1,8,32] [--warmup 10] [--iters 100 | --seconds S] [--threads N]
                [--split SPLIT.json] [--json OUT.json] [--csv OUT.csv]
  edgeclf bench compare A.json B.json        ratios B/A of p50 latency and throughput
  edgeclf bench serve (ARTIFACT_DIR | URL) [--concurrency 1,4,16,64] [--seconds S] [--json OUT.json]
                                             `edgeclf serve` under load, micro-batching on/off,
                                             beside the in-process Predictor

Backends: eager, eager-cuda, torchscript, torchscript-cuda, onnx-cpu, onnx-cuda, onnx-int8,
onnx-fp16. GPU backends without a usable GPU are listed as skipped, with the reason.
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
    parser.add_argument("target", nargs="+", metavar="ARTIFACT_DIR | compare A.json B.json | serve ARTIFACT_DIR|URL")
    parser.add_argument("--concurrency", type=_int_list, default=(1, 4, 16, 64),
                        help="bench serve: concurrent clients per level (default 1,4,16,64)")
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
    if args.target[0] == "serve":
        return _run_serve(args)
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


def _run_serve(args) -> int:
    import sys

    from edgeclf.bench import report, serve_load
    from edgeclf.runtime.errors import UsageError

    if len(args.target) != 2:
        raise UsageError("usage: edgeclf bench serve (ARTIFACT_DIR | URL) [--concurrency 1,4,16,64] [--seconds S]")
    doc = serve_load.run_serve_bench(args.target[1], concurrency=args.concurrency, seconds=args.seconds or 5.0,
                                     threads=args.threads,
                                     progress=lambda msg: print(f"bench serve: {msg} …", file=sys.stderr, flush=True))
    print(serve_load.format_report(doc))
    if args.json_out:
        report.write_json(doc, args.json_out)
    errors = sum(r["errors"] for m in doc["served"].values() for r in m.values())
    return 1 if errors else 0
