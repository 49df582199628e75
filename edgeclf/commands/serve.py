"""`edgeclf serve` — the Open Inference Protocol (REST + gRPC) on KServe's ModelServer, torch-free."""

from __future__ import annotations

HELP = "serve top-k predictions over HTTP/gRPC (Open Inference Protocol, KServe ModelServer)"
DESCRIPTION = """\
Serve an exported artifact with KServe's ModelServer: Open Inference Protocol v2 (REST and gRPC)
and KServe v1, health, metadata and Prometheus metrics, with concurrent requests merged into one
onnxruntime call (micro-batching). Needs the serve extra: pip install 'edgeclf[serve]'.

  GET  /v2/health/ready   GET /v2/models/NAME (class names, preprocessing)   GET /metrics
  POST /v2/models/NAME/infer   input "image" BYTES [N] (base64 image files), parameter top_k
                               → outputs label BYTES [N,k], probability FP32 [N,k], index INT64 [N,k]
                               input "input" FP32 [N,3,H,W] (preprocessed) → output logits FP32 [N,C]
  POST /v1/models/NAME:predict {"instances": [{"b64": "..."}]} → {"predictions": [[{label,index,probability}]]}

Bad requests get HTTP 400/404/413 (gRPC INVALID_ARGUMENT/NOT_FOUND) and a one-line JSON error.
SIGTERM or Ctrl-C stops the server after the requests in flight are answered.

examples:
  edgeclf serve artifact/                                   # http://127.0.0.1:8080, gRPC :8081
  edgeclf serve artifact/ --host 0.0.0.0 --workers 2 --max-batch-size 16 --batch-timeout-ms 2
  curl -s localhost:8080/v2/models/edgeclf/infer -d '{"inputs": [{"name": "image",
       "datatype": "BYTES", "shape": [1], "data": ["'$(base64 -w0 photo.jpg)'"]}]}'
  python -c "from edgeclf.runtime import RemotePredictor as R; print(R('localhost:8080').predict('photo.jpg'))"
"""


def add_arguments(parser) -> None:
    parser.add_argument("artifact", metavar="ARTIFACT_DIR", help="artifact directory (edgeclf export), or an .onnx file in it")
    parser.add_argument("--model-name", default="edgeclf", metavar="NAME", help="name in the URLs (default edgeclf)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--http-port", type=int, default=8080, metavar="PORT", help="REST port (default 8080)")
    parser.add_argument("--grpc-port", type=int, default=8081, metavar="PORT", help="gRPC port (default 8081)")
    parser.add_argument("--no-grpc", action="store_true", help="serve REST only")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="REST worker processes, each with its own onnxruntime session (default 1)")
    from ._common import add_device

    add_device(parser)
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="which ONNX file of the artifact directory to serve (default fp32)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    parser.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                        help="most images merged into one model call (default 32; 1 turns micro-batching off)")
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0, metavar="MS",
                        help="how long a request waits for others to share its model call (default 5)")
    parser.add_argument("--max-body-mib", type=float, default=50.0, metavar="MIB",
                        help="larger request bodies get HTTP 413 (default 50)")


def run(args) -> int:
    from edgeclf.runtime.errors import UsageError

    for flag, value in (("--http-port", args.http_port), ("--grpc-port", args.grpc_port)):
        if not 0 < value < 65536:
            raise UsageError(f"{flag} {value}: give a port from 1 to 65535")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give an integer >= 1")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: give an integer >= 1")
    if not args.max_body_mib > 0:
        raise UsageError(f"--max-body-mib {args.max_body_mib}: give a positive size")
    for flag, port in (("--http-port", args.http_port), ("--grpc-port", None if args.no_grpc else args.grpc_port)):
        if port is not None:
            _check_bindable(args.host, port, flag)
    try:
        from edgeclf import serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("kserve", "fastapi", "uvicorn", "grpc", "orjson"):
            raise
        raise UsageError(f"edgeclf serve needs the '{err.name}' package; install the serve extra:"
                         " pip install 'edgeclf[serve]'") from None
    options = serve.ServeOptions(
        artifact=args.artifact, model_name=args.model_name, device=args.device, precision=args.precision,
        intra_op_threads=args.threads, max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms, max_body_bytes=int(args.max_body_mib * 2**20),
    )
    serve.serve(options, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                workers=args.workers, enable_grpc=not args.no_grpc)
    return 0


def _check_bindable(host: str, port: int, flag: str) -> None:
    """Refuse, in one line, a port or host the server could not listen on (it would otherwise fail
    after its startup line, in a traceback from uvicorn or gRPC)."""
    import socket

    from edgeclf.runtime.errors import UsageError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gRPC bind
            s.bind(infos[0][4])
    except OSError as err:
        raise UsageError(f"{flag} {port}: cannot listen on {host}:{port} ({err.strerror or err});"
                         " choose another port or --host") from None
