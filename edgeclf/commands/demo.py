"""`edgeclf demo` — split → train → evaluate → export → predict → bench on the shipped sample."""

from __future__ import annotations

HELP = "run the whole job end to end, offline, on the Caltech 101 sample shipped with edgeclf"
DESCRIPTION = """\
Runs split → train (efficientnet_lite0, offline ImageNet weights) → evaluate → export (TorchScript,
ONNX, int8, parity gate) → predict three test images with the torch-free runtime → a short bench,
on 9 Caltech 101 classes x 24 images shipped in the repo. A few minutes on a 2-core CPU.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="edgeclf-demo", help="output folder (default: ./edgeclf-demo)")
    parser.add_argument("--data", default=None, help="ImageFolder tree to use instead of the shipped sample")
    parser.add_argument("--epochs", type=int, default=30, help="head-training epochs (default: 30)")
    parser.add_argument("--bench-iters", type=int, default=20, help="timed calls per backend/batch size (default: 20)")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 export")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def run(args) -> int:
    from edgeclf.bench.demo import run_demo

    run_demo(args.out, data_dir=args.data, epochs=args.epochs, bench_iters=args.bench_iters,
             int8=args.int8, force=args.force)
    return 0
