"""`edgeclf triton` — a Triton Inference Server model repository (ONNX Runtime backend) from an artifact."""

from __future__ import annotations

HELP = "write a Triton Inference Server model repository (ONNX Runtime backend) from an artifact"
DESCRIPTION = """\
Write OUT_DIR/NAME/config.pbtxt (max_batch_size, dynamic batching, input "input" FP32 [3,H,W],
output "logits" with labels.txt for Triton's classification extension, CPU or GPU instances),
OUT_DIR/NAME/labels.txt and OUT_DIR/NAME/1/model.onnx. Needs no torch.

examples:
  edgeclf triton artifact/ --out model_repository/
  tritonserver --model-repository model_repository/      # HTTP :8000, gRPC :8001
  python -c "from edgeclf.runtime import RemotePredictor as R; print(R('localhost:8000').predict('photo.jpg'))"
"""


def add_arguments(parser) -> None:
    parser.add_argument("artifact", metavar="ARTIFACT_DIR", help="artifact directory (edgeclf export), or an .onnx file in it")
    parser.add_argument("--out", required=True, metavar="DIR", help="model repository folder (created if missing)")
    parser.add_argument("--name", default="edgeclf", help="model name and folder (default edgeclf)")
    parser.add_argument("--max-batch-size", type=int, default=32, metavar="N", help="default 32")
    parser.add_argument("--instance-kind", choices=("cpu", "gpu"), default="cpu", help="default cpu")
    parser.add_argument("--instance-count", type=int, default=1, metavar="N", help="default 1")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32", help="default fp32")
    parser.add_argument("--max-queue-delay-us", type=int, default=5000, metavar="US",
                        help="dynamic batching wait (default 5000 µs)")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR/NAME if it exists")


def run(args) -> int:
    from edgeclf.export.triton import write_triton_repository

    target = write_triton_repository(
        args.artifact, args.out, name=args.name, max_batch_size=args.max_batch_size,
        instance_kind=args.instance_kind, instance_count=args.instance_count, precision=args.precision,
        max_queue_delay_us=args.max_queue_delay_us, force=args.force)
    print(f"wrote {target}/config.pbtxt, labels.txt, 1/model.onnx; serve it with:"
          f" tritonserver --model-repository {target.parent}")
    return 0
