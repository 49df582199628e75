"""`edgeclf bench serve` — `edgeclf serve` under load, beside the in-process Predictor."""

from __future__ import annotations

HELP = "load-test `edgeclf serve` (concurrency levels, micro-batching on/off, in-process Predictor beside)"
DESCRIPTION = """\
Drive `edgeclf serve` with real HTTP clients (one real Caltech sample image per request, Open
Inference Protocol JSON, base64, top-3) at each concurrency level and report p50/p90/p99 latency
per request, throughput and errors; with micro-batching on and off (two servers started here on
free 127.0.0.1 ports) when given ARTIFACT_DIR, or against a running server when given its URL;
then the in-process Predictor on the same images (predict of one image, predict_batch of 16).
Exit code 1 if any request failed.

example:
  edgeclf bench serve artifact/ --concurrency 1,4,16,64 --seconds 5 --json bench-serve.json
  edgeclf bench serve http://127.0.0.1:8080 --concurrency 1,16
"""


def add_arguments(parser) -> None:
    from .bench import _int_list

    parser.add_argument("target", metavar="ARTIFACT_DIR|URL",
                        help="artifact directory (servers are started here) or URL of a running server")
    parser.add_argument("--concurrency", type=_int_list, default=(1, 4, 16, 64), metavar="N,...",
                        help="concurrent clients per level (default: 1,4,16,64)")
    parser.add_argument("--seconds", type=float, default=5.0, metavar="S",
                        help="timed seconds per level, after 1 s of warm-up (default: 5)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="onnxruntime intra-op threads of the servers and the in-process Predictor")
    parser.add_argument("--json", dest="json_out", default=None, metavar="OUT.json", help="write the result document here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args) -> int:
    import sys

    from edgeclf.bench import serve_load
    from edgeclf.runtime.errors import UsageError
    from edgeclf.runtime.files import atomic_write_text, json_dumps

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be >= 1")
    if not str(args.target).startswith(("http://", "https://")):
        import importlib.util

        if importlib.util.find_spec("kserve") is None:  # the servers are started here
            raise UsageError(f"{args.target}: starting edgeclf serve needs the serve extra: pip install"
                             " 'edgeclf[serve]' (or give the URL of a running server)")

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"edgeclf bench serve: {msg} …", file=sys.stderr, flush=True)

    doc = serve_load.run_serve_bench(args.target, concurrency=args.concurrency, seconds=args.seconds,
                                     threads=args.threads, progress=say)
    print(serve_load.format_report(doc))
    if args.json_out:
        atomic_write_text(args.json_out, json_dumps(doc, indent=2) + "\n")
    errors = sum(r["errors"] for m in doc["served"].values() for r in m.values())
    return 1 if errors else 0
