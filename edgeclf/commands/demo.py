"""`edgeclf demo` — split → train → evaluate → export → predict → bench on the shipped sample."""

from __future__ import annotations

HELP = "run the whole job end to end, offline, on the Caltech 101 sample shipped with edgeclf"
DESCRIPTION = """\
Runs split → train (efficientnet_lite0, offline ImageNet weights) → evaluate → export (TorchScript,
ONNX, int8, parity gate) → predict three test images with the torch-free runtime → a short bench,
on 9 Caltech 101 classes x 24 images shipped in the repo. About 12 minutes on a busy 2-core CPU,
1.5 on an idle one (see the README's timings); most of it is the export (ONNX + int8) and the bench.

Headings, progress and one line per stage go to stderr; the bench tables and, at the end, a JSON
summary (stage and total times in s, every file written, including bench.json) go to stdout.

example:
  edgeclf demo --out edgeclf-demo
"""


def add_arguments(parser) -> None:
    from ._common import add_quiet

    parser.add_argument("--out", default="edgeclf-demo", metavar="DIR", help="output folder (default: ./edgeclf-demo)")
    parser.add_argument("--data", default=None, metavar="DATA_DIR",
                        help="ImageFolder tree to use instead of the shipped sample")
    parser.add_argument("--epochs", type=int, default=30, metavar="N", help="head-training epochs (default: 30)")
    parser.add_argument("--bench-iters", type=int, default=20, metavar="N",
                        help="timed calls per backend/batch size (default: 20)")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 export")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    add_quiet(parser)


def run(args) -> int:
    import json

    from edgeclf.bench.demo import run_demo
    from edgeclf.progress import for_cli

    progress = for_cli(args.quiet)
    try:
        result = run_demo(args.out, data_dir=args.data, epochs=args.epochs, bench_iters=args.bench_iters,
                          int8=args.int8, force=args.force, progress=progress)
    finally:
        progress.close()
    print(json.dumps(result.summary(), indent=1), flush=True)
    return 0
